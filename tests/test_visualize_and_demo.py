"""Overlay pictures and the README's demo command."""

import numpy as np
import PIL.Image
import pytest

from seem_hf import demo
from seem_hf.visualize import label_color, overlay_segments, overlay_semantic


def test_overlay_tints_segments_and_leaves_the_rest():
    image = PIL.Image.new("RGB", (80, 60), (10, 20, 30))
    segmentation = np.zeros((60, 80), dtype=np.int32)
    segmentation[:, 40:] = 1
    picture = overlay_segments(image, segmentation, [{"id": 1, "label_id": 3}], {3: "car"}, {3: [255, 0, 0]})
    pixels = np.asarray(picture)
    assert picture.size == (80, 60)
    assert (pixels[0, 0] == (10, 20, 30)).all()  # untouched outside any segment
    assert pixels[55, 75, 0] > 100 and pixels[55, 75, 1] < 50  # tinted red inside
    assert (pixels[5, 39] == 255).all()  # the boundary is outlined
    with pytest.raises(ValueError, match="does not match"):
        overlay_segments(image, segmentation[:30], [], {})


def test_semantic_overlay_and_colours():
    image = PIL.Image.new("RGB", (4, 4))
    semantic = np.array([[0, 0, 1, 1]] * 4)
    assert overlay_semantic(image, semantic, {0: "sky", 1: "grass"}).size == (4, 4)
    assert label_color(1) != label_color(2)
    assert label_color(1, {1: [1, 2, 3]}) == (1, 2, 3)


def test_demo_writes_overlays(tmp_path, capsys):
    """The README's main command: every embedded default model, every task, on the bundled images."""
    demo.main(["--output-dir", str(tmp_path), "--count", "2"])
    for pattern, count in (("detr_panoptic_*.png", 4), ("seem_*_panoptic.png", 2), ("seem_*_referring.png", 2),
                           ("seem_*_interactive.png", 2), ("lseg_*_semantic.png", 2)):
        assert len(list(tmp_path.glob(pattern))) == count, pattern
    assert PIL.Image.open(tmp_path / "seem_0_interactive.png").size == (256, 256)
    printed = capsys.readouterr().out
    table = (tmp_path / "segments.md").read_text()
    for model, task in (("DETR-panoptic", "panoptic"), ("SEEM", "referring"), ("SEEM", "interactive"),
                        ("LSeg", "semantic")):
        assert f"| {model} | 0 | {task} |" in table and f"| {model} | 0 | {task} |" in printed

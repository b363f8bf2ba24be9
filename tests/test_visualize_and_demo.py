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
    demo.main(["--output-dir", str(tmp_path)])
    written = sorted(path.name for path in tmp_path.glob("detr_panoptic_*.png"))
    assert len(written) == 6
    assert PIL.Image.open(tmp_path / "detr_panoptic_0_panoptic.png").size == (256, 256)
    assert "DETR-panoptic" in capsys.readouterr().out

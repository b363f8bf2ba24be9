"""Overlay pictures and the README's demo command."""

import importlib

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


def test_overlays_read_the_image_as_the_models_do():
    """A 16-bit PNG is drawn by its values (convert("RGB") made it white) and a photo stored sideways with an EXIF
    orientation is drawn upright, the size the pipelines' segmentations have."""
    from seem_hf.visualize import overlay_masks

    grey = PIL.Image.fromarray(np.full((60, 80), 100 * 257, np.uint16))  # mode I;16, grey 100 on 8 bits
    empty = np.zeros((60, 80), dtype=np.int32)
    assert np.abs(np.asarray(overlay_segments(grey, empty, [], {})).astype(int) - 100).max() <= 1
    sideways = PIL.Image.new("RGB", (60, 80), (200, 30, 30))  # stored 60 wide; EXIF orientation 8 turns it to 80
    exif = PIL.Image.Exif()
    exif[0x0112] = 8
    sideways = PIL.Image.open(_saved(sideways, exif))
    assert overlay_segments(sideways, empty, [], {}).size == (80, 60)
    assert overlay_masks(sideways, np.zeros((1, 60, 80), bool)).size == (80, 60)


def test_overlay_masks_takes_one_name_per_mask():
    """Two masks and one name ended in an IndexError (and one mask with two names dropped the second without a
    word); the count is now checked, naming both numbers."""
    from seem_hf.visualize import overlay_masks

    image = PIL.Image.new("RGB", (40, 30))
    masks = np.ones((2, 30, 40), bool)
    for names in (["cat"], ["cat", "dog", "sofa"]):
        with pytest.raises(ValueError, match=rf"2 masks and {len(names)} names: give one name per mask"):
            overlay_masks(image, masks, names)
    assert overlay_masks(image, masks, ["cat", "dog"]).size == (40, 30)


def _saved(image, exif):
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    buffer.seek(0)
    return buffer


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


CLIS = {"seem_hf.demo": "python -m seem_hf.demo", "seem_hf.app": "python -m seem_hf.app",
        "scripts/make_doc_pictures.py": "python scripts/make_doc_pictures.py"}


class _Parsed(Exception):
    """Raised in place of parsing, carrying the parser a command line interface built."""


@pytest.mark.parametrize("cli", sorted(CLIS))
def test_command_line_help_names_the_command_and_explains_every_option(cli, monkeypatch, capsys):
    """`--help` starts with the command a user types (not `demo.py`), and every option says what it does."""
    import argparse
    import runpy
    from pathlib import Path

    if cli.endswith(".py"):
        main = runpy.run_path(str(Path(__file__).resolve().parents[1] / cli), run_name="cli")["main"]
    else:
        main = importlib.import_module(cli).main
    with pytest.raises(SystemExit) as exit:
        main(["--help"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {CLIS[cli]} ")

    def parsed(parser, *arguments, **keywords):
        raise _Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parsed)
    with pytest.raises(_Parsed) as caught:
        main([])
    parser = caught.value.args[0]
    options = [action for action in parser._actions if not isinstance(action, argparse._HelpAction)]
    assert options, cli
    assert not [action.option_strings or action.dest for action in options if not (action.help or "").strip()]


def test_example_image_is_a_bundled_picture_the_docs_can_use(tmp_path):
    """`seem_hf.demo.example_image`, the picture of the README's blocks: the demo's images (the same JPEG bytes,
    decoded the same way), 256x256 RGB, a fresh copy each call."""
    first = demo.example_image()
    assert first.mode == "RGB" and first.size == (256, 256)
    examples = demo.demo_examples(tmp_path, count=2)
    assert np.array_equal(np.asarray(first), np.asarray(examples[0]["image"]))
    assert np.array_equal(np.asarray(demo.example_image(1)), np.asarray(examples[1]["image"]))
    first.paste((0, 0, 0), (0, 0, 256, 256))
    assert np.asarray(demo.example_image()).any()  # the caller's edits do not reach the next call
    with pytest.raises(ValueError, match="index >= 0"):
        demo.example_image(-1)

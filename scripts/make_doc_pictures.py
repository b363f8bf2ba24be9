"""Make the pictures of docs/: an architecture diagram per model, overlays of the embedded default checkpoints on
a bundled image (the demo's, one image), and each embedded default's learning curve (from the `learning_curve.json`
that `scripts/train_defaults.py` keeps with it).

    .venv/bin/python scripts/make_doc_pictures.py [--output-dir docs/images]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import PIL.Image
import PIL.ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Boxes per model: (label, column, row); arrows between consecutive boxes of a chain, plus extra edges.
DIAGRAMS = {
    "seem": (
        [("image", 0, 1), ("FocalNet backbone", 1, 1), ("transformer-encoder FPN", 2, 1),
         ("SEEM decoder: object | grounding |\nspatial queries | memories", 3, 1), ("masks + class embeddings", 4, 1),
         ("class names / sentences", 0, 0), ("CLIP text encoder", 2, 0), ("clicks, boxes, scribbles", 0, 2),
         ("visual sampler", 2, 2)],
        [(0, 1), (1, 2), (2, 3), (3, 4), (5, 6), (6, 3), (7, 8), (8, 3)],
    ),
    "lseg": (
        [("image", 0, 1), ("ViT (DPTModel)", 1, 1), ("DPT neck", 2, 1), ("LSeg head: pixel\nembeddings", 3, 1),
         ("per-pixel scores", 4, 1), ("labels", 0, 0), ("CLIP text encoder\n(frozen)", 2, 0)],
        [(0, 1), (1, 2), (2, 3), (3, 4), (5, 6), (6, 4)],
    ),
    "detr_panoptic": (
        [("image", 0, 1), ("ResNet backbone", 1, 1), ("transformer\nencoder-decoder", 2, 1),
         ("class + box\nper query", 3, 0), ("attention-map\nmask head", 3, 2), ("panoptic merge", 4, 1)],
        [(0, 1), (1, 2), (2, 3), (2, 4), (3, 5), (4, 5)],
    ),
}


def architecture(name: str) -> PIL.Image.Image:
    boxes, edges = DIAGRAMS[name]
    width, height, box_w, box_h = 1100, 330, 190, 70
    picture = PIL.Image.new("RGB", (width, height), (255, 255, 255))
    draw = PIL.ImageDraw.Draw(picture)
    centres = []
    for label, column, row in boxes:
        x, y = 20 + column * 215 + box_w // 2, 20 + row * 105 + box_h // 2
        centres.append((x, y))
        draw.rounded_rectangle([x - box_w // 2, y - box_h // 2, x + box_w // 2, y + box_h // 2], radius=10,
                               fill=(232, 240, 254), outline=(40, 80, 160), width=2)
        draw.multiline_text((x, y), label, fill=(0, 0, 0), anchor="mm", align="center")
    for start, end in edges:
        (x0, y0), (x1, y1) = centres[start], centres[end]
        if y0 == y1:
            x0, x1 = x0 + box_w // 2, x1 - box_w // 2
        else:
            y0, y1 = (y0 + box_h // 2, y1 - box_h // 2) if y1 > y0 else (y0 - box_h // 2, y1 + box_h // 2)
        draw.line([x0, y0, x1, y1], fill=(40, 80, 160), width=2)
        draw.ellipse([x1 - 4, y1 - 4, x1 + 4, y1 + 4], fill=(40, 80, 160))
    return picture


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python scripts/make_doc_pictures.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "docs" / "images", metavar="DIR",
                        help="where the PNGs go (default: docs/images, the pictures the pages show)")
    arguments = parser.parse_args(argv)
    arguments.output_dir.mkdir(parents=True, exist_ok=True)
    for name in DIAGRAMS:
        architecture(name).save(arguments.output_dir / f"{name}_architecture.png")
    from seem_hf import demo

    with tempfile.TemporaryDirectory() as folder:
        demo.main(["--output-dir", folder, "--count", "1"])
        for made, kept in (("seem_0_panoptic", "seem_panoptic"), ("seem_0_referring", "seem_referring"),
                           ("seem_0_interactive", "seem_interactive"), ("lseg_0_semantic", "lseg_semantic"),
                           ("detr_panoptic_0_panoptic", "detr_panoptic_panoptic")):
            shutil.copyfile(Path(folder) / f"{made}.png", arguments.output_dir / f"{kept}.png")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from learning_curve_plot import plot_history

    for curve in sorted((ROOT / "seem_hf" / "checkpoints").glob("*-shapes/learning_curve.json")):
        run = json.loads(curve.read_text())
        name = curve.parent.name.removesuffix("-shapes")
        plot_history(run["history"], arguments.output_dir / f"learning_curve_{name}.png", run["title"])
    import make_convert_pictures  # beside this script: the converters' pictures (docs/your_data.md)

    make_convert_pictures.make_pictures(arguments.output_dir)
    print(f"Wrote the pictures to {arguments.output_dir}")


if __name__ == "__main__":
    main()

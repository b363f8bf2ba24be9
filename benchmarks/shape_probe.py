"""How hard is shape identity on the shapes stream? A probe for the embedded defaults' limit (issue 14): a plain
3-layer CNN classifies each thing's box crop (48x48) as circle, square, triangle or star, trained on the same
stream and augmentation the defaults train on (4 images a step, large-scale jitter 0.5-2.0) and scored on the
stream's held-out set. The segmentation models must learn the same distinction from whole scenes, with the mask
and the class found together; when a dedicated classifier of crops needs thousands of images, the defaults'
"things" metrics stay near chance for as long.

    python benchmarks/shape_probe.py [--steps 300] [--every 50] [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import record_table  # noqa: E402
from torch import nn

from seem_hf.data import AugmentedPanopticDataset, LargeScaleJitter, ShapesStream
from seem_hf.data.shapes import SHAPES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from pretrain_backbone import thing_crops as crops_of_things  # noqa: E402

CROP = 48


def thing_crops(dataset, indices):
    """(crops (N, 3, 48, 48) in [0, 1], shape index (N,)) of every thing of at least 30 visible pixels."""
    return crops_of_things(dataset, indices, size=CROP, normalise=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--images-per-step", type=int, default=4)
    parser.add_argument("--results", type=Path, help="append the table here")
    options = parser.parse_args()
    torch.manual_seed(0)
    train = AugmentedPanopticDataset(ShapesStream(seed=0, image_size=256), LargeScaleJitter(256, 0.5, 2.0), seed=0)
    held_out = AugmentedPanopticDataset(ShapesStream.held_out(16, 0, 256),
                                        LargeScaleJitter(256, 1.0, 1.0, flip_probability=0.0))
    held_x, held_y = thing_crops(held_out, range(16))
    network = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, len(SHAPES)),
    )
    optimizer = torch.optim.Adam(network.parameters(), 1e-3)
    rows, seen, started = [], 0, time.perf_counter()
    for step in range(1, options.steps + 1):
        first = step * options.images_per_step
        x, y = thing_crops(train, range(first, first + options.images_per_step))
        seen += len(y)
        loss = F.cross_entropy(network(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % options.every == 0:
            with torch.no_grad():
                accuracy = float((network(held_x).argmax(1) == held_y).float().mean())
            rows.append(f"| {step} | {seen} | {accuracy:.2f} |")
            print(rows[-1], f"{time.perf_counter() - started:.0f} s", flush=True)
    text = "\n".join([
        "### Shape identity probe: a 3-layer CNN on the stream's thing crops", "",
        f"Command: `python benchmarks/shape_probe.py --steps {options.steps} --every {options.every}`; held-out: "
        f"{len(held_y)} things of `ShapesStream.held_out(16)`; chance 0.25.", "",
        "| step | thing crops seen | held-out shape accuracy |", "|---|---|---|", *rows, ""])
    record_table(text, options.results)


if __name__ == "__main__":
    main()

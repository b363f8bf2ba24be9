"""`pipeline(..., batch_size=4)` against one image at a time, for the three embedded default models.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/batching.py [--images 8] [--size 480 640] [--repeats 3] \
        [--models seem lseg detr_panoptic] [--results benchmarks/RESULTS.md]

Each model's pipeline segments `--images` photos of one size (the bundled shapes images, resized), once with
`batch_size=1` and once with `batch_size=4`, in turn `--repeats` times after a warm-up of each (medians), so that a
busy machine slows both alike. The results of the two are compared segment by segment (labels and masks).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import PIL.Image
from transformers import pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detr_panoptic import machine  # noqa: E402

import seem_hf  # noqa: E402, F401  (registers the models and the pipeline)
from common import record_table  # noqa: E402

CHECKPOINTS = Path(__file__).resolve().parents[1] / "seem_hf" / "checkpoints"
SUBTASK = {"seem": "panoptic", "lseg": "semantic", "detr_panoptic": "panoptic"}


def photos(count: int, size: tuple[int, int]) -> list[PIL.Image.Image]:
    from seem_hf.data.shapes import ShapesStream

    stream = ShapesStream.held_out(count, seed=0, image_size=max(size))
    return [stream[index]["image"].convert("RGB").resize((size[1], size[0])) for index in range(count)]


def compare(first: list, second: list) -> str:
    """Whether two runs gave the same segments (labels per image), and how many mask pixels differ."""
    pixels = 0
    for a, b in zip(first, second, strict=True):
        if [s["label"] for s in a] != [s["label"] for s in b]:
            return "NO: other segments"
        pixels += sum(int((np.asarray(x["mask"]) != np.asarray(y["mask"])).sum()) for x, y in zip(a, b))
    return "same segments" + (f", {pixels} mask pixels differ (near-ties of batched arithmetic)" if pixels else
                              ", same masks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=[480, 640], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["seem", "lseg", "detr_panoptic"])
    parser.add_argument("--results", type=Path)
    options = parser.parse_args()
    images = photos(options.images, tuple(options.size))
    rows = []
    for name in options.models:
        segmenter = pipeline("image-segmentation", model=str(CHECKPOINTS / f"{name}-shapes"))
        runs = {1: [], options.batch_size: []}
        results = {}
        for batch_size in runs:  # warm-up, and the results compared
            results[batch_size] = segmenter(images, subtask=SUBTASK[name], batch_size=batch_size)
        for _ in range(options.repeats):
            for batch_size, spent in runs.items():
                start = time.perf_counter()
                segmenter(images, subtask=SUBTASK[name], batch_size=batch_size)
                spent.append(time.perf_counter() - start)
        one, batched = (options.images / statistics.median(runs[key]) for key in runs)
        rows.append((name, one, batched, compare(results[1], results[options.batch_size])))
        print(rows[-1], flush=True)
    lines = [
        f"### Batched pipelines, embedded defaults ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {machine()}; {options.images} images of {options.size[0]}x{options.size[1]}  ",
        "Command: `nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/batching.py " + " ".join(sys.argv[1:]) + "`",
        "",
        f"| model (subtask) | images/s, batch_size=1 | images/s, batch_size={options.batch_size} | speed-up | "
        "results |",
        "|---|---|---|---|---|",
        *(f"| {name}-shapes ({SUBTASK[name]}) | {one:.2f} | {batched:.2f} | {batched / one:.2f}x | "
          f"{agree} |" for name, one, batched, agree in rows),
    ]
    text = "\n".join(lines) + "\n"
    record_table(text, options.results)


if __name__ == "__main__":
    main()

"""What re-prompting costs against a full forward, on the released architectures (random weights; speed does not
depend on them): a SEEM follow-up click (the decoder only, image features cached, the previous answer as memory)
and an LSeg new label set on a cached image (text encoder and the scoring only).

    python benchmarks/prompt_reuse.py [--size 512] [--repeats 3] [--results benchmarks/RESULTS.md]

Targets (issue 8): a SEEM follow-up click under 20% of a full forward. Times are medians of `--repeats` runs after
one warm-up, in inference mode.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seem_hf import LSegConfig, LSegForSemanticSegmentation, SeemConfig, SeemForUniversalSegmentation  # noqa: E402
from common import record_table  # noqa: E402


def timed(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def seem(size: int, repeats: int) -> list[tuple[str, float, float]]:
    # Built outside inference mode: parameters created inside it are inference tensors, on which the decoder's
    # small linear layers take a path several times slower (measured: 1.2 s instead of 0.3 s per follow-up).
    torch.manual_seed(0)
    model = SeemForUniversalSegmentation(SeemConfig()).eval()
    with torch.inference_mode():
        return _seem(model, size, repeats)


def _seem(model, size: int, repeats: int) -> list[tuple[str, float, float]]:
    pixel_values = torch.randn(1, 3, size, size)
    clicks = torch.zeros(1, 1, size, size, dtype=torch.bool)
    clicks[0, 0, size // 2 - 1 : size // 2 + 2, size // 2 - 1 : size // 2 + 2] = True
    labels = model.get_text_features(torch.randint(1, 49000, (134, 77)))

    def full():
        return model(pixel_values=pixel_values, class_embeddings=labels, spatial_positive_masks=clicks,
                     generator=torch.Generator().manual_seed(0))

    first = full()
    features = model.get_image_features(pixel_values)
    more = clicks.clone()
    more[0, 0, 10:13, 10:13] = True

    def follow_up(generic):
        return lambda: model(image_features=features, class_embeddings=labels, spatial_positive_masks=more,
                             previous_masks=first.interactive_masks_logits, generic=generic,
                             generator=torch.Generator().manual_seed(0))

    full_time = timed(full, repeats)
    with_generic, lean = timed(follow_up(True), repeats), timed(follow_up(False), repeats)
    return [(f"SEEM Focal-L {size}x{size}: full forward, 1 click, 133 labels", full_time, 1.0),
            (f"SEEM Focal-L {size}x{size}: follow-up click, decoder with the 101 object queries too", with_generic,
             with_generic / full_time),
            (f"SEEM Focal-L {size}x{size}: follow-up click, decoder without the object queries (generic=False, "
             "same answer)", lean, lean / full_time)]


def lseg(size: int, repeats: int) -> list[tuple[str, float, float]]:
    torch.manual_seed(0)
    model = LSegForSemanticSegmentation(LSegConfig()).eval()
    with torch.inference_mode():
        return _lseg(model, size, repeats)


def _lseg(model, size: int, repeats: int) -> list[tuple[str, float, float]]:
    pixel_values = torch.randn(1, 3, size, size)
    ids = torch.randint(1, 49000, (20, 77))

    def full():
        return model(pixel_values=pixel_values, input_ids=ids)

    cached = full().pixel_embeddings
    new_ids = torch.randint(1, 49000, (20, 77))

    def new_labels():
        return model(pixel_embeddings=cached, input_ids=new_ids)

    full_time, new_time = timed(full, repeats), timed(new_labels, repeats)
    return [(f"LSeg ViT-L/16 {size}x{size}: full forward, 20 labels", full_time, 1.0),
            (f"LSeg ViT-L/16 {size}x{size}: 20 new labels on the cached image", new_time, new_time / full_time)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path)
    options = parser.parse_args()
    rows = seem(options.size, options.repeats) + lseg(options.size - options.size % 32, options.repeats)
    lines = [
        f"### Re-prompting against a full forward ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)  ",
        "Command: `python benchmarks/prompt_reuse.py " + " ".join(sys.argv[1:]) + "`",
        "",
        "| measurement | seconds | fraction of the full forward |",
        "|---|---|---|",
        *(f"| {name} | {seconds:.3f} | {fraction:.1%} |" for name, seconds, fraction in rows),
    ]
    text = "\n".join(lines) + "\n"
    record_table(text, options.results)


if __name__ == "__main__":
    main()

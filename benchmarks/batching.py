"""`pipeline(..., batch_size=4)` against one image at a time, for the three embedded default models.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/batching.py [--images 8] [--size 480 640] [--repeats 3] \
        [--models seem lseg detr_panoptic] [--mixed] [--released] [--results benchmarks/RESULTS.md]

Each model's pipeline segments `--images` photos of one size (the bundled shapes images, resized), once with
`batch_size=1` and once with `batch_size=4`, in turn `--repeats` times after a warm-up of each (medians), so that a
busy machine slows both alike. The results of the two are compared segment by segment (labels and masks). On CPU
the pipeline batches an image size only where one of its two trials (its second and third batches of that size:
those images run together once, then one by one) measured the shared forward at under 0.9 of the time; the
warm-up runs the batched calls until the trials are made, and the trials column gives their ratios. Batching speeds
up the forward only: the one-at-a-time run's share of time in the forward bounds the speed-up (reading, resizing
and post-processing each image stay), given as the ceiling 1 / (1 - share).
`--released` runs the released sizes instead, with random weights (speed does not depend on them): SEEM v1 Focal-T
with COCO's 133 labels at 512 px, LSeg ViT-L/16 at 384 px and DETR-panoptic R50 at 800 px (its score threshold set so
that 20 queries per image pass, as a trained model's would; `detr_panoptic.confident_threshold`).
`--mixed` makes every other photo 1/16 narrower (two cameras' aspect ratios) and adds a third run, `batch_size=4`
with `padding=True` (the sizes padded into one forward), compared with one at a time the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from transformers import pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import record_table  # noqa: E402
from detr_panoptic import machine  # noqa: E402

import seem_hf  # noqa: E402, F401  (registers the models and the pipeline)

CHECKPOINTS = Path(__file__).resolve().parents[1] / "seem_hf" / "checkpoints"
SUBTASK = {"seem": "panoptic", "lseg": "semantic", "detr_panoptic": "panoptic"}


def photos(count: int, size: tuple[int, int], mixed: bool = False) -> list[PIL.Image.Image]:
    from seem_hf.data.shapes import ShapesStream

    stream = ShapesStream.held_out(count, seed=0, image_size=max(size))
    widths = [size[1] - (size[1] // 16 if mixed and index % 2 else 0) for index in range(count)]
    return [stream[index]["image"].convert("RGB").resize((width, size[0])) for index, width in enumerate(widths)]


def released_segmenter(name: str, images: list) -> tuple:
    """A pipeline of `name` at its released size (random weights, seeded) and the arguments its calls take."""
    from peers import FOCAL_T, labels

    from seem_hf import (
        LSegConfig,
        LSegForSemanticSegmentation,
        LSegProcessor,
        SeemConfig,
        SeemForUniversalSegmentation,
        SeemProcessor,
    )
    from seem_hf.models.seem.configuration_seem import FOCAL_L

    torch.manual_seed(0)
    if name == "seem":
        from transformers import FocalNetConfig

        model = SeemForUniversalSegmentation(SeemConfig(backbone_config=FocalNetConfig(**{**FOCAL_L, **FOCAL_T})))
        model.config.id2label = dict(enumerate(labels(133)))
        processor = SeemProcessor.from_pretrained(CHECKPOINTS / "seem-shapes")
        processor.image_processor.size = {"shortest_edge": 512, "longest_edge": 512}
        processor.set_default_labels(labels(133), model=model)
        return "SEEM Focal-T, 133 labels, 512 px", pipeline(
            "image-segmentation", model=model.eval(), image_processor=processor.image_processor,
            processor=processor), {}
    if name == "lseg":
        model = LSegForSemanticSegmentation(LSegConfig()).eval()
        processor = LSegProcessor.from_pretrained(CHECKPOINTS / "lseg-shapes")
        processor.image_processor.size = {"height": 384, "width": 384}
        processor.set_default_labels(list(processor.image_processor.id2label.values()), model=model)
        return "LSeg ViT-L/16, 8 labels, 384 px", pipeline(
            "image-segmentation", model=model, image_processor=processor.image_processor, processor=processor), {}
    from detr_panoptic import build_models, confident_threshold

    from seem_hf import DetrPanopticImageProcessor

    model = build_models()[1]
    image_processor = DetrPanopticImageProcessor()
    threshold = confident_threshold(model, image_processor(images=images[0], return_tensors="pt"), 20)
    return "DETR-panoptic R50, 250 labels, 800 px", pipeline(
        "image-segmentation", model=model, image_processor=image_processor), {"threshold": threshold}


def compare(first: list, second: list) -> str:
    """Whether two runs gave the same segments (labels per image), and how many mask pixels differ."""
    pixels = total = 0
    for a, b in zip(first, second, strict=True):
        if [s["label"] for s in a] != [s["label"] for s in b]:
            return "NO: other segments"
        pixels += sum(int((np.asarray(x["mask"]) != np.asarray(y["mask"])).sum()) for x, y in zip(a, b))
        total += sum(np.asarray(x["mask"]).size for x in a)
    return "same segments" + (f", {pixels} mask pixels differ ({100 * pixels / total:.2g}%)" if pixels else
                              ", same masks")


@contextlib.contextmanager
def timed_forwards(segmenter, seconds: list):
    """Collect the seconds of each model forward the pipeline runs (its own timing, `_forward_seconds`)."""
    model = segmenter._model

    def timed(**inputs):
        outputs = model(**inputs)
        seconds.append(segmenter._forward_seconds)
        return outputs

    segmenter._model = timed
    try:
        yield
    finally:
        del segmenter._model


def ceiling(share: float) -> str:
    """The speed-up bound when a forward that takes `share` of a call became free."""
    return f"{1 / (1 - share):.2f}x" if share < 0.9 else "over 10x"


def decision(segmenter) -> str:
    """What the pipeline's batching trials measured per input shape (each trial's shared forward's time over the same
    images' one by one) and so decided (the pipeline's `batching_pays`)."""
    return "; ".join(
        " / ".join(f"{shared / alone:.2f}" for shared, alone in trials)
        + (": batches" if segmenter.batching_pays(trials) else ": one at a time")
        for trials in segmenter.__dict__.get("batching_measurements", {}).values() if trials
    ) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=[480, 640], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["seem", "lseg", "detr_panoptic"])
    parser.add_argument("--mixed", action="store_true", help="two image sizes; adds a padding=True run")
    parser.add_argument("--released", action="store_true", help="released sizes, random weights (see above)")
    parser.add_argument("--results", type=Path)
    options = parser.parse_args()
    images = photos(options.images, tuple(options.size), options.mixed)
    variants = {"one": dict(batch_size=1), "batched": dict(batch_size=options.batch_size)}
    if options.mixed:
        variants["padded"] = dict(batch_size=options.batch_size, padding=True)
    rows = []
    for name in options.models:
        if options.released:
            title, segmenter, call = released_segmenter(name, images)
        else:
            title, call = f"{name}-shapes", {}
            segmenter = pipeline("image-segmentation", model=str(CHECKPOINTS / f"{name}-shapes"))
        runs = {key: [] for key in variants}
        results = {}
        for key, arguments in variants.items():  # warm-up (the batched calls until the trials are made), and the
            for _ in range(1 if key == "one" else 1 + segmenter.batching_trials):  # results compared
                results[key] = segmenter(images, subtask=SUBTASK[name], **arguments, **call)
        forwards = []
        for _ in range(options.repeats):
            for key, spent in runs.items():
                start = time.perf_counter()
                with timed_forwards(segmenter, forwards if key == "one" else []):
                    segmenter(images, subtask=SUBTASK[name], **variants[key], **call)
                spent.append(time.perf_counter() - start)
        speeds = {key: options.images / statistics.median(spent) for key, spent in runs.items()}
        agree = {key: compare(results["one"], results[key]) for key in runs if key != "one"}
        share = sum(forwards) / sum(runs["one"])
        rows.append((title, name, speeds, agree, decision(segmenter), share))
        print(rows[-1], flush=True)
    sizes = f"{options.size[0]}x{options.size[1]}" + (
        f" and {options.size[0]}x{options.size[1] - options.size[1] // 16} alternately" if options.mixed else "")
    lines = [
        f"### Batched pipelines, {'released sizes' if options.released else 'embedded defaults'} "
        f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {machine()}; {options.images} images of {sizes}  ",
        f"Command: `env OMP_NUM_THREADS={torch.get_num_threads()} python benchmarks/batching.py "
        + " ".join(sys.argv[1:]) + "`",
        "",
        f"| model (subtask) | images/s, batch_size=1 | images/s, batch_size={options.batch_size} | speed-up | "
        "results |" + (" images/s, padding=True | speed-up | results |" if options.mixed else "")
        + " trials: shared / one-by-one forwards | forward's share of batch_size=1 (ceiling) |",
        "|---|---|---|---|---|" + ("---|---|---|" if options.mixed else "") + "---|---|",
        *(f"| {title} ({SUBTASK[name]}) | {speeds['one']:.2f} | {speeds['batched']:.2f} | "
          f"{speeds['batched'] / speeds['one']:.2f}x | {agree['batched']} |"
          + (f" {speeds['padded']:.2f} | {speeds['padded'] / speeds['one']:.2f}x | {agree['padded']} |"
             if options.mixed else "") + f" {decided} | {share:.0%} ({ceiling(share)}) |"
          for title, name, speeds, agree, decided, share in rows),
    ]
    text = "\n".join(lines) + "\n"
    record_table(text, options.results)


if __name__ == "__main__":
    main()

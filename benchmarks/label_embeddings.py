"""First call of the SEEM pipeline with 133 labels: the label set encoded (cold) against read from the model folder
(carried) or from the disk cache (cached).

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/label_embeddings.py [--labels 133] [--repeats 3] \
        [--size 512] [--full] [--results benchmarks/RESULTS.md]

SEEM averages 81 prompt templates per label, so 133 labels are 134 x 81 = 10,854 prompts through its 12-layer,
512-wide text tower; that, not the image, is what a first call costs. The model is randomly initialised, with the
released (Focal-L) text tower, at its real size; by default the rest is the small test config widened to the
released joint space (512), so that the forward does not hide what is measured (`--full`: the whole released
Focal-L model). Each measurement builds a new pipeline from a saved folder (a new process's state: nothing in
memory) and times its first call on a `--size` image:

- cold: the folder carries no embeddings and the disk cache is empty: the label set is encoded (once; it is the
  slow one), and written to the cache;
- carried: the folder carries `label_embeddings.safetensors` (`set_default_labels(..., model=model)` then
  `save_pretrained`), disk cache off;
- cached: no carried file, the disk cache holds the set (written by the cold call).

Carried and cached calls alternate, `--repeats` times each (medians). Every call's panoptic result is compared with
the cold one's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import PIL.Image
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detr_panoptic import machine  # noqa: E402

from seem_hf import SeemForUniversalSegmentation, SeemProcessor  # noqa: E402
from seem_hf.label_embeddings import CACHE_ENV, LABEL_EMBEDDINGS_NAME  # noqa: E402
from seem_hf.models.seem.configuration_seem import SEEM_TEXT, SeemConfig  # noqa: E402
from seem_hf.testing import tiny_seem_config  # noqa: E402
from common import record_table  # noqa: E402

CHECKPOINTS = Path(__file__).resolve().parents[1] / "seem_hf" / "checkpoints"


def build_model(full: bool) -> SeemForUniversalSegmentation:
    torch.manual_seed(0)
    if full:
        config = SeemConfig()
    else:
        config = tiny_seem_config(text_config=dict(SEEM_TEXT), dim_proj=512, hidden_dim=512, mask_dim=512, conv_dim=512)
    return SeemForUniversalSegmentation(config).eval()


def first_call(folder: Path, image, cache: str) -> tuple[float, float, dict, float]:
    """(seconds of the first call, of its label-set part, its panoptic result, seconds to build the pipeline) in a
    fresh pipeline."""
    from transformers import pipeline

    os.environ[CACHE_ENV] = cache
    started = time.perf_counter()
    segmenter = pipeline("image-segmentation", model=str(folder))
    built = time.perf_counter() - started
    label_part = []
    lookup = segmenter.model.get_label_embeddings

    def timed(*args, **kwargs):
        start = time.perf_counter()
        embeddings = lookup(*args, **kwargs)
        label_part.append(time.perf_counter() - start)
        return embeddings

    segmenter.model.get_label_embeddings = timed
    started = time.perf_counter()
    result = segmenter(image, subtask="panoptic", threshold=0.0)
    return time.perf_counter() - started, sum(label_part), result, built


def same(first, second) -> bool:
    return [r["label"] for r in first] == [r["label"] for r in second] and all(
        np.array_equal(np.asarray(a["mask"]), np.asarray(b["mask"])) for a, b in zip(first, second))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=133)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512, help="image side; the processor resizes to it")
    parser.add_argument("--full", action="store_true", help="the whole released Focal-L model, not only its text tower")
    parser.add_argument("--results", type=Path)
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="label_embeddings_"))
    try:
        labels = [f"category {index}" for index in range(options.labels)]
        model = build_model(options.full)
        processor = SeemProcessor.from_pretrained(CHECKPOINTS / "seem-shapes")
        processor.image_processor.size = {"shortest_edge": options.size, "longest_edge": options.size}
        processor.set_default_labels(labels, thing_label_ids=range(min(80, options.labels)))
        model.config.id2label = dict(enumerate(labels))
        plain, carried = work / "plain", work / "carried"
        model.save_pretrained(plain)
        processor.save_pretrained(plain)
        image = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (options.size, options.size, 3),
                                                                      dtype=np.uint8))
        cache = str(work / "cache")

        cold, cold_label, reference, _ = first_call(plain, image, cache)
        # the carried folder: the same weights, the default label set's embeddings written by save_pretrained (read
        # from the disk cache the cold call filled, as a user's save after a first call would)
        shutil.copytree(plain, carried)
        loaded = SeemForUniversalSegmentation.from_pretrained(plain).eval()
        processor.set_default_labels(labels, thing_label_ids=range(min(80, options.labels)), model=loaded)
        loaded.save_pretrained(carried)
        assert (carried / LABEL_EMBEDDINGS_NAME).is_file()

        times = {"carried": [], "cached": []}
        label_times = {"carried": [], "cached": []}
        built = {"carried": [], "cached": []}
        agree = True
        for _ in range(options.repeats):
            for kind, folder, cache_setting in (("carried", carried, "off"), ("cached", plain, cache)):
                seconds, label_seconds, result, build = first_call(folder, image, cache_setting)
                times[kind].append(seconds)
                label_times[kind].append(label_seconds)
                built[kind].append(build)
                agree &= same(result, reference)
        carried_time, cached_time = statistics.median(times["carried"]), statistics.median(times["cached"])
        carried_label, cached_label = (statistics.median(label_times[kind]) for kind in ("carried", "cached"))
        parameters = sum(p.numel() for p in model.language_encoder.parameters()) / 1e6
        what = "the whole released Focal-L model" if options.full else "the released text tower, the rest small"
        rows = [
            ("cold: label set encoded", cold, 1.0, cold_label),
            ("carried: the folder's label_embeddings.safetensors", carried_time, cold / carried_time, carried_label),
            ("cached: the disk cache", cached_time, cold / cached_time, cached_label),
        ]
        lines = [
            f"### SEEM pipeline first call, {options.labels} labels: encoded, carried, cached "
            f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
            "",
            f"Machine: {machine()}; random weights ({what}; text tower {parameters:.1f} M parameters, "
            f"{options.labels + 1} x 81 prompts); image {options.size}x{options.size}  ",
            "Command: `nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/label_embeddings.py "
            + " ".join(sys.argv[1:]) + "`",
            "",
            "| first call of a new pipeline | seconds (median) | speed-up over cold | of which the label set (s) |",
            "|---|---|---|---|",
            *(f"| {name} | {seconds:.2f} | {ratio:.1f}x | {label:.2f} |" for name, seconds, ratio, label in rows),
            "",
            f"Cold once, carried and cached alternating {options.repeats} times each "
            f"(carried {', '.join(f'{t:.2f}' for t in times['carried'])} s; cached "
            f"{', '.join(f'{t:.2f}' for t in times['cached'])} s); building the pipeline (loading the folder) took "
            f"{statistics.median(built['carried']):.2f} s, not counted. Panoptic results equal to the cold call's: "
            f"{'yes' if agree else 'NO'}.",
        ]
        text = "\n".join(lines) + "\n"
        record_table(text, options.results)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

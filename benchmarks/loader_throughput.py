"""Is the data loader ever the bottleneck? Images per second of the examples' training data path (read a COCO-panoptic
folder, large-scale jitter, the collator) with 0, 2 and 4 data-loader workers, against the training step of each
released architecture (random weights, `benchmarks/training_step.py`'s step) at the same image size.

    python benchmarks/loader_throughput.py [--image-size 512] [--source-size 640] [--workers 0 2 4] [--batches 16]
        [--models seem lseg detr_panoptic] [--results benchmarks/RESULTS.md]

The folder holds `--source-size` px images of the bundled shapes data (640: about a COCO photo's 640x480 pixels),
written once by `make_shapes_dataset`; `--data_dir` reads it as the examples do (`training_datasets`), and the
loader's rate is measured over `--batches` batches of 2 after the first batch (the workers' start-up). The collators
are the examples': DETR-panoptic's (SEEM and DETR-panoptic) and LSeg's semantic one. Each model step runs in its own
process (`training_step.py --case`), full fine-tuning, batch of one image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import record_table  # noqa: E402
from training_step import CHECKPOINTS, MODELS  # noqa: E402


def collators(vocabulary) -> dict:
    from seem_hf import DetrPanopticImageProcessor, LSegProcessor
    from seem_hf.training import DetrPanopticCollator, SemanticCollator

    names = [vocabulary.id2label[index] for index in sorted(vocabulary.id2label)]
    return {
        "panoptic (SEEM, DETR-panoptic)": DetrPanopticCollator(
            DetrPanopticImageProcessor.from_pretrained(CHECKPOINTS / "detr_panoptic-shapes")),
        "semantic (LSeg)": SemanticCollator(LSegProcessor.from_pretrained(CHECKPOINTS / "lseg-shapes"), names),
    }


def loader_rate(dataset, collate, workers: int, batches: int) -> float:
    """Images per second over `batches` batches of 2, after the first."""
    loader = DataLoader(dataset, batch_size=2, shuffle=True, num_workers=workers, collate_fn=collate,
                        generator=torch.Generator().manual_seed(0), persistent_workers=False)
    iterator = iter(loader)
    next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return 2 * batches / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--source-size", type=int, default=640)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--results", type=Path)
    options = parser.parse_args()

    from transformers import TrainingArguments

    from seem_hf.data import make_shapes_dataset
    from seem_hf.training.arguments import DataArguments, training_datasets

    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        count = 2 * (options.batches + 1) * max(1, max(options.workers))
        make_shapes_dataset(Path(folder) / "data", num_train=count, num_val=1, image_size=options.source_size)
        train, _, vocabulary = training_datasets(
            DataArguments(data_dir=str(Path(folder) / "data"), image_size=options.image_size),
            TrainingArguments(output_dir=str(Path(folder) / "run"), report_to="none"))
        for name, collate in collators(vocabulary).items():
            for workers in options.workers:
                rates[name, workers] = loader_rate(train, collate, workers, options.batches)
                print(name, workers, f"{rates[name, workers]:.1f} images/s", flush=True)

    steps = {}
    for model in options.models:
        completed = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "training_step.py"), "--case", model, "full", "--image-size",
             str(options.image_size), "--repeats", "2"], capture_output=True, text=True, check=False,
            env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if completed.returncode:
            raise SystemExit(f"{model} failed:\n{completed.stderr[-3000:]}")
        steps[model] = json.loads(completed.stdout.strip().splitlines()[-1])["step"]
        print(model, f"{1 / steps[model]:.2f} images/s", flush=True)

    lines = [
        f"### Data loader against the training step ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)  ",
        "Command: `python benchmarks/loader_throughput.py " + " ".join(sys.argv[1:]) + "`  ",
        f"Loader: a `--data_dir` folder of {options.source_size} px images, large-scale jitter to "
        f"{options.image_size} px, the examples' collators, batches of 2. Step: full fine-tuning of the released "
        f"architecture (random weights) on one {options.image_size} px image.", "",
        "| loader (collator) | " + " | ".join(f"{w} workers, images/s" for w in options.workers) + " |",
        "|---|" + "---|" * len(options.workers),
        *(f"| {name} | " + " | ".join(f"{rates[name, w]:.1f}" for w in options.workers) + " |"
          for name in dict.fromkeys(name for name, _ in rates)),
        "",
        "| model step | images/s | loader (0 workers) / step |",
        "|---|---|---|",
    ]
    for model, seconds in steps.items():
        collator = "semantic (LSeg)" if model == "lseg" else "panoptic (SEEM, DETR-panoptic)"
        lines.append(f"| {MODELS[model]} | {1 / seconds:.3g} | {rates[collator, options.workers[0]] * seconds:.0f}x |")
    record_table("\n".join(lines) + "\n", options.results)


if __name__ == "__main__":
    main()

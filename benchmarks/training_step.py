"""What one fine-tuning step costs under each strategy, on the released architectures (random weights).

    python benchmarks/training_step.py [--models seem lseg detr_panoptic] [--image-size 256] [--repeats 3]
        [--results benchmarks/RESULTS.md]

A step is what the examples' Trainer does per batch: the examples' collators build a batch of one image from the
bundled dataset (`--image-size` px; SEEM's batch carries referring sentences and visual prompts with up to 5
simulated corrective clicks, as `examples/finetune_seem.py` trains), then forward with the loss, backward,
AdamW step over the trainable parameters, zero_grad. Each (model, strategy) runs in a fresh process, so its peak
resident memory (weights, gradients, optimizer state, activations) is its own. Times are medians of
`--repeats` steps after one warm-up step. Appends the table to `--results` with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))

from common import peak_resident_gb, record_table  # noqa: E402
from seem_hf.adapters.strategies import FineTuningStrategy, count_parameters, prepare_for_fine_tuning  # noqa: E402

CHECKPOINTS = ROOT / "seem_hf" / "checkpoints"
MODELS = {"seem": "SEEM Focal-L", "lseg": "LSeg ViT-L/16", "detr_panoptic": "DETR-panoptic R50"}


def bundled_rows(image_size: int, workdir: str):
    from transformers import TrainingArguments

    from seem_hf.training.arguments import DataArguments, training_datasets

    train, _, vocabulary = training_datasets(
        DataArguments(image_size=image_size, num_train=4, num_val=1), TrainingArguments(output_dir=workdir)
    )
    return [train[index] for index in range(4)], vocabulary


def build(name: str, rows, vocabulary):
    """(model, a list of batches) for `name`, built as the example scripts build them."""
    label_names = [vocabulary.id2label[index] for index in sorted(vocabulary.id2label)]
    if name == "seem":
        from seem_hf import SeemConfig, SeemForUniversalSegmentation, SeemProcessor
        from seem_hf.training import DetrPanopticCollator, LabelSetCollator, SeemPromptCollator

        model = SeemForUniversalSegmentation(SeemConfig(id2label=dict(enumerate(label_names))))
        processor = SeemProcessor.from_pretrained(CHECKPOINTS / "seem-shapes")
        processor.image_processor.id2label = dict(vocabulary.id2label)
        collator = LabelSetCollator(
            SeemPromptCollator(DetrPanopticCollator(processor.image_processor), processor, seed=0),
            lambda batch: {"input_ids": processor.tokenize_training_labels(label_names, random.Random(0))},
        )
    elif name == "lseg":
        from seem_hf import LSegConfig, LSegForSemanticSegmentation, LSegProcessor
        from seem_hf.training import SemanticCollator

        model = LSegForSemanticSegmentation(LSegConfig())
        collator = SemanticCollator(LSegProcessor.from_pretrained(CHECKPOINTS / "lseg-shapes"), label_names)
    else:
        from seem_hf import DetrPanopticConfig, DetrPanopticForSegmentation, DetrPanopticImageProcessor
        from seem_hf.training import DetrPanopticCollator

        model = DetrPanopticForSegmentation(DetrPanopticConfig(id2label=dict(enumerate(label_names))))
        collator = DetrPanopticCollator(DetrPanopticImageProcessor.from_pretrained(CHECKPOINTS / "detr_panoptic-shapes"))
    return model, [collator([row]) for row in rows]


def run_case(name: str, strategy: str, image_size: int, repeats: int) -> dict:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as workdir:
        rows, vocabulary = bundled_rows(image_size, workdir)
    model, batches = build(name, rows, vocabulary)
    # The examples' adapter sizes: SEEM's fork uses bottlenecks of 256, the others the library default of 64.
    model = prepare_for_fine_tuning(model, strategy, bottleneck_size=256 if name == "seem" else 64)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    counts = count_parameters(model)

    def step(batch):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    times = []
    for index in range(repeats + 1):
        started = time.perf_counter()
        step(batches[index % len(batches)])
        if index:  # the first step warms up (and allocates the optimizer state)
            times.append(time.perf_counter() - started)
    return {
        "model": name, "strategy": strategy, "step": statistics.median(times), "trainable": counts["trainable"],
        "total": counts["total"], "peak_rss_gb": peak_resident_gb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--strategies", nargs="+", choices=[s.value for s in FineTuningStrategy],
                        default=[s.value for s in FineTuningStrategy])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path)
    parser.add_argument("--case", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.case:
        print(json.dumps(run_case(*options.case, options.image_size, options.repeats)))
        return

    results = []
    for name in options.models:
        for strategy in options.strategies:
            completed = subprocess.run(
                [sys.executable, __file__, "--case", name, strategy, "--image-size", str(options.image_size),
                 "--repeats", str(options.repeats)], capture_output=True, text=True, check=False,
            )
            if completed.returncode:
                raise SystemExit(f"{name} {strategy} failed:\n{completed.stderr[-3000:]}")
            results.append(json.loads(completed.stdout.strip().splitlines()[-1]))
            print(results[-1], flush=True)

    lines = [
        f"### Fine-tuning step per strategy ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)  ",
        "Command: `python benchmarks/training_step.py " + " ".join(sys.argv[1:]) + "`  ",
        f"Batch: one {options.image_size} px image of the bundled dataset; step = forward + loss + backward + AdamW.",
        "",
        "| model | strategy | trainable (M) | of total (M) | step (s) | step vs full | peak RSS (GB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        full = next((r for r in results if r["model"] == result["model"] and r["strategy"] == "full"), None)
        relative = f"{result['step'] / full['step']:.2f}" if full else "-"
        lines.append(
            f"| {MODELS[result['model']]} | {result['strategy']} | {result['trainable'] / 1e6:.2f} | "
            f"{result['total'] / 1e6:.2f} | {result['step']:.2f} | {relative} | {result['peak_rss_gb']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    record_table(text, options.results)


if __name__ == "__main__":
    main()

"""Learning curve of a fine-tuning example on the bundled dataset: training loss and validation metrics of an
untrained model and after every `--eval-every` steps, from the example script run as a user runs it.

    python benchmarks/learning_curve.py [--model detr_panoptic] [--steps 1500] [--eval-every 250] \
        [--results benchmarks/RESULTS.md]

The model starts from random weights (a small config: DETR with d_model 64, 2 + 3 layers, 20 queries, a
4-stage ResNet of 16-128 channels) saved with the bundled vocabulary, so every point shows what training on
the bundled dataset alone achieves. Appends a table (step, mean training loss since the last point, PQ,
PQ things, PQ stuff, mIoU, eval loss) and the command to `--results`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from transformers import ResNetConfig

from seem_hf import DetrPanopticForSegmentation, DetrPanopticImageProcessor, DetrPanopticProcessor
from seem_hf.data.shapes import SHAPES_VOCABULARY

ROOT = Path(__file__).resolve().parents[1]


def small_detr_panoptic(folder: Path, image_size: int, mask_loss: str = "focal") -> Path:
    from seem_hf import DetrPanopticConfig

    torch.manual_seed(0)
    config = DetrPanopticConfig(
        backbone_config=ResNetConfig(
            hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 2, 1], embedding_size=16,
            out_features=["stage1", "stage2", "stage3", "stage4"],
        ),
        d_model=64, encoder_layers=2, decoder_layers=3, encoder_attention_heads=8, decoder_attention_heads=8,
        encoder_ffn_dim=128, decoder_ffn_dim=128, num_queries=20, dropout=0.0, mask_loss=mask_loss,
        id2label=dict(SHAPES_VOCABULARY.id2label),
    )
    DetrPanopticForSegmentation(config).save_pretrained(folder)
    processor = DetrPanopticImageProcessor(
        id2label=config.id2label, thing_label_ids=SHAPES_VOCABULARY.thing_label_ids,
        label_colors=SHAPES_VOCABULARY.label_colors, size={"shortest_edge": image_size, "longest_edge": image_size},
    )
    DetrPanopticProcessor(image_processor=processor).save_pretrained(folder)
    return folder


def run(arguments: list[str], environment: dict) -> None:
    result = subprocess.run([sys.executable, *arguments], cwd=ROOT, env=environment, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(result.stdout[-4000:] + result.stderr[-4000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="detr_panoptic", choices=["detr_panoptic"])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--num-train", type=int, default=64)
    parser.add_argument("--num-val", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--mask-loss", default="focal", choices=["focal", "points"])
    parser.add_argument("--workdir", type=Path, default=ROOT / "outputs" / "learning_curve")
    parser.add_argument("--results", type=Path)
    options = parser.parse_args()

    environment = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    start_folder = small_detr_panoptic(options.workdir / "untrained", options.image_size, options.mask_loss)
    script = str(ROOT / "examples" / f"finetune_{options.model}.py")
    common = ["--model_name_or_path", str(start_folder), "--image_size", str(options.image_size),
              "--num_train", str(options.num_train), "--num_val", str(options.num_val), "--disable_tqdm", "true",
              "--report_to", "none"]
    run([script, "--evaluate_only", "true", "--output_dir", str(options.workdir / "eval0"), *common], environment)
    untrained = json.loads((options.workdir / "eval0" / "eval_results.json").read_text())
    started = time.perf_counter()
    run([script, "--output_dir", str(options.workdir / "run"), "--max_steps", str(options.steps),
         "--eval_steps", str(options.eval_every), "--save_steps", str(options.steps),
         "--learning_rate", str(options.learning_rate), "--warmup_steps", "50", *common], environment)
    seconds = time.perf_counter() - started
    history = json.loads((options.workdir / "run" / "trainer_state.json").read_text())["log_history"]

    rows = [("0 (untrained)", "-", untrained)]
    losses = []
    for entry in history:
        if "loss" in entry:
            losses.append(entry["loss"])
        if "eval_pq" in entry:
            rows.append((str(entry["step"]), f"{sum(losses) / max(len(losses), 1):.2f}", entry))
            losses = []
    keys = ("eval_pq", "eval_pq_things", "eval_pq_stuff", "eval_miou", "eval_loss")
    lines = [
        f"### Learning curve: {options.model} on the bundled dataset ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); training took {seconds:.0f} s  ",
        "Command: `python benchmarks/learning_curve.py " + " ".join(sys.argv[1:]) + "`  ",
        f"Data: {options.num_train} training / {options.num_val} validation images of {options.image_size} px, "
        "random weights at step 0.",
        "",
        "| step | train loss | PQ | PQ things | PQ stuff | mIoU | eval loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for step, loss, metrics in rows:
        lines.append(f"| {step} | {loss} | " + " | ".join(f"{metrics[key]:.1f}" for key in keys) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if options.results:
        with options.results.open("a") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()

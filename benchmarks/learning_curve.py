"""Learning curve of a fine-tuning example on the bundled dataset: training loss and validation metrics of an
untrained model and after every `--eval-every` steps, from the example script run as a user runs it.

    python benchmarks/learning_curve.py [--model detr_panoptic|lseg] [--steps 1500] [--eval-every 250] \
        [--results benchmarks/RESULTS.md]

The model starts from random weights, saved with the bundled vocabulary, so every point shows what training on
the bundled dataset alone achieves: the embedded defaults' small configs (`initial_checkpoint` in
`scripts/train_defaults.py`) or, with `--start fixture`, the tiny test checkpoints. Appends a table (step, mean
training loss since the last point, PQ for the panoptic models, mIoU, pixel accuracy, eval loss) and the command
to `--results`, and draws the curve (`learning_curve_plot.py`) into the work folder.
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

from seem_hf.testing import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from learning_curve_plot import plot  # noqa: E402
from train_defaults import initial_checkpoint  # noqa: E402
from common import record_table  # noqa: E402


def run(arguments: list[str], environment: dict) -> None:
    result = subprocess.run([sys.executable, *arguments], cwd=ROOT, env=environment, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(result.stdout[-4000:] + result.stderr[-4000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="detr_panoptic", choices=["detr_panoptic", "lseg", "seem"])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--num-train", type=int, default=64)
    parser.add_argument("--num-val", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--start", default="small", choices=["small", "fixture"],
                        help="small: the embedded defaults' random small config (scripts/train_defaults.py); "
                             "fixture: the tiny random test checkpoint (tests/fixtures)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "outputs" / "learning_curve")
    parser.add_argument("--results", type=Path)
    options = parser.parse_args()

    environment = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    untrained_folder = options.workdir / "untrained"
    if options.start == "fixture":
        start_folder = FIXTURES / f"tiny-random-{options.model}"
    else:
        start_folder = initial_checkpoint(options.model, untrained_folder)
    script = str(ROOT / "examples" / f"finetune_{options.model}.py")
    common = ["--model_name_or_path", str(start_folder), "--image_size", str(options.image_size),
              "--num_train", str(options.num_train), "--num_val", str(options.num_val), "--disable_tqdm", "true",
              "--report_to", "none"]
    run([script, "--evaluate_only", "true", "--output_dir", str(options.workdir / "eval0"), *common], environment)
    untrained = json.loads((options.workdir / "eval0" / "eval_results.json").read_text())
    started = time.perf_counter()
    # From random weights the backbone must learn as fast as the rest (the 0.1x multiplier is for pretrained ones).
    run([script, "--output_dir", str(options.workdir / "run"), "--max_steps", str(options.steps),
         "--backbone_lr_multiplier", "1.0",
         "--eval_steps", str(options.eval_every), "--save_steps", str(options.steps),
         "--learning_rate", str(options.learning_rate), "--warmup_steps", "50", *common], environment)
    seconds = time.perf_counter() - started
    history = json.loads((options.workdir / "run" / "trainer_state.json").read_text())["log_history"]

    rows = [("0 (untrained)", "-", untrained)]
    losses = []
    for entry in history:
        if "loss" in entry:
            losses.append(entry["loss"])
        if "eval_miou" in entry:
            rows.append((str(entry["step"]), f"{sum(losses) / max(len(losses), 1):.2f}", entry))
            losses = []
    keys = ("eval_pq", "eval_pq_things", "eval_pq_stuff") if options.model != "lseg" else ()
    keys += ("eval_miou", "eval_pixel_accuracy", "eval_loss")
    headers = {"eval_pq": "PQ", "eval_pq_things": "PQ things", "eval_pq_stuff": "PQ stuff", "eval_miou": "mIoU",
               "eval_pixel_accuracy": "pixel acc.", "eval_loss": "eval loss"}
    lines = [
        f"### Learning curve: {options.model} on the bundled dataset ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); training took {seconds:.0f} s  ",
        "Command: `python benchmarks/learning_curve.py " + " ".join(sys.argv[1:]) + "`  ",
        f"Data: {options.num_train} training / {options.num_val} validation images of {options.image_size} px; "
        f"start: {'the tiny test checkpoint' if options.start == 'fixture' else 'the small config'}, random "
        "weights at step 0.",
        "",
        "| step | train loss | " + " | ".join(headers[key] for key in keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for step, loss, metrics in rows:
        lines.append(f"| {step} | {loss} | " + " | ".join(f"{metrics[key]:.1f}" for key in keys) + " |")
    final = json.loads((options.workdir / "run" / "eval_results.json").read_text())
    prompt_keys = [key for key in untrained if key.startswith(("eval_referring_", "eval_interactive_"))]
    if prompt_keys:  # SEEM's referring and interactive evaluation runs once before and once after training
        lines += ["", "| prompt metric | untrained | trained |", "|---|---|---|"]
        lines += [f"| {key.removeprefix('eval_')} | {untrained[key]:.3f} | {final[key]:.3f} |" for key in prompt_keys]
    text = "\n".join(lines) + "\n"
    record_table(text, options.results)
    print(plot(options.workdir / "run", options.workdir / f"learning_curve_{options.model}.png",
               f"{options.model}: metrics vs training step ({' '.join(sys.argv[1:])})"))


if __name__ == "__main__":
    main()

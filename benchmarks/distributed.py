"""Training throughput with 1 and 2 processes (DDP over gloo on CPU, or NCCL on GPUs), per model.

    python benchmarks/distributed.py [--models seem lseg detr_panoptic] [--steps 20] [--batch-size 2]
        [--image-size 64] [--bf16] [--results benchmarks/RESULTS.md]

Each (model, process count) runs the model's example under `torchrun --nproc_per_node N` on its tiny test fixture
(tests/fixtures/tiny-random-*) with the bundled dataset, `--steps` optimiser steps of `--batch-size` images per
process, no evaluation and no checkpoint, one thread per process. The figure is Trainer's `train_samples_per_second`:
images of the global batch per second of its training loop (start-up, dataset writing and the final save are
outside it). Appends the table to `--results` with the machine, its load and the command.
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {"seem": "finetune_seem.py", "lseg": "finetune_lseg.py", "detr_panoptic": "finetune_detr_panoptic.py"}


def samples_per_second(model: str, processes: int, steps: int, batch_size: int, image_size: int, bf16: bool) -> float:
    """Trainer's `train_samples_per_second` of one run of the example under torchrun."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
                   str(ROOT / "examples" / EXAMPLES[model]), "--output_dir", str(Path(folder) / "run"),
                   "--model_name_or_path", str(ROOT / "tests" / "fixtures" / f"tiny-random-{model}"),
                   "--num_train", str(max(8, 2 * batch_size)), "--num_val", "1", "--image_size", str(image_size),
                   "--per_device_train_batch_size", str(batch_size), "--max_steps", str(steps),
                   "--eval_strategy", "no", "--save_strategy", "no", "--disable_tqdm", "true",
                   "--logging_steps", str(steps)]
        if bf16:
            command += ["--bf16", "true"]
        environment = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
                           TRANSFORMERS_VERBOSITY="error")
        result = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True, timeout=1800,
                                check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{model} with {processes} process(es) failed:\n{result.stdout[-2000:]}"
                               f"{result.stderr[-2000:]}")
    for line in result.stdout.splitlines():
        if "train_samples_per_second" in line:
            return float(ast.literal_eval(line.strip())["train_samples_per_second"])
    raise RuntimeError(f"no train_samples_per_second in the output of {model}:\n{result.stdout[-2000:]}")


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(EXAMPLES), choices=list(EXAMPLES))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=2, help="images per process and step")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--results", type=Path, default=None, help="append the table to this Markdown file")
    args = parser.parse_args(argv)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    for model in args.models:
        one = samples_per_second(model, 1, args.steps, args.batch_size, args.image_size, args.bf16)
        two = samples_per_second(model, 2, args.steps, args.batch_size, args.image_size, args.bf16)
        rows.append(f"| {model} (tiny) | {one:.1f} | {two:.1f} | {two / one:.2f} |")
        print(rows[-1], flush=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    table = "\n".join([
        f"### Samples per second, 1 and 2 processes ({stamp})",
        "",
        f"`python benchmarks/distributed.py {' '.join(argv if argv is not None else sys.argv[1:])}` on "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at the "
        f"start; {args.batch_size} images of {args.image_size} px per process and step, {args.steps} steps, "
        f"{'bf16 autocast, ' if args.bf16 else ''}one thread per process, DDP over "
        f"{'NCCL on GPUs' if _has_gpu() else 'gloo on CPU'}. Global images per second of Trainer's training loop.",
        "",
        "| model | 1 process | 2 processes | speed-up |",
        "|---|---|---|---|",
        *rows,
        "",
    ])
    print(table)
    if args.results is not None:
        with args.results.open("a", encoding="utf-8") as results:
            results.write("\n" + table)


if __name__ == "__main__":
    main()

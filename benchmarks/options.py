"""Execution options of the three models: attention through `scaled_dot_product_attention` or eager, bf16
autocast, and `torch.compile` (fp32 and with bf16 autocast), each against the default (fp32, sdpa), on the released
architectures.

    python benchmarks/options.py [--models seem lseg detr_panoptic] [--size 512] [--repeats 3] [--device cpu]
        [--batch-size 8] [--skip-compile] [--time-limit 300] [--results benchmarks/RESULTS.md]
    python benchmarks/options.py --device cuda --models seem lseg --repeats 20 --batch-size 8   # on a GPU

For each model and option: the median batch-1 forward time after warm-up (latency; for `torch.compile` the first
call's time is reported apart: it compiles), with `--batch-size` above 1 the images per second of forwards of that
many images (throughput), the latency speed-up against the default, and the largest difference of the main output
(SEEM: mask logits; LSeg: per-pixel logits; DETR: class logits) from the default's, so that an option that is
fast but wrong shows it. Random weights, inference mode. bf16 needs hardware support to pay off (AVX-512 BF16 /
AMX on CPU, any recent GPU); the machine line says what ran. An option that fails (a compiler error) is a row
saying so. Appends to `--results`.
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

from seem_hf import (  # noqa: E402
    DetrPanopticConfig,
    DetrPanopticForSegmentation,
    LSegConfig,
    LSegForSemanticSegmentation,
    SeemConfig,
    SeemForUniversalSegmentation,
)
from common import record_table  # noqa: E402

NAMES = {"seem": "SEEM Focal-L", "lseg": "LSeg ViT-L/16", "detr_panoptic": "DETR-panoptic R50"}


def build(name: str, size: int, device: str):
    """(model, inputs, a function reading the compared output)."""
    torch.manual_seed(0)
    pixel_values = torch.randn(1, 3, size, size, device=device)
    if name == "seem":
        model = SeemForUniversalSegmentation(SeemConfig()).to(device).eval()
        with torch.inference_mode():
            labels = model.get_text_features(torch.randint(300, 40000, (134, 8), device=device))
        return model, {"pixel_values": pixel_values, "class_embeddings": labels}, lambda o: o.masks_queries_logits
    if name == "lseg":
        model = LSegForSemanticSegmentation(LSegConfig()).to(device).eval()
        with torch.inference_mode():
            labels = model.get_text_features(torch.randint(300, 40000, (20, 8), device=device))
        return model, {"pixel_values": pixel_values, "class_embeddings": labels}, lambda o: o.logits
    model = DetrPanopticForSegmentation(DetrPanopticConfig()).to(device).eval()
    mask = torch.ones(1, size, size, dtype=torch.long, device=device)
    return model, {"pixel_values": pixel_values, "pixel_mask": mask}, lambda o: o.logits


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(call, repeats: int, device: str) -> tuple[float, float, object]:
    """(first call's seconds, median of the next `repeats`, the last output)."""
    times = []
    for _ in range(repeats + 1):
        synchronize(device)
        started = time.perf_counter()
        output = call()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return times[0], statistics.median(times[1:]), output


OPTIONS = (  # (row name, attention implementation, bf16 autocast, torch.compile)
    ("fp32, sdpa attention (default)", "sdpa", False, False),
    ("fp32, eager attention", "eager", False, False),
    ("bf16 autocast", "sdpa", True, False),
    ("torch.compile (inductor), fp32", "sdpa", False, True),
    ("torch.compile (inductor), bf16 autocast", "sdpa", True, True),
)


def run(name: str, size: int, repeats: int, device: str, compile_: bool, batch_size: int,
        deadline: float) -> list[tuple]:
    """One row per option: (model, option, first call s, batch-1 latency s, images/s at `batch_size`, speed-up of
    the latency vs the default, max output difference at batch 1; or an explanation in place of the numbers).
    Options still to run when `deadline` (time.monotonic) has passed are reported as not measured."""
    model, inputs, read = build(name, size, device)
    batched = {key: value.expand(batch_size, *value.shape[1:]).contiguous() if key in ("pixel_values", "pixel_mask")
               else value for key, value in inputs.items()}
    rows, reference, default = [], None, None
    for option, attention, autocast, compiled in OPTIONS:
        if compiled and not compile_:
            continue
        if time.monotonic() > deadline:
            rows.append((name, option, "not measured: the run's --time-limit was reached"))
            print(rows[-1], flush=True)
            continue
        model.set_attn_implementation(attention)
        callable_ = torch.compile(model) if compiled else model

        def forward(items):
            with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                                                        enabled=autocast):
                return callable_(**items)

        try:
            first, latency, output = measure(lambda: forward(inputs), repeats, device)
            throughput = None
            if batch_size > 1:
                _, seconds, _ = measure(lambda: forward(batched), repeats, device)
                throughput = batch_size / seconds
        except Exception as error:  # a compiler that fails is a result too
            rows.append((name, option, f"failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}"))
            print(rows[-1], flush=True)
            continue
        output = read(output).float()
        if reference is None:
            reference, default = output, latency
        rows.append((name, option, first if compiled else None, latency, throughput, default / latency,
                     float((output - reference).abs().max())))
        print(rows[-1], flush=True)
    return rows


def _table_row(row: tuple) -> str:
    if len(row) == 3:
        return f"| {NAMES[row[0]]} | {row[1]} | {row[2]} | | | | |"
    name, option, first, latency, throughput, speedup, difference = row
    return (f"| {NAMES[name]} | {option} | {'-' if first is None else f'{first:.1f}'} | {latency:.4f} | "
            f"{'-' if throughput is None else f'{throughput:.1f}'} | {speedup:.2f}x | {difference:.1e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(NAMES), default=list(NAMES))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="above 1, also the throughput (images/s) of forwards of this many images")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--time-limit", type=float, default=float("inf"),
                        help="seconds; options not started by then are reported as not measured")
    parser.add_argument("--results", type=Path)
    options = parser.parse_args()

    deadline = time.monotonic() + options.time_limit
    rows = []
    for name in options.models:
        rows += run(name, options.size, options.repeats, options.device, not options.skip_compile,
                    options.batch_size, deadline)
    hardware = (torch.cuda.get_device_name() if options.device.startswith("cuda")
                else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                     f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    lines = [
        f"### Execution options ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {hardware}, torch {torch.__version__}  ",
        "Command: `python benchmarks/options.py " + " ".join(sys.argv[1:]) + "`",
        "",
        f"| model ({options.size}x{options.size}) | option | first call (s) | latency, batch 1 (s) | "
        f"images/s, batch {options.batch_size} | latency speed-up vs default | max output difference |",
        "|---|---|---|---|---|---|---|",
        *(_table_row(row) for row in rows),
    ]
    text = "\n".join(lines) + "\n"
    record_table(text, options.results)


if __name__ == "__main__":
    main()

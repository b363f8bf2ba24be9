"""Execution options of the three models: attention through `scaled_dot_product_attention` or eager, bf16
autocast, and `torch.compile`, each against the default (fp32, sdpa), on the released architectures.

    python benchmarks/options.py [--models seem lseg detr_panoptic] [--size 512] [--repeats 3] [--device cpu]
        [--skip-compile] [--results benchmarks/RESULTS.md]

For each model and option: the median forward time after warm-up (for `torch.compile`, the first call's time is
reported apart: it compiles), the speed-up against the default, and the largest difference of the main output
(SEEM: mask logits; LSeg: per-pixel logits; DETR: class logits) from the default's, so that an option that is
fast but wrong shows it. Random weights, one image, inference mode. bf16 needs hardware support to pay off
(AVX-512 BF16 / AMX on CPU, any recent GPU); the machine line says what ran. Appends to `--results`.
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


def run(name: str, size: int, repeats: int, device: str, compile_: bool) -> list[tuple]:
    model, inputs, read = build(name, size, device)
    rows = []

    def forward(**options):
        autocast = options.get("autocast")
        with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                                                    enabled=autocast is not None):
            return model(**inputs)

    model.set_attn_implementation("sdpa")
    _, default, reference = measure(forward, repeats, device)
    reference = read(reference).float()
    rows.append((name, "fp32, sdpa attention (default)", None, default, 1.0, 0.0))
    print(rows[-1], flush=True)

    model.set_attn_implementation("eager")
    _, eager, output = measure(forward, repeats, device)
    rows.append((name, "fp32, eager attention", None, eager, default / eager, _difference(read(output), reference)))
    print(rows[-1], flush=True)
    model.set_attn_implementation("sdpa")

    _, bf16, output = measure(lambda: forward(autocast=True), repeats, device)
    rows.append((name, "bf16 autocast", None, bf16, default / bf16, _difference(read(output), reference)))
    print(rows[-1], flush=True)

    if compile_:
        compiled = torch.compile(model)

        def compiled_forward():
            with torch.inference_mode():
                return compiled(**inputs)

        first, seconds, output = measure(compiled_forward, repeats, device)
        rows.append((name, "torch.compile (inductor), fp32", first, seconds, default / seconds,
                     _difference(read(output), reference)))
    return rows


def _difference(output, reference) -> float:
    return float((output.float() - reference).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(NAMES), default=list(NAMES))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--results", type=Path)
    options = parser.parse_args()

    rows = []
    for name in options.models:
        rows += run(name, options.size, options.repeats, options.device, not options.skip_compile)
    hardware = (torch.cuda.get_device_name() if options.device.startswith("cuda")
                else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                     f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    lines = [
        f"### Execution options ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {hardware}, torch {torch.__version__}  ",
        "Command: `python benchmarks/options.py " + " ".join(sys.argv[1:]) + "`",
        "",
        f"| model ({options.size}x{options.size}) | option | first call (s) | forward (s) | speed-up vs default | "
        "max output difference |",
        "|---|---|---|---|---|---|",
        *(f"| {NAMES[name]} | {option} | {'-' if first is None else f'{first:.1f}'} | {seconds:.3f} | "
          f"{speedup:.2f}x | {difference:.1e} |" for name, option, first, seconds, speedup, difference in rows),
    ]
    text = "\n".join(lines) + "\n"
    record_table(text, options.results)


if __name__ == "__main__":
    main()

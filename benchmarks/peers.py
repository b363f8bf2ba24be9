"""SEEM and LSeg against their transformers peers, in one run on one machine: latency, peak memory, and forward
throughput as a fraction of the machine's measured matrix-multiply rate.

    python benchmarks/peers.py [--repeats 3] [--seem-size 512] [--lseg-size 384] [--results benchmarks/RESULTS.md]

Pairs (random weights: speed does not depend on them):
- SEEM v1 Focal-T (the released SEEM head on FocalNet-T, `focalt_unicl_lang` sizes) against transformers'
  `Mask2FormerForUniversalSegmentation` with Swin-T (the nearest transformers model: the same kind of masked-
  attention decoder over a multi-scale pixel decoder, 47 M parameters), at `--seem-size`, 133 labels.
- LSeg ViT-L/16 against transformers' `DPTForSemanticSegmentation` (DPT-Large, the same ViT-L/16 + DPT neck
  without the text side) and `CLIPSegForImageSegmentation` (CLIP ViT-B/16 sizes, the text-prompted
  segmenter in transformers), at `--lseg-size`, `--lseg-labels` labels (CLIPSeg takes one prompt per image, so
  10 labels are a batch of 10 images).

For each model: the forward alone (a fixed label set encoded beforehand where the model takes text, as a
deployed open-vocabulary model caches it and as the pipelines do), end to end (a PIL image through the
model's pipeline, or processor + forward + upsampling for CLIPSeg, which has none; warm, so label sets are
encoded once), the peak resident memory of a fresh process that built the model and ran both, and the
forward's FLOPs (`torch.utils.flop_counter`, 2 per multiply-add; it counts matmuls, convolutions and
attention, not grid sampling, so Mask2Former's deformable attention is slightly undercounted). Throughput =
FLOPs / median forward time / matmul rate (fp32 2048x2048 `torch.matmul`, measured first in this run). Each
model runs in its own process, one after the other, with denormal floats flushed to zero (random weights can
produce them, and which model suffers is a matter of the draw). Appends the table to `--results` with the machine and
the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))

from common import peak_resident_gb, record_table  # noqa: E402

CHECKPOINTS = ROOT / "seem_hf" / "checkpoints"
FOCAL_T = dict(embed_dim=96, depths=[2, 2, 6, 2], hidden_sizes=[96, 192, 384, 768], focal_levels=[3, 3, 3, 3],
               focal_windows=[3, 3, 3, 3])
SWIN_T = dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
              out_features=["stage1", "stage2", "stage3", "stage4"])


def timed(function, repeats: int) -> list[float]:
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def matmul_rate(size: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an fp32 square matmul into a preallocated output (the anchors' protocol)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    for _ in range(3):
        torch.matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b, out=out)
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times) / 1e9


def random_image(size: int) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))


def labels(count: int) -> list[str]:
    return [f"category {index}" for index in range(count)]


# Each builder returns (description, parameter count, forward, end_to_end); models are built outside inference
# mode (parameters made inside it are inference tensors, on which small linear layers take a slower path).


def build_seem(size: int, count: int, notes: dict):
    from transformers import FocalNetConfig, pipeline

    from seem_hf import SeemConfig, SeemForUniversalSegmentation, SeemProcessor
    from seem_hf.models.seem.configuration_seem import FOCAL_L

    torch.manual_seed(0)
    model = SeemForUniversalSegmentation(SeemConfig(backbone_config=FocalNetConfig(**{**FOCAL_L, **FOCAL_T})))
    model.eval()
    model.config.id2label = dict(enumerate(labels(133)))
    processor = SeemProcessor.from_pretrained(CHECKPOINTS / "seem-shapes")
    processor.image_processor.size = {"shortest_edge": size, "longest_edge": size}
    processor.image_processor.id2label = model.config.id2label
    started = time.perf_counter()
    with torch.inference_mode():
        class_embeddings = model.get_text_features(processor.tokenize_labels(labels(133)))
    notes["label set encoded once (133 labels x 81 templates)"] = time.perf_counter() - started
    pixel_values = torch.randn(1, 3, size, size)
    segmenter = pipeline("image-segmentation", model=model, image_processor=processor.image_processor,
                         processor=processor)
    image = random_image(size)
    return (
        "SEEM Focal-T (seem_hf)",
        model,
        lambda: model(pixel_values=pixel_values, class_embeddings=class_embeddings),
        lambda: segmenter(image, subtask="panoptic"),
    )


def build_mask2former(size: int, count: int, notes: dict):
    from transformers import (
        ImageSegmentationPipeline,
        Mask2FormerConfig,
        Mask2FormerForUniversalSegmentation,
        Mask2FormerImageProcessorPil,
        SwinConfig,
    )

    torch.manual_seed(0)
    config = Mask2FormerConfig(backbone_config=SwinConfig(**SWIN_T), use_pretrained_backbone=False,
                               num_labels=133, id2label=dict(enumerate(labels(133))))
    model = Mask2FormerForUniversalSegmentation(config).eval()
    image_processor = Mask2FormerImageProcessorPil(size={"shortest_edge": size, "longest_edge": size})
    pixel_values = torch.randn(1, 3, size, size)
    segmenter = ImageSegmentationPipeline(model=model, image_processor=image_processor)
    image = random_image(size)
    return (
        "Mask2Former Swin-T (transformers)",
        model,
        lambda: model(pixel_values=pixel_values),
        lambda: segmenter(image, subtask="panoptic"),
    )


def build_lseg(size: int, count: int, notes: dict):
    from transformers import pipeline

    from seem_hf import LSegConfig, LSegForSemanticSegmentation, LSegProcessor

    torch.manual_seed(0)
    model = LSegForSemanticSegmentation(LSegConfig()).eval()
    processor = LSegProcessor.from_pretrained(CHECKPOINTS / "lseg-shapes")
    processor.image_processor.size = {"height": size, "width": size}
    started = time.perf_counter()
    text = processor(text=labels(count), return_tensors="pt")
    with torch.inference_mode():
        class_embeddings = model.get_text_features(text["input_ids"], text["attention_mask"])
    notes[f"label set encoded once ({count} labels)"] = time.perf_counter() - started
    pixel_values = torch.randn(1, 3, size, size)
    segmenter = pipeline("image-segmentation", model=model, image_processor=processor.image_processor,
                         processor=processor)
    image = random_image(size)
    return (
        "LSeg ViT-L/16 (seem_hf)",
        model,
        lambda: model(pixel_values=pixel_values, class_embeddings=class_embeddings),
        lambda: segmenter(image, labels=labels(count)),
    )


def build_dpt(size: int, count: int, notes: dict):
    from transformers import DPTConfig, DPTForSemanticSegmentation, DPTImageProcessorPil, ImageSegmentationPipeline

    torch.manual_seed(0)
    # DPT-Large (Intel/dpt-large-ade): ViT-L/16, hooks 5, 11, 17, 23, fusion 256, ADE20K's 150 classes.
    config = DPTConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                       backbone_out_indices=[5, 11, 17, 23], neck_hidden_sizes=[256, 512, 1024, 1024],
                       image_size=size, num_labels=150, id2label={index: str(index) for index in range(150)})
    model = DPTForSemanticSegmentation(config).eval()
    image_processor = DPTImageProcessorPil(size={"height": size, "width": size}, keep_aspect_ratio=False)
    pixel_values = torch.randn(1, 3, size, size)
    segmenter = ImageSegmentationPipeline(model=model, image_processor=image_processor)
    image = random_image(size)
    return (
        "DPT-Large (transformers)",
        model,
        lambda: model(pixel_values=pixel_values),
        lambda: segmenter(image, subtask="semantic"),
    )


def build_clipseg(size: int, count: int, notes: dict):
    from transformers import (
        CLIPImageProcessorPil,
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
    )

    torch.manual_seed(0)
    # CIDAS/clipseg-rd64-refined sizes: CLIP ViT-B/16, reduce_dim 64, extract layers 3, 6, 9.
    config = CLIPSegConfig(vision_config={"patch_size": 16, "image_size": 224})
    model = CLIPSegForImageSegmentation(config).eval()
    from seem_hf import LSegProcessor

    processor = CLIPSegProcessor(  # the CLIP BPE tokenizer shipped with the LSeg default
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=LSegProcessor.from_pretrained(CHECKPOINTS / "lseg-shapes").tokenizer,
    )
    inputs = processor(text=labels(count), images=[random_image(size)] * count, padding=True, return_tensors="pt")
    image = random_image(size)

    def end_to_end():
        batch = processor(text=labels(count), images=[image] * count, padding=True, return_tensors="pt")
        logits = model(**batch, interpolate_pos_encoding=True).logits
        upsampled = torch.nn.functional.interpolate(logits[None], size=image.size[::-1], mode="bilinear")
        return upsampled[0].argmax(0)

    return (
        "CLIPSeg ViT-B/16 (transformers)",
        model,
        lambda: model(**inputs, interpolate_pos_encoding=True),
        end_to_end,
    )


BUILDERS = {"seem": build_seem, "mask2former": build_mask2former, "lseg": build_lseg, "dpt": build_dpt,
            "clipseg": build_clipseg}
PAIRS = [("seem", "mask2former"), ("lseg", "dpt"), ("lseg", "clipseg")]


def run_case(name: str, size: int, count: int, repeats: int) -> dict:
    # Random weights can drive activations (softmax tails) into denormal floats, which x86 handles tens of times
    # more slowly; which model suffers depends on the draw (LSeg's ViT did, DPT's identical one did not), so
    # every model runs with denormals flushed to zero, as trained weights would rarely produce them anyway.
    torch.set_flush_denormal(True)
    notes = {}
    description, model, forward, end_to_end = BUILDERS[name](size, count, notes)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            forward()
        forward_times = timed(forward, repeats)
        end_to_end_times = timed(end_to_end, repeats)
    return {
        "name": name, "description": description, "size": size,
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "forward": statistics.median(forward_times), "forward_min": min(forward_times),
        "end_to_end": statistics.median(end_to_end_times),
        "flops": counter.get_total_flops(),
        "peak_rss_gb": peak_resident_gb(),
        "notes": notes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seem-size", type=int, default=512)
    parser.add_argument("--lseg-size", type=int, default=384)
    parser.add_argument("--lseg-labels", type=int, default=10)
    parser.add_argument("--only", nargs="+", choices=sorted(BUILDERS))
    parser.add_argument("--results", type=Path)
    parser.add_argument("--case", choices=sorted(BUILDERS), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.case:
        print(json.dumps(run_case(options.case, options.size, options.count, options.repeats)))
        return

    rate = matmul_rate()
    print(f"matmul: {rate:.1f} GFLOP/s", flush=True)
    results = {}
    for name in options.only or BUILDERS:
        seem_pair = name in ("seem", "mask2former")
        size = options.seem_size if seem_pair else options.lseg_size
        count = 133 if seem_pair else options.lseg_labels
        completed = subprocess.run(
            [sys.executable, __file__, "--case", name, "--size", str(size), "--count", str(count),
             "--repeats", str(options.repeats)],
            capture_output=True, text=True, check=False,
        )
        if completed.returncode:
            raise SystemExit(f"{name} failed:\n{completed.stderr[-3000:]}")
        results[name] = json.loads(completed.stdout.strip().splitlines()[-1])
        print(results[name], flush=True)

    lines = [
        f"### SEEM and LSeg against their transformers peers ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); fp32 matmul rate measured in this run: {rate:.1f} GFLOP/s  ",
        "Command: `python benchmarks/peers.py " + " ".join(sys.argv[1:]) + "`",
        "",
        "| model | input | parameters (M) | forward (s) | end to end (s) | peak RSS (GB) | forward GFLOP | "
        "% of matmul rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results.values():
        fraction = result["flops"] / result["forward"] / 1e9 / rate
        result["fraction"] = fraction
        lines.append(
            f"| {result['description']} | {result['size']}x{result['size']} | {result['parameters'] / 1e6:.1f} | "
            f"{result['forward']:.2f} | {result['end_to_end']:.2f} | {result['peak_rss_gb']:.2f} | "
            f"{result['flops'] / 1e9:.1f} | {fraction:.1%} |"
        )
    comparisons = [
        f"| {results[ours]['description']} vs {results[peer]['description']} | "
        f"{results[ours]['fraction'] / results[peer]['fraction']:.2f} | "
        f"{results[peer]['forward'] / results[ours]['forward']:.2f}x | "
        f"{results[peer]['end_to_end'] / results[ours]['end_to_end']:.2f}x |"
        for ours, peer in PAIRS if ours in results and peer in results
    ]
    lines += [f"- {result['description']}: {note} in {seconds:.2f} s" for result in results.values()
              for note, seconds in result["notes"].items()]
    if comparisons:
        lines += ["", "| pair | throughput fraction, ours / peer's (target >= 0.90) | forward speed-up | "
                  "end-to-end speed-up |", "|---|---|---|---|", *comparisons]
    text = "\n".join(lines) + "\n"
    record_table(text, options.results)


if __name__ == "__main__":
    main()

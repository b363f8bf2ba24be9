"""DETR-panoptic against transformers' DetrForSegmentation: same weights, same inputs, one run.

    python benchmarks/detr_panoptic.py [--size 800 1066] [--repeats 3] [--skip-model] [--skip-memory] [--results benchmarks/RESULTS.md]

Measures, as medians over `--repeats` runs after a warm-up:
- post-processing alone (panoptic, instance, semantic), on realistic synthetic outputs of the full-size model
  (100 queries, 250 labels, 20 confident queries owning a Voronoi partition of the stride-4 mask grid),
  resized to `--size`: seem_hf's image processor against transformers' `DetrImageProcessorPil`;
- the forward of the full-size R50 model with random weights, ours against transformers' (the same modules:
  the ratio shows the noise), and with the mask head run only on the 20 queries that pass the score
  threshold (`mask_score_threshold`; random weights make no query confident, so the threshold is set just
  below the 20th best score, as a trained model on a COCO image would have it);
- the whole pipeline (pre-process a PIL image, forward, panoptic post-process at that threshold), checking
  that both give the same segments (with the default overlap rule, and with it off so that segments exist);
- the peak resident memory of one forward, each model in a fresh process (`--skip-memory` to leave out).
Prints a table and the ratios (transformers' time / ours: above 1 means seem_hf is faster), and appends them
to `--results` with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL.Image
import torch
from transformers import DetrConfig, DetrForSegmentation, DetrImageProcessorPil, ResNetConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import peak_resident_gb, record_table  # noqa: E402

from seem_hf import DetrPanopticForSegmentation, DetrPanopticImageProcessor  # noqa: E402
from seem_hf.postprocessing import keep_confident_queries  # noqa: E402


def median_seconds(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synthetic_outputs(num_queries=100, num_labels=250, height=200, width=266, confident=20, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, num_queries, num_labels + 1, generator=generator)
    masks = torch.randn(1, num_queries, height, width, generator=generator) - 8
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    queries = torch.randperm(num_queries, generator=generator)[:confident]
    logits[0, queries, torch.randint(0, num_labels, (confident,), generator=generator)] = 10
    centres = torch.rand(confident, 2, generator=generator) * torch.tensor([height, width])
    cell = ((rows[None] - centres[:, 0, None, None]) ** 2 + (cols[None] - centres[:, 1, None, None]) ** 2).argmin(0)
    for index, query in enumerate(queries):
        inside = cell == index
        masks[0, query][inside] = 8 + torch.randn(int(inside.sum()), generator=generator)
    return SimpleNamespace(logits=logits, pred_masks=masks)


def benchmark_postprocessing(size, repeats):
    ours, theirs = DetrPanopticImageProcessor(), DetrImageProcessorPil()
    outputs = synthetic_outputs(height=size[0] // 4, width=size[1] // 4)
    stuff = set(range(92, 250))
    rows = []
    calls = {
        "panoptic": (
            lambda p: p.post_process_panoptic_segmentation(
                outputs, threshold=0.85, label_ids_to_fuse=stuff, target_sizes=[size]
            )
        ),
        "instance": lambda p: p.post_process_instance_segmentation(outputs, threshold=0.85, target_sizes=[size]),
        "semantic": lambda p: p.post_process_semantic_segmentation(outputs, target_sizes=[size]),
    }
    for name, call in calls.items():
        reference, result = call(theirs), call(ours)
        if name == "semantic":
            differing = int((reference[0] != result[0]).sum())
            note = f"{differing} of {size[0] * size[1]} pixels differ"
        else:
            theirs_map = reference[0]["segmentation"].long()
            mismatch = theirs_map != result[0]["segmentation"].long()
            # transformers can give a segment an id already in use after a fusion (see seem_hf.postprocessing);
            # pixels of such reused ids are counted apart.
            labels_per_id = {}
            for info in reference[0]["segments_info"]:
                labels_per_id.setdefault(info["id"], set()).add(info["label_id"])
            reused = torch.tensor([i for i, labels in labels_per_id.items() if len(labels) > 1], dtype=torch.long)
            in_reused = torch.isin(theirs_map, reused)
            note = (
                f"{int((mismatch & ~in_reused).sum())} of {size[0] * size[1]} pixels differ"
                f" (+{int((mismatch & in_reused).sum())} in the {len(reused)} segment ids transformers reused)"
            )
        their_time = median_seconds(lambda: call(theirs), repeats)
        our_time = median_seconds(lambda: call(ours), repeats)
        rows.append((f"post-process {name} {size[0]}x{size[1]}", their_time, our_time, note))
    detr_time = median_seconds(
        lambda: ours.post_process_panoptic_segmentation(outputs, target_sizes=[size], rule="detr"), repeats
    )
    rows.append((f"post-process panoptic, original DETR rule {size[0]}x{size[1]}", None, detr_time, ""))
    return rows


def build_models():
    """transformers' full-size DETR-panoptic R50 (random weights, seeded) and seem_hf's model with its weights."""
    torch.manual_seed(0)
    config = DetrConfig(
        use_timm_backbone=False,
        backbone_config=ResNetConfig(out_features=["stage1", "stage2", "stage3", "stage4"]),
        num_labels=250,
    )
    reference = DetrForSegmentation(config).eval()
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        ours = DetrPanopticForSegmentation.from_pretrained(folder).eval()
    return reference, ours


def confident_threshold(ours, inputs, confident):
    """Random weights leave no query confident; as a trained model would, let `confident` queries pass the score
    threshold: the one just below the confident-th best score (found without running the mask head)."""
    with torch.inference_mode():
        logits = ours(**inputs, mask_score_threshold=2.0).logits
    scores = logits.softmax(-1)[..., :-1].max(-1).values.flatten().sort(descending=True).values
    return float((scores[confident - 1] + scores[confident]) / 2)


def test_image(size):
    return PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[0], size[1], 3), dtype=np.uint8))


def peak_memory_case(case, size, confident=20) -> dict:
    """One forward at `size` in this (fresh) process: its peak resident memory and time."""
    reference, ours = build_models()
    inputs = DetrPanopticImageProcessor()(images=test_image(size), return_tensors="pt")
    threshold = confident_threshold(ours, inputs, confident)
    model = reference if case == "transformers" else ours
    kwargs = {"mask_score_threshold": threshold} if case == "confident" else {}
    del reference, ours
    started = time.perf_counter()
    with torch.inference_mode():
        model(**inputs, **kwargs)
    return {"seconds": time.perf_counter() - started,
            "peak_rss_gb": peak_resident_gb()}


def benchmark_memory(size, confident=20):
    """Peak resident memory of one full-size forward, each in a fresh process."""
    results = {}
    for case in ("transformers", "all", "confident"):
        completed = subprocess.run(
            [sys.executable, __file__, "--memory-case", case, "--size", str(size[0]), str(size[1])],
            capture_output=True, text=True, check=False,
        )
        if completed.returncode:
            raise SystemExit(f"memory case {case} failed:\n{completed.stderr[-3000:]}")
        results[case] = json.loads(completed.stdout.strip().splitlines()[-1])
    theirs = results["transformers"]["peak_rss_gb"]
    return [
        (f"peak memory (GB), one forward R50 {size[0]}x{size[1]}, all 100 queries", theirs,
         results["all"]["peak_rss_gb"], "fresh process each; resident set, weights and Python included"),
        (f"peak memory (GB), one forward R50 {size[0]}x{size[1]}, masks of the {confident} confident queries",
         theirs, results["confident"]["peak_rss_gb"],
         f"ours / transformers' = {results['confident']['peak_rss_gb'] / theirs:.2f} (target <= 0.33)"),
    ]


def benchmark_model(size, repeats, confident=20):
    reference, ours = build_models()
    our_processor, their_processor = DetrPanopticImageProcessor(), DetrImageProcessorPil()
    image = test_image(size)

    inputs = our_processor(images=image, return_tensors="pt")
    with torch.inference_mode():
        difference = (ours(**inputs).pred_masks - reference(**inputs).pred_masks).abs().max().item()
    threshold = confident_threshold(ours, inputs, confident)

    def forward(model, **kwargs):
        with torch.inference_mode():
            return model(**inputs, **kwargs)

    def pipeline(model, processor, mask_threshold=0.5, overlap_mask_area_threshold=0.8, **kwargs):
        inputs = processor(images=image, return_tensors="pt")
        with torch.inference_mode():
            outputs = model(pixel_values=inputs["pixel_values"], pixel_mask=inputs["pixel_mask"], **kwargs)
        return processor.post_process_panoptic_segmentation(
            outputs, threshold=threshold, mask_threshold=mask_threshold,
            overlap_mask_area_threshold=overlap_mask_area_threshold, target_sizes=[size],
        )

    with torch.inference_mode():
        unpruned = ours(**inputs)

    def same_result(**kwargs):
        """Whether the pruned forward gives the segments of the unpruned one (same post-processor), and how many
        pixels differ from transformers' pipeline, with how many of them sit on a near-tie (the two best
        queries' weighted mask probabilities within 1e-6 at low resolution: random weights make the confident
        queries nearly indistinct, where any two implementations of the argmax may pick differently)."""
        theirs_result = pipeline(reference, their_processor, **kwargs)[0]
        ours_result = pipeline(ours, our_processor, mask_score_threshold=threshold, **kwargs)[0]
        unpruned_result = our_processor.post_process_panoptic_segmentation(
            unpruned, threshold=threshold, target_sizes=[size],
            **{"mask_threshold": 0.5, "overlap_mask_area_threshold": 0.8, **kwargs},
        )[0]
        pruning_same = unpruned_result["segments_info"] == ours_result["segments_info"] and torch.equal(
            unpruned_result["segmentation"].long(), ours_result["segmentation"].long()
        )
        differing = theirs_result["segmentation"].long() != ours_result["segmentation"].long()
        scores, _, confident = keep_confident_queries(unpruned.logits[0], threshold)
        weighted = unpruned.pred_masks[0, confident].sigmoid() * scores[confident, None, None]
        top = weighted.topk(2, dim=0).values if len(weighted) > 1 else None
        near_tie = None if top is None else torch.nn.functional.interpolate(
            ((top[0] - top[1]) < 1e-6).float()[None, None], size=size, mode="nearest")[0, 0].bool()
        ties = 0 if near_tie is None else int((differing & near_tie).sum())
        return (f"{len(ours_result['segments_info'])} segments, pruned = unpruned: "
                + ("same" if pruning_same else "DIFFERENT")
                + f"; vs transformers: {int(differing.sum())} pixels differ ({ties} of them at near-ties), "
                + ("same segments_info" if theirs_result["segments_info"] == ours_result["segments_info"]
                   else "segments_info differ"))

    # Random weights give masks below 0.5 almost everywhere, so the default rule leaves no segment; with the mask
    # and overlap thresholds at 0, each confident query that wins pixels is a segment, which tests more.
    same_by_default = same_result()
    same_without_overlap_rule = same_result(mask_threshold=0.0, overlap_mask_area_threshold=0.0)
    rows = [
        (f"forward R50 {size[0]}x{size[1]}, all 100 queries", median_seconds(lambda: forward(reference), repeats),
         median_seconds(lambda: forward(ours), repeats), f"max pred_masks difference {difference:.1e}"),
        (f"forward R50 {size[0]}x{size[1]}, masks of the {confident} confident queries",
         median_seconds(lambda: forward(reference), repeats),
         median_seconds(lambda: forward(ours, mask_score_threshold=threshold), repeats), "transformers runs all 100"),
        (f"whole pipeline R50 {size[0]}x{size[1]}", median_seconds(lambda: pipeline(reference, their_processor), repeats),
         median_seconds(lambda: pipeline(ours, our_processor, mask_score_threshold=threshold), repeats),
         f"pre-process + forward + panoptic; default thresholds: {same_by_default}; mask and overlap thresholds 0: "
         f"{same_without_overlap_rule}"),
    ]
    return rows


def machine() -> str:
    cpu = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), {platform.python_version()}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=[800, 1066], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postprocess-repeats", type=int, default=15)
    parser.add_argument("--skip-model", action="store_true", help="only post-processing (no full-size forward)")
    parser.add_argument("--skip-postprocessing", action="store_true", help="no post-processing comparison")
    parser.add_argument("--skip-memory", action="store_true", help="no peak-memory processes")
    parser.add_argument("--results", type=Path, help="append the table to this Markdown file")
    parser.add_argument("--memory-case", choices=["transformers", "all", "confident"], help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    size = tuple(arguments.size)
    if arguments.memory_case:
        print(json.dumps(peak_memory_case(arguments.memory_case, size)))
        return

    rows = [] if arguments.skip_postprocessing else benchmark_postprocessing(size, arguments.postprocess_repeats)
    if not arguments.skip_model:
        rows += benchmark_model(size, arguments.repeats)
    if not arguments.skip_memory:
        rows += benchmark_memory(size)
    lines = [
        f"### DETR-panoptic vs transformers ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {machine()}  ",
        f"Command: `python {' '.join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))}`",
        "",
        "| measurement | transformers (s) | seem_hf (s) | ratio (transformers / ours) | note |",
        "|---|---|---|---|---|",
    ]
    for name, theirs, ours, note in rows:
        if theirs is None:
            lines.append(f"| {name} | - | {ours:.4f} | - | {note} |")
        else:
            lines.append(f"| {name} | {theirs:.4f} | {ours:.4f} | {theirs / ours:.2f}x | {note} |")
    text = "\n".join(lines) + "\n"
    record_table(text, arguments.results)


if __name__ == "__main__":
    main()

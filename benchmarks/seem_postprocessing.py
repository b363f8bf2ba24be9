"""SEEM's post-processing against transformers' Mask2Former post-processing, on the same outputs.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/seem_postprocessing.py [--size 800 1066] [--repeats 15] \
        [--results benchmarks/RESULTS.md]

SEEM's outputs have Mask2Former's form (`class_queries_logits` (1, Q, C + 1), `masks_queries_logits` (1, Q, h, w)),
so transformers' `Mask2FormerImageProcessorPil` reads them as they are. The outputs are the DETR benchmark's
realistic synthetic ones (101 queries, 133 labels, 20 confident queries owning a Voronoi partition of the
stride-4 grid), resized to `--size`. Panoptic uses the same rule on both sides (score 0.8, mask 0.5, overlap 0.8:
SEEM's thresholds), so the results are compared pixel by pixel; instance (binary maps, for mask AP) ranks
(query, label) pairs as SEEM does (top 100), transformers' Mask2Former ranks the top Q. Semantic differs by design:
SEEM (as the original) upsamples the masks before combining them with the class scores, transformers combines
at low resolution and upsamples the scores, so only the time is compared. Each result is also compared with SEEM's
rules written out plainly ("faithful": every mask resized by torch's bilinear then antialiased bicubic
`interpolate`, as before issue 19), whose time is shown too. The three implementations run in turn, `--repeats`
times after a warm-up (medians), so that a busy machine slows them alike.

Run as `nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/seem_postprocessing.py` on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from transformers import Mask2FormerImageProcessorPil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detr_panoptic import machine, synthetic_outputs  # noqa: E402

from seem_hf import SeemImageProcessor  # noqa: E402
from seem_hf.postprocessing import keep_confident_queries, panoptic_segmentation  # noqa: E402
from common import record_table  # noqa: E402


def faithful_resize(mask_logits, size):
    """SEEM's resize as torch computes it (the synthetic outputs have no padding: image = padded size)."""
    padded = tuple(4 * side for side in mask_logits.shape[-2:])
    upsampled = F.interpolate(mask_logits[None], size=padded, mode="bilinear", align_corners=False)
    return F.interpolate(upsampled, size=size, mode="bicubic", align_corners=False, antialias=True)[0]


def faithful_panoptic(outputs, size, stuff, threshold=0.8, mask_threshold=0.5, overlap=0.8):
    class_logits = outputs.class_queries_logits[0]
    kept = torch.nonzero(keep_confident_queries(class_logits, threshold)[2]).flatten()
    masks = faithful_resize(outputs.masks_queries_logits[0, kept], size)
    return panoptic_segmentation(class_logits[kept][None], masks[None], threshold, mask_threshold, overlap, stuff)[0]


def faithful_instance(outputs, size, threshold=0.8, top_k=100):
    probabilities = outputs.class_queries_logits[0].softmax(-1)[:, :-1]
    scores, flat = probabilities.flatten().topk(top_k)
    labels, queries = flat % probabilities.shape[1], flat // probabilities.shape[1]
    masks = faithful_resize(outputs.masks_queries_logits[0, queries], size)
    binary = masks > 0
    scores = scores * (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    order = scores.argsort(descending=True)
    order = order[scores[order] > threshold]
    return {"segmentation": binary[order], "labels": labels[order].tolist()}


def faithful_semantic(outputs, size):
    masks = faithful_resize(outputs.masks_queries_logits[0], size)
    scores = masks.sigmoid().flatten(1).t() @ outputs.class_queries_logits[0].softmax(-1)[:, :-1]
    return scores.argmax(-1).view(size)


def interleaved_medians(functions, repeats):
    """Median seconds of each function, run in turn `repeats` times after one warm-up each."""
    for function in functions:
        function()
    times = [[] for _ in functions]
    for _ in range(repeats):
        for function, spent in zip(functions, times):
            start = time.perf_counter()
            function()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=[800, 1066], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--results", type=Path)
    options = parser.parse_args()
    size = tuple(options.size)
    raw = synthetic_outputs(num_queries=101, num_labels=133, height=size[0] // 4, width=size[1] // 4)
    outputs = SimpleNamespace(class_queries_logits=raw.logits, masks_queries_logits=raw.pred_masks)
    ours = SeemImageProcessor()
    theirs = Mask2FormerImageProcessorPil()
    stuff = set(range(80, 133))
    rule = dict(threshold=0.8, mask_threshold=0.5, overlap_mask_area_threshold=0.8, target_sizes=[size])
    calls = {
        "panoptic": lambda p: p.post_process_panoptic_segmentation(outputs, label_ids_to_fuse=stuff, **rule),
        "instance (binary maps)": lambda p: p.post_process_instance_segmentation(
            outputs, return_binary_maps=True, **rule),
        "semantic": lambda p: p.post_process_semantic_segmentation(outputs, target_sizes=[size]),
    }
    faithful = {
        "panoptic": lambda: faithful_panoptic(outputs, size, stuff),
        "instance (binary maps)": lambda: faithful_instance(outputs, size),
        "semantic": lambda: faithful_semantic(outputs, size),
    }
    pixels = size[0] * size[1]
    rows = []
    for name, call in calls.items():
        reference, result, plain = call(theirs)[0], call(ours)[0], faithful[name]()
        if name == "semantic":
            note = (f"{int((result != plain).sum())} of {pixels} pixels differ from the faithful rule; against "
                    "transformers different by design (see the script), time only")
        elif name.startswith("instance"):
            same = [info["label_id"] for info in result["segments_info"]] == plain["labels"]
            differing = int((result["segmentation"] != plain["segmentation"]).sum()) if same else -1
            note = (f"{len(result['segments_info'])} instances, {'the same' if same else 'NOT the same'} as the "
                    f"faithful rule's ({differing} mask pixels differ); against transformers' "
                    f"{len(reference['segments_info'])}: SEEM's top-100 (query, label) rule, transformers' top-Q; "
                    "time only")
        else:
            differing = int((reference["segmentation"].long() != result["segmentation"].long()).sum())
            from_plain = int((plain["segmentation"] != result["segmentation"]).sum())
            same_info = plain["segments_info"] == result["segments_info"]
            note = (f"{len(result['segments_info'])} segments; {from_plain} of {pixels} pixels differ from the "
                    f"faithful rule ({'same' if same_info else 'DIFFERENT'} segments_info); against transformers "
                    f"{differing} differ, "
                    + ("same segments_info" if reference["segments_info"] == result["segments_info"]
                       else "segments_info differ"))
        their_time, our_time, plain_time = interleaved_medians(
            [lambda: call(theirs), lambda: call(ours), faithful[name]], options.repeats)
        rows.append((f"post-process {name} {size[0]}x{size[1]}", their_time, our_time, plain_time, note))
    lines = [
        f"### SEEM post-processing vs transformers' Mask2Former ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {machine()}  ",
        "Command: `nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/seem_postprocessing.py "
        + " ".join(sys.argv[1:]) + "`",
        "",
        "| measurement | transformers (s) | seem_hf (s) | speed-up | faithful rule (s) | note |",
        "|---|---|---|---|---|---|",
        *(f"| {name} | {t:.4f} | {o:.4f} | {t / o:.2f}x | {f:.4f} | {note} |" for name, t, o, f, note in rows),
    ]
    text = "\n".join(lines) + "\n"
    record_table(text, options.results)


if __name__ == "__main__":
    main()

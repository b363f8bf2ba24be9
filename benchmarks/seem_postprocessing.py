"""SEEM's post-processing against transformers' Mask2Former post-processing, on the same outputs.

    python benchmarks/seem_postprocessing.py [--size 800 1066] [--repeats 15] [--results benchmarks/RESULTS.md]

SEEM's outputs have Mask2Former's form (`class_queries_logits` (1, Q, C + 1), `masks_queries_logits` (1, Q, h, w)),
so transformers' `Mask2FormerImageProcessorPil` reads them as they are. The outputs are the DETR benchmark's
realistic synthetic ones (101 queries, 133 labels, 20 confident queries owning a Voronoi partition of the
stride-4 grid), resized to `--size`. Panoptic uses the same rule on both sides (score 0.8, mask 0.5, overlap 0.8:
SEEM's thresholds), so the results are compared pixel by pixel; instance (binary maps, for mask AP) ranks
(query, label) pairs as SEEM does (top 100), transformers' Mask2Former ranks the top Q. Semantic differs by design:
SEEM (as the original) upsamples the masks before combining them with the class scores, transformers combines
at low resolution and upsamples the scores, so only the time is compared. Medians after a warm-up.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

from transformers import Mask2FormerImageProcessorPil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detr_panoptic import machine, median_seconds, synthetic_outputs  # noqa: E402

from seem_hf import SeemImageProcessor  # noqa: E402


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
    rows = []
    for name, call in calls.items():
        reference, result = call(theirs)[0], call(ours)[0]
        if name == "semantic":
            note = "different by design (see the script); time only"
        elif name.startswith("instance"):
            note = (f"{len(result['segments_info'])} instances against transformers' "
                    f"{len(reference['segments_info'])}: SEEM's top-100 (query, label) rule, transformers' top-Q; "
                    "time only")
        else:
            differing = int((reference["segmentation"].long() != result["segmentation"].long()).sum())
            note = (f"{len(result['segments_info'])} segments; {differing} of {size[0] * size[1]} pixels differ; "
                    + ("same segments_info" if reference["segments_info"] == result["segments_info"]
                       else "segments_info differ"))
        their_time, our_time = median_seconds(lambda: call(theirs), options.repeats), median_seconds(
            lambda: call(ours), options.repeats)
        rows.append((f"post-process {name} {size[0]}x{size[1]}", their_time, our_time, note))
    lines = [
        f"### SEEM post-processing vs transformers' Mask2Former ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {machine()}  ",
        "Command: `python benchmarks/seem_postprocessing.py " + " ".join(sys.argv[1:]) + "`",
        "",
        "| measurement | transformers (s) | seem_hf (s) | speed-up | note |",
        "|---|---|---|---|---|",
        *(f"| {name} | {t:.4f} | {o:.4f} | {t / o:.2f}x | {note} |" for name, t, o, note in rows),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if options.results:
        with options.results.open("a") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()

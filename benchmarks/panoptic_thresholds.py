"""Held-out PQ (all, things, stuff) of a DETR-panoptic folder by panoptic post-processing rule and score
threshold: the 16 images of the shapes stream's held-out set that `scripts/train_defaults.py` evaluates on.

    python benchmarks/panoptic_thresholds.py seem_hf/checkpoints/detr_panoptic-shapes [--thresholds 0.3 0.5 0.7 0.85]

A trained model's class scores decide what survives the threshold (the pipelines' default is transformers' 0.9), so
a model can score well at one setting and keep nothing at another.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from transformers import AutoModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from train_defaults import held_out_set  # noqa: E402

from seem_hf import DetrPanopticImageProcessor  # noqa: E402
from seem_hf.data.shapes import SHAPES_VOCABULARY  # noqa: E402
from seem_hf.metrics import PanopticQualityAccumulator, SemanticSegmentationAccumulator  # noqa: E402
from seem_hf.training import DetrPanopticCollator  # noqa: E402
from seem_hf.training.trainer import SegmentationTrainer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a saved DETR-panoptic model (with its image processor)")
    parser.add_argument("--processor", type=Path, help="the image processor's folder, when not the model's")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.85])
    options = parser.parse_args()
    model = AutoModel.from_pretrained(options.folder).eval()
    processor = DetrPanopticImageProcessor.from_pretrained(options.processor or options.folder)
    held_out = held_out_set()
    rows = [held_out[index] for index in range(len(held_out))]
    batch = DetrPanopticCollator(processor)(rows)
    targets = batch.pop("labels")
    with torch.no_grad():
        outputs = model(**batch)
    size = tuple(batch["pixel_values"].shape[-2:])
    categories = SHAPES_VOCABULARY.coco_categories()
    print("| rule, score threshold | " + " | ".join(map(str, options.thresholds)) + " |")
    print("|---|" + "---|" * len(options.thresholds))
    for rule in ("maskformer", "detr"):
        cells = []
        for threshold in options.thresholds:
            panoptic = PanopticQualityAccumulator(categories)
            semantic = SemanticSegmentationAccumulator(len(categories))
            results = processor.post_process_panoptic_segmentation(
                outputs, threshold=threshold, target_sizes=[size] * len(rows), rule=rule)
            for result, target, valid in zip(results, targets, batch["pixel_mask"].bool()):
                SegmentationTrainer._add_image(panoptic, semantic, result, target, int(valid.any(1).sum()),
                                               int(valid.any(0).sum()))
            scores = panoptic.compute()
            cells.append(" / ".join(f"{100 * scores[part]['pq']:.1f}" for part in ("All", "Things", "Stuff")))
        print(f"| {rule}: PQ / things / stuff | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

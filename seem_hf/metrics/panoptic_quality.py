"""Panoptic quality with panopticapi's definitions (Kirillov et al., "Panoptic Segmentation", 2019).

Per image, a predicted and a ground-truth segment of the same category match when their IoU exceeds 0.5,
where the union leaves out the predicted pixels that fall on void (matches are then unique). Crowd
ground-truth segments are never matched; unmatched ground truth (not crowd) counts as a false negative, and an
unmatched prediction counts as a false positive unless more than half of it lies on void or on a crowd
region of its category. Per category, PQ = sum(IoU of matches) / (TP + FP/2 + FN/2) = SQ x RQ, with
SQ = sum(IoU) / TP and RQ = TP / (TP + FP/2 + FN/2); the averages are over categories that occur (TP + FP +
FN > 0), separately for All, Things and Stuff.

`pq_compute` reads the standard results format (a JSON with `annotations[].segments_info` and a folder of
PNGs) and returns panopticapi's dictionary. `PanopticQualityAccumulator` does the same in memory, one image
at a time, and sums its statistics across processes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from seem_hf.data.panoptic_format import rgb2id

VOID = 0
_OFFSET = 256**3


class PanopticQualityAccumulator:
    """Sums, per category, the IoU of matched segments and the TP, FP and FN counts.

    Args:
        categories: COCO-panoptic categories (`id`, `isthing`; `name` is kept in the results).
    """

    def __init__(self, categories: list[dict]):
        self.categories = {int(c["id"]): c for c in categories}
        self._index = {category_id: index for index, category_id in enumerate(self.categories)}
        # Columns: IoU sum, TP, FP, FN. float64 so that sums across processes are exact for counts.
        self.stats = torch.zeros(len(self.categories), 4, dtype=torch.float64)

    def update(self, gt_ids: np.ndarray, gt_segments: list[dict], pred_ids: np.ndarray, pred_segments: list[dict],
               image: str = "") -> None:
        """Add one image: segment-id maps (H, W) and their `segments_info` (`id`, `category_id`, and for the
        ground truth `iscrowd` and `area`, as in the JSON; prediction areas are counted from the map)."""
        gt_ids, pred_ids = np.asarray(gt_ids, dtype=np.int64), np.asarray(pred_ids, dtype=np.int64)
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"{image}: prediction {pred_ids.shape} and ground truth {gt_ids.shape} differ in size.")
        gt_by_id = {int(s["id"]): s for s in gt_segments}
        pred_by_id = {int(s["id"]): dict(s) for s in pred_segments}
        labels, counts = np.unique(pred_ids, return_counts=True)
        for label, count in zip(labels.tolist(), counts.tolist()):
            if label == VOID:
                continue
            if label not in pred_by_id:
                raise KeyError(f"{image}: segment {label} is in the predicted PNG but not in its segments_info.")
            if pred_by_id[label]["category_id"] not in self.categories:
                raise KeyError(f"{image}: predicted segment {label} has unknown category {pred_by_id[label]['category_id']}.")
            pred_by_id[label]["area"] = count
        missing = [label for label, segment in pred_by_id.items() if "area" not in segment or label not in labels]
        if missing:
            raise KeyError(f"{image}: predicted segments {missing} are in segments_info but not in the PNG.")

        pairs, intersections = np.unique(gt_ids * _OFFSET + pred_ids, return_counts=True)
        overlap = {(int(p // _OFFSET), int(p % _OFFSET)): int(n) for p, n in zip(pairs, intersections)}
        gt_matched, pred_matched = set(), set()
        for (gt_label, pred_label), intersection in overlap.items():
            gt, pred = gt_by_id.get(gt_label), pred_by_id.get(pred_label)
            if gt is None or pred is None or gt.get("iscrowd", 0) == 1 or gt["category_id"] != pred["category_id"]:
                continue
            union = pred["area"] + gt["area"] - intersection - overlap.get((VOID, pred_label), 0)
            iou = intersection / union
            if iou > 0.5:
                row = self._index[gt["category_id"]]
                self.stats[row, 0] += iou
                self.stats[row, 1] += 1
                gt_matched.add(gt_label)
                pred_matched.add(pred_label)
        crowd_by_category = {}
        for gt_label, gt in gt_by_id.items():
            if gt_label in gt_matched:
                continue
            if gt.get("iscrowd", 0) == 1:
                crowd_by_category[gt["category_id"]] = gt_label
                continue
            self.stats[self._index[gt["category_id"]], 3] += 1
        for pred_label, pred in pred_by_id.items():
            if pred_label in pred_matched:
                continue
            ignored = overlap.get((VOID, pred_label), 0)
            if pred["category_id"] in crowd_by_category:
                ignored += overlap.get((crowd_by_category[pred["category_id"]], pred_label), 0)
            if ignored / pred["area"] > 0.5:
                continue
            self.stats[self._index[pred["category_id"]], 2] += 1

    def sync(self) -> None:
        """Sum the statistics of every process (a no-op outside `torch.distributed`)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.stats)

    def compute(self) -> dict:
        """panopticapi's result dictionary: `All`, `Things`, `Stuff` (each `pq`, `sq`, `rq`, `n`) and
        `per_class` (category id -> `pq`, `sq`, `rq`). With no category present, the averages are 0 and `n`
        is 0 (panopticapi divides by zero there)."""
        results = {}
        for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
            totals, per_class = np.zeros(3), {}
            count = 0
            for category_id, category in self.categories.items():
                if isthing is not None and bool(category["isthing"]) != isthing:
                    continue
                iou, tp, fp, fn = self.stats[self._index[category_id]].tolist()
                if tp + fp + fn == 0:
                    per_class[category_id] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                    continue
                count += 1
                scores = (iou / (tp + 0.5 * fp + 0.5 * fn), iou / tp if tp else 0.0, tp / (tp + 0.5 * fp + 0.5 * fn))
                per_class[category_id] = dict(zip(("pq", "sq", "rq"), scores))
                totals += scores
            averages = totals / count if count else totals
            results[name] = {"pq": float(averages[0]), "sq": float(averages[1]), "rq": float(averages[2]), "n": count}
            if name == "All":
                results["per_class"] = per_class
        return results


def _read_ids(path: Path) -> np.ndarray:
    return rgb2id(np.asarray(PIL.Image.open(path).convert("RGB")))


def pq_compute(
    gt_json_file: str | Path, gt_folder: str | Path, pred_json_file: str | Path, pred_folder: str | Path
) -> dict:
    """Panoptic quality of predictions in COCO-panoptic results format against ground truth, as panopticapi's
    `pq_compute` (same definitions, same result dictionary; see the module docstring)."""
    gt_json = json.loads(Path(gt_json_file).read_text(encoding="utf-8"))
    pred_json = json.loads(Path(pred_json_file).read_text(encoding="utf-8"))
    predictions = {annotation["image_id"]: annotation for annotation in pred_json["annotations"]}
    accumulator = PanopticQualityAccumulator(gt_json["categories"])
    for gt_annotation in gt_json["annotations"]:
        image_id = gt_annotation["image_id"]
        if image_id not in predictions:
            raise KeyError(f"No prediction for the image with id {image_id}.")
        pred_annotation = predictions[image_id]
        accumulator.update(
            _read_ids(Path(gt_folder) / gt_annotation["file_name"]),
            gt_annotation["segments_info"],
            _read_ids(Path(pred_folder) / pred_annotation["file_name"]),
            pred_annotation["segments_info"],
            image=pred_annotation["file_name"],
        )
    return accumulator.compute()


__all__ = ["PanopticQualityAccumulator", "pq_compute"]

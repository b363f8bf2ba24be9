"""In-memory segmentation metrics for `Trainer.compute_metrics` and evaluation loops: semantic (mIoU, pixel
accuracy), instance (mask AP through pycocotools), referring (cIoU, mIoU) and interactive (NoC).

Each accumulator is updated one image (or sentence) at a time and gives the same numbers when the updates
are spread over processes: `sync()` sums the statistics (or gathers the detections) of every process under
`torch.distributed`, and is a no-op otherwise.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class SemanticSegmentationAccumulator:
    """Confusion matrix over `num_labels` classes; pixels whose target is `ignore_index` are left out.

    mIoU averages IoU = TP / (TP + FP + FN) over the classes that occur in the targets or predictions
    (union > 0); pixel accuracy is the fraction of counted pixels labelled right."""

    def __init__(self, num_labels: int, ignore_index: int = 255):
        self.num_labels, self.ignore_index = num_labels, ignore_index
        self.confusion = torch.zeros(num_labels, num_labels, dtype=torch.int64)

    def update(self, prediction, target) -> None:
        """Add one (H, W) predicted label map and its target (tensors or arrays)."""
        prediction, target = torch.as_tensor(np.asarray(prediction)), torch.as_tensor(np.asarray(target))
        if prediction.shape != target.shape:
            raise ValueError(f"Prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in size.")
        counted = target != self.ignore_index
        prediction, target = prediction[counted].long(), target[counted].long()
        if len(target) and (target.min() < 0 or target.max() >= self.num_labels):
            raise ValueError(f"Target labels must lie in [0, {self.num_labels}) or be {self.ignore_index}.")
        if len(prediction) and (prediction.min() < 0 or prediction.max() >= self.num_labels):
            raise ValueError(f"Predicted labels must lie in [0, {self.num_labels}).")
        self.confusion += torch.bincount(target * self.num_labels + prediction, minlength=self.num_labels**2).view(
            self.num_labels, self.num_labels
        )

    def sync(self) -> None:
        if _distributed():
            torch.distributed.all_reduce(self.confusion)

    def compute(self) -> dict:
        """`mean_iou`, `pixel_accuracy`, and `per_class_iou` (NaN for classes that never occur)."""
        confusion = self.confusion.double()
        true_positive = confusion.diag()
        union = confusion.sum(0) + confusion.sum(1) - true_positive
        iou = torch.where(union > 0, true_positive / union.clamp(min=1), torch.full_like(union, float("nan")))
        present = union > 0
        total = confusion.sum()
        return {
            "mean_iou": float(iou[present].mean()) if present.any() else 0.0,
            "pixel_accuracy": float(true_positive.sum() / total) if total > 0 else 0.0,
            "per_class_iou": iou.tolist(),
        }


class MaskAPAccumulator:
    """COCO mask AP (pycocotools' COCOeval, `segm`) over predicted instances and ground-truth masks."""

    def __init__(self, category_ids: Sequence[int]):
        self.category_ids = [int(c) for c in category_ids]
        self.ground_truth: list[dict] = []
        self.detections: list[dict] = []
        self.images: list[dict] = []

    @staticmethod
    def _rle(mask: np.ndarray) -> dict:
        rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        return rle

    def update(self, image_id: int, gt_masks, gt_labels, pred_masks, pred_labels, pred_scores, gt_iscrowd=None):
        """Add one image: ground-truth masks (N, H, W) with labels, predicted masks (M, H, W) with labels and
        scores. Labels are category ids among `category_ids`."""
        gt_masks, pred_masks = np.asarray(gt_masks, dtype=bool), np.asarray(pred_masks, dtype=bool)
        height, width = gt_masks.shape[-2:] if gt_masks.ndim == 3 else pred_masks.shape[-2:]
        self.images.append({"id": int(image_id), "height": int(height), "width": int(width)})
        crowd = np.zeros(len(gt_masks), bool) if gt_iscrowd is None else np.asarray(gt_iscrowd, bool)
        for mask, label, iscrowd in zip(gt_masks, np.asarray(gt_labels).tolist(), crowd.tolist()):
            rle = self._rle(mask)
            self.ground_truth.append({
                "id": len(self.ground_truth) + 1, "image_id": int(image_id), "category_id": int(label),
                "segmentation": rle, "area": float(mask.sum()), "bbox": mask_utils.toBbox(rle).tolist(),
                "iscrowd": int(iscrowd),
            })
        for mask, label, score in zip(pred_masks, np.asarray(pred_labels).tolist(), np.asarray(pred_scores).tolist()):
            self.detections.append(
                {"image_id": int(image_id), "category_id": int(label), "segmentation": self._rle(mask), "score": float(score)}
            )

    def sync(self) -> None:
        if _distributed():
            gathered = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, (self.images, self.ground_truth, self.detections))
            self.images = [image for part in gathered for image in part[0]]
            ground_truth = [annotation for part in gathered for annotation in part[1]]
            self.ground_truth = [dict(a, id=index + 1) for index, a in enumerate(ground_truth)]
            self.detections = [detection for part in gathered for detection in part[2]]

    def compute(self) -> dict:
        """`map`, `map_50`, `map_75`, `map_small`, `map_medium`, `map_large` (COCOeval's first six numbers)."""
        names = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large")
        if not self.ground_truth:
            return dict.fromkeys(names, 0.0)
        coco = COCO()
        coco.dataset = {
            "images": sorted(self.images, key=lambda image: image["id"]),
            "annotations": self.ground_truth,
            "categories": [{"id": c} for c in self.category_ids],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
            detections = coco.loadRes(self.detections) if self.detections else COCO()
            if not self.detections:
                return dict.fromkeys(names, 0.0)
            evaluation = COCOeval(coco, detections, "segm")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        return {name: max(float(value), 0.0) for name, value in zip(names, evaluation.stats[:6])}


class ReferringAccumulator:
    """Referring segmentation: cIoU = total intersection / total union over all sentences, mIoU = mean of
    per-sentence IoUs, and the fraction of sentences with IoU above 0.5, 0.7 and 0.9."""

    def __init__(self):
        # Columns: intersection, union, IoU; one row per sentence.
        self.rows = torch.zeros(0, 3, dtype=torch.float64)

    def update(self, prediction, target) -> None:
        """Add one sentence: predicted and target (H, W) binary masks."""
        prediction, target = np.asarray(prediction, bool), np.asarray(target, bool)
        if prediction.shape != target.shape:
            raise ValueError(f"Prediction {prediction.shape} and target {target.shape} differ in size.")
        intersection, union = float((prediction & target).sum()), float((prediction | target).sum())
        iou = intersection / union if union else 1.0  # an empty target found empty is right
        self.rows = torch.cat([self.rows, torch.tensor([[intersection, union, iou]], dtype=torch.float64)])

    def sync(self) -> None:
        if _distributed():
            gathered = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, self.rows)
            self.rows = torch.cat(gathered)

    def compute(self) -> dict:
        if len(self.rows) == 0:
            return {"ciou": 0.0, "miou": 0.0, "precision@0.5": 0.0, "precision@0.7": 0.0, "precision@0.9": 0.0}
        intersection, union, iou = self.rows.T
        results = {"ciou": float(intersection.sum() / union.sum().clamp(min=1)), "miou": float(iou.mean())}
        for threshold in (0.5, 0.7, 0.9):
            results[f"precision@{threshold}"] = float((iou > threshold).double().mean())
        return results


def number_of_clicks(ious_per_click: Sequence[Sequence[float]], thresholds=(0.85, 0.9), max_clicks: int = 20) -> dict:
    """NoC@t: for each object, the number of clicks after which its IoU first reaches t (`max_clicks` when it
    never does within `max_clicks`), averaged over objects. `ious_per_click[i][k]` is object i's IoU after
    click k + 1."""
    if not ious_per_click:
        raise ValueError("number_of_clicks needs at least one object.")
    results = {}
    for threshold in thresholds:
        clicks = []
        for ious in ious_per_click:
            reached = [k + 1 for k, iou in enumerate(list(ious)[:max_clicks]) if iou >= threshold]
            clicks.append(reached[0] if reached else max_clicks)
        results[f"noc@{round(threshold * 100)}"] = float(np.mean(clicks))
    return results


__all__ = [
    "MaskAPAccumulator",
    "ReferringAccumulator",
    "SemanticSegmentationAccumulator",
    "number_of_clicks",
]

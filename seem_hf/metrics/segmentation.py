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


def binary_masks(masks, name: str) -> np.ndarray:
    """`masks` (an array, a tensor on any device or nested lists) as booleans. Values other than 0 and 1 (the
    probabilities or logits of a mask head) are refused: casting them to bool would count every non-zero pixel."""
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.dtype == bool:
        return masks
    if masks.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be binary masks (booleans or 0/1); got values of type {masks.dtype}.")
    other = masks[(masks != 0) & (masks != 1)]
    if other.size:
        raise ValueError(f"{name} holds values other than 0 and 1 (e.g. {other[:3].tolist()}): binarise them first, "
                         "e.g. `probabilities > 0.5` or `logits > 0`.")
    return masks.astype(bool)


def rle_masks(masks) -> np.ndarray | None:
    """COCO run-length encodings (a dict, or a list of them, `counts` compressed or as a list) decoded to (N, H, W)
    booleans; None when `masks` holds none."""
    if isinstance(masks, dict):
        masks = [masks]
    if not isinstance(masks, (list, tuple)) or not masks or not all(isinstance(m, dict) for m in masks):
        return None
    decoded = []
    for rle in masks:
        if "counts" not in rle or "size" not in rle:
            raise ValueError(f"A run-length encoded mask needs `size` and `counts` (COCO RLE); got keys {list(rle)}.")
        height, width = (int(side) for side in rle["size"])
        if isinstance(rle["counts"], list):
            rle = mask_utils.frPyObjects(rle, height, width)
        elif isinstance(rle["counts"], str):
            rle = {"size": [height, width], "counts": rle["counts"].encode("ascii")}
        decoded.append(mask_utils.decode(rle))
    return np.stack(decoded).astype(bool)


def _instance_masks(masks, name: str) -> np.ndarray:
    """(N, H, W) booleans from binary masks or COCO RLEs."""
    decoded = rle_masks(masks)
    masks = binary_masks(masks, name) if decoded is None else decoded
    if masks.size == 0 and masks.ndim != 3:  # no instance in the image, e.g. []
        return np.zeros((0, 0, 0), bool)
    if masks.ndim == 2:
        raise ValueError(f"{name} has shape {masks.shape}; give (instances, height, width), e.g. mask[None] for one.")
    if masks.ndim != 3:
        raise ValueError(f"{name} has shape {masks.shape}; give (instances, height, width) binary masks or COCO RLEs.")
    return masks


def _category_ids(values: list, name: str) -> list[int]:
    ids = [int(value) for value in values]
    if any(value != int_value for value, int_value in zip(values, ids)):
        raise ValueError(f"{name} {values[:5]} hold values that are not category ids (whole numbers).")
    return ids


def _per_mask(values, count: int, name: str, masks_name: str) -> list:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    values = np.asarray(values).reshape(-1).tolist()
    if len(values) != count:
        raise ValueError(f"{len(values)} {name} for {count} {masks_name}: give one per mask.")
    return values


class SemanticSegmentationAccumulator:
    """Confusion matrix over `num_labels` classes; pixels whose target is `ignore_index` are left out.

    mIoU averages IoU = TP / (TP + FP + FN) over the classes that occur in the targets or predictions
    (union > 0), as `evaluate`'s mean_iou (its NaN-mean); pixel accuracy is the fraction of counted pixels labelled
    right (mean_iou's `overall_accuracy`), mean accuracy the mean over classes in the targets of TP / (TP + FN).
    With `reduce_labels`, targets are shifted down by one and their 0 (background) is ignored, as mean_iou's
    `reduce_labels=True` and the image processors' `do_reduce_labels` do; predictions are taken as given."""

    def __init__(self, num_labels: int, ignore_index: int = 255, reduce_labels: bool = False):
        if isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)) or num_labels < 1:
            raise ValueError(f"num_labels must be a positive int (the number of classes), got {num_labels!r}.")
        self.num_labels, self.ignore_index, self.reduce_labels = int(num_labels), int(ignore_index), reduce_labels
        self.confusion = torch.zeros(self.num_labels, self.num_labels, dtype=torch.int64)  # this process's
        self._synced = None  # every process's, from the last sync() (updates since clear it)

    @staticmethod
    def _labels(labels, name: str) -> torch.Tensor:
        if hasattr(labels, "detach"):
            labels = labels.detach().cpu().numpy()
        labels = np.asarray(labels)
        if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
            raise ValueError(f"The {name} holds values that are not label ids (whole numbers), e.g. "
                             f"{labels[labels != np.round(labels)][:3].tolist()}: give label maps (argmax over the "
                             "classes of logits; resize a label map with nearest-neighbour sampling).")
        if labels.dtype.kind not in "biuf":
            raise ValueError(f"The {name} must be a label map of ints; got values of type {labels.dtype}.")
        return torch.as_tensor(labels.astype(np.int64))

    def update(self, prediction, target) -> None:
        """Add one (H, W) predicted label map and its target (tensors, arrays or nested lists)."""
        prediction, target = self._labels(prediction, "prediction"), self._labels(target, "target")
        if prediction.shape != target.shape:
            raise ValueError(f"Prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in size; "
                             f"post-process at the target's size (target_sizes=[{tuple(target.shape)}]).")
        if self.reduce_labels:
            ignored = (target == 0) | (target == self.ignore_index)
            target = torch.where(ignored, torch.full_like(target, self.ignore_index), target - 1)
        counted = target != self.ignore_index
        prediction, target = prediction[counted], target[counted]
        for name, labels in (("Target", target), ("Predicted", prediction)):
            outside = labels[(labels < 0) | (labels >= self.num_labels)]
            if len(outside):
                extra = f" or be the ignore_index {self.ignore_index}" if name == "Target" else ""
                shifted = " (after reduce_labels' shift)" if name == "Target" and self.reduce_labels else ""
                found = sorted(set(outside.tolist()))[:5]
                raise ValueError(
                    f"{name} labels must lie in [0, {self.num_labels}){extra}; found {found}{shifted}. Give "
                    "num_labels to cover every class, or mark unlabelled target pixels with "
                    "ignore_index.")
        self._synced = None
        self.confusion += torch.bincount(target * self.num_labels + prediction, minlength=self.num_labels**2).view(
            self.num_labels, self.num_labels
        )

    def sync(self) -> None:
        """Make `compute` count every process's pixels; calling it again counts none twice."""
        if _distributed():
            self._synced = self.confusion.clone()
            torch.distributed.all_reduce(self._synced)

    def compute(self) -> dict:
        """`mean_iou`, `pixel_accuracy`, `mean_accuracy`, and `per_class_iou` and `per_class_accuracy`, as
        `evaluate`'s mean_iou gives them: a class that never occurs has NaN IoU (and one absent from the targets NaN
        accuracy), the means leave NaN out, and with no pixel counted every number is NaN (0 / 0), not 0."""
        confusion = (self.confusion if self._synced is None else self._synced).double()
        true_positive = confusion.diag()
        in_target = confusion.sum(1)
        union = confusion.sum(0) + in_target - true_positive
        iou, accuracy = true_positive / union, true_positive / in_target  # 0 / 0 is NaN
        return {
            "mean_iou": float(iou.nanmean()),
            "pixel_accuracy": float(true_positive.sum() / confusion.sum()),
            "mean_accuracy": float(accuracy.nanmean()),
            "per_class_iou": iou.tolist(),
            "per_class_accuracy": accuracy.tolist(),
        }


class MaskAPAccumulator:
    """COCO mask AP (pycocotools' COCOeval, `segm`) over predicted instances and ground-truth masks."""

    def __init__(self, category_ids: Sequence[int]):
        self.category_ids = [int(c) for c in category_ids]
        self.ground_truth: list[dict] = []
        self.detections: list[dict] = []
        self.images: list[dict] = []
        self._image_ids: set[int] = set()
        self._synced = None  # every process's (images, ground truth, detections), from the last sync()

    @staticmethod
    def _rle(mask: np.ndarray) -> dict:
        rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        return rle

    def update(self, image_id: int, gt_masks, gt_labels, pred_masks, pred_labels, pred_scores, gt_iscrowd=None):
        """Add one image: ground-truth masks (N, H, W) with labels, predicted masks (M, H, W) with labels and
        scores. Masks are booleans (or 0/1) or COCO run-length encodings; labels are category ids among
        `category_ids`; `image_id` is the image's own (unique across updates and processes)."""
        image_id = int(image_id)
        if image_id in self._image_ids:
            raise ValueError(f"image_id {image_id} was added before: give each image its own id (e.g. its index in "
                             "the dataset); two images of one id would be scored as one.")
        gt_masks = _instance_masks(gt_masks, "gt_masks")
        pred_masks = _instance_masks(pred_masks, "pred_masks")
        if len(gt_masks) and len(pred_masks) and gt_masks.shape[1:] != pred_masks.shape[1:]:
            raise ValueError(f"image {image_id}: predicted masks {pred_masks.shape[1:]} and ground-truth masks "
                             f"{gt_masks.shape[1:]} differ in size; post-process at the image's size "
                             f"(target_sizes=[{gt_masks.shape[1:]}]).")
        gt_labels = _category_ids(_per_mask(gt_labels, len(gt_masks), "gt_labels", "gt_masks"), "gt_labels")
        pred_labels = _category_ids(_per_mask(pred_labels, len(pred_masks), "pred_labels", "pred_masks"),
                                    "pred_labels")
        pred_scores = [float(score) for score in _per_mask(pred_scores, len(pred_masks), "pred_scores", "pred_masks")]
        if any(np.isnan(score) for score in pred_scores):
            raise ValueError(f"image {image_id}: pred_scores hold NaN; COCOeval ranks detections by score.")
        crowd = [0] * len(gt_masks) if gt_iscrowd is None else _per_mask(gt_iscrowd, len(gt_masks), "gt_iscrowd",
                                                                          "gt_masks")
        unknown = sorted(set(gt_labels + pred_labels) - set(self.category_ids))
        if unknown:
            raise ValueError(f"image {image_id}: labels {unknown} are not among category_ids {self.category_ids}; "
                             "COCOeval would leave their masks out. Map labels to category ids, or list them.")
        height, width = gt_masks.shape[-2:] if len(gt_masks) or not len(pred_masks) else pred_masks.shape[-2:]
        self._synced = None
        self.images.append({"id": image_id, "height": int(height), "width": int(width)})
        self._image_ids.add(image_id)
        for mask, label, iscrowd in zip(gt_masks, gt_labels, crowd):
            rle = self._rle(mask)
            self.ground_truth.append({
                "id": len(self.ground_truth) + 1, "image_id": image_id, "category_id": label,
                "segmentation": rle, "area": float(mask.sum()), "bbox": mask_utils.toBbox(rle).tolist(),
                "iscrowd": int(bool(iscrowd)),
            })
        for mask, label, score in zip(pred_masks, pred_labels, pred_scores):
            self.detections.append(
                {"image_id": image_id, "category_id": label, "segmentation": self._rle(mask), "score": score}
            )

    def sync(self) -> None:
        """Make `compute` score every process's images; calling it again counts none twice."""
        if _distributed():
            gathered = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, (self.images, self.ground_truth, self.detections))
            images = [image for part in gathered for image in part[0]]
            ids = [image["id"] for image in images]
            if len(set(ids)) != len(ids):
                repeated = sorted({image_id for image_id in ids if ids.count(image_id) > 1})
                raise ValueError(f"Processes added images of the same ids {repeated[:5]}: give each image an id "
                                 "unique across processes (its index in the dataset, not in the process's share).")
            ground_truth = [annotation for part in gathered for annotation in part[1]]
            ground_truth = [dict(a, id=index + 1) for index, a in enumerate(ground_truth)]
            self._synced = (images, ground_truth, [detection for part in gathered for detection in part[2]])

    def compute(self) -> dict:
        """`map`, `map_50`, `map_75`, `map_small`, `map_medium`, `map_large`: COCOeval's first six numbers as it
        gives them, -1 where it has no value (no ground truth to score: an area range with no object in it, or
        no object at all), as COCOeval and torchmetrics report it; predictions with no ground truth to meet score
        0 where there is some."""
        names = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large")
        images, ground_truth, detections = self._synced or (self.images, self.ground_truth, self.detections)
        categories = [{"id": c} for c in self.category_ids]
        coco = COCO()
        coco.dataset = {"images": sorted(images, key=lambda image: image["id"]), "annotations": ground_truth,
                        "categories": categories}
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
            if detections:
                results = coco.loadRes(detections)
            else:  # pycocotools' loadRes fails on an empty list; an empty result set is what it means
                results = COCO()
                results.dataset = {"images": coco.dataset["images"], "annotations": [], "categories": categories}
                results.createIndex()
            evaluation = COCOeval(coco, results, "segm")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        return {name: float(value) for name, value in zip(names, evaluation.stats[:6])}


class ReferringAccumulator:
    """Referring segmentation: cIoU = total intersection / total union over all sentences, mIoU = mean of
    per-sentence IoUs, and the fraction of sentences with IoU of at least 0.5, 0.6, 0.7, 0.8 and 0.9 (`precision@t`:
    IoU >= t, the thresholds SEEM's and X-Decoder's GroundingEvaluator report, and as they and LAVT count them)."""

    precision_thresholds = (0.5, 0.6, 0.7, 0.8, 0.9)

    def __init__(self):
        # Columns: intersection, union, IoU; one row per sentence.
        self.rows = torch.zeros(0, 3, dtype=torch.float64)
        self._synced = None  # every process's rows, from the last sync()

    def update(self, prediction, target) -> None:
        """Add one sentence, predicted and target (H, W) binary masks, or several: (sentences, H, W) each."""
        prediction, target = binary_masks(prediction, "prediction"), binary_masks(target, "target")
        if prediction.shape != target.shape:
            raise ValueError(f"Prediction {prediction.shape} and target {target.shape} differ in size; post-process at "
                             f"the target's size (target_sizes=[{target.shape[-2:]}]).")
        if prediction.ndim not in (2, 3):
            raise ValueError(f"Masks of shape {prediction.shape}: give one sentence's (height, width) mask or "
                             "(sentences, height, width).")
        prediction, target = prediction.reshape(-1, *prediction.shape[-2:]), target.reshape(-1, *target.shape[-2:])
        intersection = (prediction & target).reshape(len(target), -1).sum(1).astype(np.float64)
        union = (prediction | target).reshape(len(target), -1).sum(1).astype(np.float64)
        iou = np.where(union > 0, intersection / np.maximum(union, 1), 1.0)  # an empty target found empty is right
        rows = torch.from_numpy(np.stack([intersection, union, iou], axis=1))
        self.rows = torch.cat([self.rows, rows])
        self._synced = None

    def sync(self) -> None:
        """Make `compute` count every process's sentences; calling it again counts none twice."""
        if _distributed():
            gathered = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, self.rows)
            self._synced = torch.cat(gathered)

    def compute(self) -> dict:
        rows = self.rows if self._synced is None else self._synced
        if len(rows) == 0:
            return {"ciou": 0.0, "miou": 0.0,
                    **{f"precision@{threshold}": 0.0 for threshold in self.precision_thresholds}}
        intersection, union, iou = rows.T
        # Every target and answer empty (sentences naming nothing, found empty): right, as a sentence's IoU says.
        ciou = float(intersection.sum() / union.sum()) if union.sum() > 0 else 1.0
        results = {"ciou": ciou, "miou": float(iou.mean())}
        for threshold in self.precision_thresholds:
            results[f"precision@{threshold}"] = float((iou >= threshold).double().mean())
        return results


def number_of_clicks(ious_per_click: Sequence[Sequence[float]], thresholds=(0.85, 0.9), max_clicks: int = 20) -> dict:
    """NoC@t: for each object, the number of clicks after which its IoU first reaches t (`max_clicks` when it
    never does within `max_clicks`), averaged over objects. `ious_per_click[i][k]` is object i's IoU after
    click k + 1 (a fraction in [0, 1]); thresholds are fractions in (0, 1], named `noc@<100 t>`."""
    if isinstance(max_clicks, bool) or not isinstance(max_clicks, (int, np.integer)) or max_clicks < 1:
        raise ValueError(f"max_clicks must be a positive int, got {max_clicks!r}.")
    if isinstance(thresholds, (int, float)):
        thresholds = (thresholds,)
    thresholds = tuple(float(threshold) for threshold in thresholds)
    if not thresholds or any(not 0 < threshold <= 1 for threshold in thresholds):
        raise ValueError(f"thresholds {thresholds} must be IoUs in (0, 1], e.g. (0.85, 0.9) for NoC@85 and NoC@90.")
    names = [f"noc@{round(threshold * 100, 6):g}" for threshold in thresholds]
    if len(set(names)) != len(names):
        raise ValueError(f"thresholds {thresholds} repeat a threshold; give each once.")
    if not len(ious_per_click):
        raise ValueError("number_of_clicks needs at least one object.")
    rows = []
    for index, ious in enumerate(ious_per_click):
        ious = np.asarray(ious.detach().cpu() if hasattr(ious, "detach") else ious, dtype=np.float64).reshape(-1)
        if np.isnan(ious).any() or (ious < 0).any() or (ious > 1).any():
            raise ValueError(f"Object {index}'s IoUs {ious.tolist()[:5]} are not all fractions in [0, 1] (NaN or a "
                             "percentage?); give each click's IoU as a fraction.")
        rows.append(ious[:max_clicks])
    results = {}
    for name, threshold in zip(names, thresholds):
        clicks = [int(np.argmax(ious >= threshold)) + 1 if (ious >= threshold).any() else max_clicks for ious in rows]
        results[name] = float(np.mean(clicks))
    return results

__all__ = [
    "MaskAPAccumulator",
    "ReferringAccumulator",
    "SemanticSegmentationAccumulator",
    "number_of_clicks",
]

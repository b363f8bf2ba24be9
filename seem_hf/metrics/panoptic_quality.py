"""Panoptic quality with panopticapi's definitions (Kirillov et al., "Panoptic Segmentation", 2019).

Per image, a predicted and a ground-truth segment of the same category match when their IoU exceeds 0.5,
where the union leaves out the predicted pixels that fall on void (matches are then unique). Crowd
ground-truth segments are never matched; unmatched ground truth (not crowd) counts as a false negative, and an
unmatched prediction counts as a false positive unless more than half of it lies on void or on a crowd
region of its category. Per category, PQ = sum(IoU of matches) / (TP + FP/2 + FN/2) = SQ x RQ, with
SQ = sum(IoU) / TP and RQ = TP / (TP + FP/2 + FN/2); the averages are over categories that occur (TP + FP +
FN > 0), separately for All, Things and Stuff.

`pq_compute` reads the standard results format (a JSON with `annotations[].segments_info` and a folder of
PNGs, RGB-encoded as COCO-panoptic's or one-channel id maps) and returns panopticapi's dictionary.
`PanopticQualityAccumulator` does the same in memory, one image at a time, and sums its statistics across
processes.
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
        if isinstance(categories, dict) or isinstance(categories, (str, bytes)):
            raise ValueError("categories is a list of COCO-panoptic categories, e.g. [{'id': 1, 'name': 'sky', "
                             f"'isthing': 0}}, ...]; got {type(categories).__name__} {str(categories)[:80]}.")
        self.categories = {}
        for category in categories:
            if not isinstance(category, dict) or "id" not in category or "isthing" not in category:
                raise ValueError(f"Each category needs `id` and `isthing` (1 for things, 0 for stuff), as in "
                                 f"COCO-panoptic's categories; got {category}.")
            if int(category["id"]) in self.categories:
                raise ValueError(f"Category id {int(category['id'])} is given twice in categories; give each once.")
            self.categories[int(category["id"])] = category
        self._index = {category_id: index for index, category_id in enumerate(self.categories)}
        # Columns: IoU sum, TP, FP, FN. float64 so that sums across processes are exact for counts.
        self.stats = torch.zeros(len(self.categories), 4, dtype=torch.float64)  # this process's
        self._synced = None  # every process's, from the last sync() (updates since clear it)

    def update(self, gt_ids: np.ndarray, gt_segments: list[dict], pred_ids: np.ndarray, pred_segments: list[dict],
               image: str = "") -> None:
        """Add one image: segment-id maps (H, W), or a panoptic PNG's colours (H, W, 3), and their `segments_info`
        (`id`, `category_id`, and for the ground truth `iscrowd` and `area`, as in the JSON, which default to 0 and
        the segment's pixel count; prediction areas are counted from the map)."""
        gt_ids, pred_ids = segment_id_map(gt_ids, "ground truth", image), segment_id_map(pred_ids, "prediction", image)
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"{_at(image)}prediction {pred_ids.shape} and ground truth {gt_ids.shape} differ in size; "
                             f"post-process at the ground truth's size (target_sizes=[{gt_ids.shape}]).")
        gt_by_id = _segments_by_id(gt_segments, "ground-truth", image)
        pred_by_id = _segments_by_id(pred_segments, "predicted", image)
        for label, segment in gt_by_id.items():
            if segment["category_id"] not in self.categories:
                raise KeyError(f"{_at(image)}ground-truth segment {label} has unknown category "
                               f"{segment['category_id']}; the categories are {sorted(self.categories)}.")
            segment["iscrowd"] = int(segment.get("iscrowd", 0))
            if "area" not in segment:  # COCO-panoptic's JSON carries it; in memory it is the segment's pixels
                segment["area"] = int(np.count_nonzero(gt_ids == label))
        labels, counts = np.unique(pred_ids, return_counts=True)
        for label, count in zip(labels.tolist(), counts.tolist()):
            if label == VOID:
                continue
            if label not in pred_by_id:
                hint = (" -1 marks the pixels transformers' post_process_panoptic_segmentation assigns to no segment:"
                        " set them to 0 (void)." if label < 0 else "")
                raise KeyError(
                    f"{_at(image)}segment {label} is in the predicted PNG but not in its segments_info.{hint}")
            if pred_by_id[label]["category_id"] not in self.categories:
                raise KeyError(f"{_at(image)}predicted segment {label} has unknown category "
                               f"{pred_by_id[label]['category_id']}; the categories are {sorted(self.categories)}.")
            pred_by_id[label]["area"] = count
        missing = [label for label, segment in pred_by_id.items() if "area" not in segment or label not in labels]
        if missing:
            raise KeyError(f"{_at(image)}predicted segments {missing} are in segments_info but not in the PNG.")

        self._synced = None
        pairs, intersections = np.unique(gt_ids * _OFFSET + pred_ids, return_counts=True)
        overlap = {(int(p // _OFFSET), int(p % _OFFSET)): int(n) for p, n in zip(pairs, intersections)}
        gt_matched, pred_matched = set(), set()
        for (gt_label, pred_label), intersection in overlap.items():
            gt, pred = gt_by_id.get(gt_label), pred_by_id.get(pred_label)
            if gt is None or pred is None or gt["iscrowd"] == 1 or gt["category_id"] != pred["category_id"]:
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
            if gt["iscrowd"] == 1:
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
        """Make `compute` sum the statistics of every process (a no-op outside `torch.distributed`); calling it
        again counts none twice."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            self._synced = self.stats.clone()
            torch.distributed.all_reduce(self._synced)

    def compute(self) -> dict:
        """panopticapi's result dictionary: `All`, `Things`, `Stuff` (each `pq`, `sq`, `rq`, `n`) and
        `per_class` (category id -> `pq`, `sq`, `rq`). With no category present, the averages are 0 and `n`
        is 0 (panopticapi divides by zero there)."""
        stats = self.stats if self._synced is None else self._synced
        results = {}
        for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
            totals, per_class = np.zeros(3), {}
            count = 0
            for category_id, category in self.categories.items():
                if isthing is not None and bool(category["isthing"]) != isthing:
                    continue
                iou, tp, fp, fn = stats[self._index[category_id]].tolist()
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


def _at(image: str) -> str:
    return f"{image}: " if image else ""


def segment_id_map(ids, which: str = "segment-id map", image: str = "") -> np.ndarray:
    """A (H, W) int64 segment-id map from an id map or the colours of a panoptic PNG (H, W, 3: id = R + 256 G +
    256^2 B), given as a numpy array, a tensor, a PIL image or nested lists. Ids that are not whole numbers are
    refused rather than truncated."""
    if hasattr(ids, "detach"):
        ids = ids.detach().cpu().numpy()
    array = np.asarray(ids)
    if array.ndim == 3 and array.shape[-1] == 3:
        array = rgb2id(array)
    if array.ndim != 2:
        raise ValueError(f"{_at(image)}the {which} has shape {array.shape}; give a (height, width) map of segment ids "
                         "or a panoptic PNG's (height, width, 3) colours.")
    if array.dtype.kind not in "biu":
        if array.dtype.kind != "f" or not np.array_equal(array, np.round(array)):
            raise ValueError(f"{_at(image)}the {which} holds values that are not segment ids (whole numbers), e.g. "
                             f"{array.ravel()[np.flatnonzero(array != np.round(array))[:3]].tolist()}; a resized map "
                             "must be resized with nearest-neighbour sampling.")
    return array.astype(np.int64)


def _segments_by_id(segments, which: str, image: str) -> dict[int, dict]:
    """`segments_info` by segment id, with `id` and `category_id` as ints (tensors and numpy scalars included)."""
    by_id = {}
    for segment in segments:
        missing = [key for key in ("id", "category_id") if key not in segment]
        if missing:
            raise KeyError(f"{_at(image)}a {which} segments_info entry lacks {missing}: {segment}.")
        segment = {**segment, "id": int(segment["id"]), "category_id": int(segment["category_id"])}
        if segment["id"] == VOID:
            raise ValueError(f"{_at(image)}a {which} segment has id 0, which marks void pixels in the map; number "
                             "segments from 1.")
        if segment["id"] in by_id:
            raise ValueError(f"{_at(image)}{which} segment id {segment['id']} is in segments_info twice; each segment "
                             "of an image needs its own id.")
        by_id[segment["id"]] = segment
    return by_id


def _read_ids(path: Path) -> np.ndarray:
    """A PNG's segment ids: an RGB (or palette, or opaque RGBA) panoptic PNG by its colours, id = R + 256 G +
    256^2 B; a one-channel PNG (8 or 16 bit grey, 32-bit int) holds the ids themselves."""
    with PIL.Image.open(path) as image:
        if image.mode in ("L", "I", "I;16", "I;16B", "I;16L"):
            return segment_id_map(np.asarray(image), "segment-id PNG", str(path))
        if image.mode in ("RGBA", "LA", "PA") and np.asarray(image.getchannel("A")).min() < 255:
            raise ValueError(f"{path}: the panoptic PNG has transparent pixels; its ids are its RGB colours, "
                             "save it without transparency (void is black, 0).")
        return rgb2id(np.asarray(image.convert("RGB")))


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


__all__ = ["PanopticQualityAccumulator", "pq_compute", "segment_id_map"]

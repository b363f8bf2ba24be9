"""COCO mask AP (pycocotools' COCOeval, `segm`) of predicted instances, as an `evaluate` metric (seem_hf's
`MaskAPAccumulator`)."""

import datasets
import evaluate
import numpy as np
from pycocotools import mask as mask_utils

from seem_hf.metrics import MaskAPAccumulator
from seem_hf.metrics.evaluate_modules import common
from seem_hf.metrics.segmentation import binary_masks, rle_masks

_DESCRIPTION = """COCO mask AP over a dataset: COCOeval's `segm` evaluation (IoU thresholds 0.5:0.95, up to 100
detections per image, the COCO area ranges). Masks are stored run-length encoded (COCO RLE) between `add_batch`
and `compute`, so the cache holds a few bytes per mask rather than a pixel each."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per image, a dict with `masks` (instances, height, width) booleans or 0/1, or a list of COCO
        run-length encodings (`{"size", "counts"}`), `labels` (category ids) and `scores`.
    references: per image, a dict with `masks` and `labels`, and optionally `iscrowd` (0 or 1 per mask; default 0).
    category_ids (`list[int]`): the category ids evaluated.
Returns:
    map, map_50, map_75, map_small, map_medium, map_large (COCOeval's first six numbers, fractions; -1 where
    COCOeval has no value: no ground truth in that area range).
Examples:
    >>> metric = evaluate.load(seem_hf.metrics.evaluate_module_path("mask_ap"))
    >>> square = [[[True, True], [True, True]]]
    >>> result = metric.compute(predictions=[{"masks": square, "labels": [3], "scores": [0.9]}],
    ...                         references=[{"masks": square, "labels": [3]}], category_ids=[3])
    >>> round(result["map"], 6)  # COCOeval averages over thresholds in floating point
    1.0
"""

_RLE = datasets.List(datasets.Value("string"))
_SIZE = datasets.List(datasets.Value("int64"))
_PREDICTION = {"size": _SIZE, "rle": _RLE, "labels": _SIZE, "scores": datasets.List(datasets.Value("float64"))}
_REFERENCE = {"size": _SIZE, "rle": _RLE, "labels": _SIZE, "iscrowd": _SIZE}


def _encoded(example, which: str, fields: tuple) -> dict:
    """`size` (height, width), one RLE `counts` string per mask, and `fields` as lists."""
    if not isinstance(example, dict) or any(field not in example for field in ("masks", *fields)):
        raise ValueError(f"Each of the {which} is a dict with `masks`, {', '.join(f'`{f}`' for f in fields)}.")
    masks = rle_masks(example["masks"])  # COCO run-length encodings (a COCO results file, pycocotools)
    if masks is None:
        masks = binary_masks(example["masks"], f"`masks` among the {which}")
    if masks.size == 0:
        masks = masks.reshape((0, *masks.shape[-2:])) if masks.ndim == 3 else np.zeros((0, 0, 0), bool)
    if masks.ndim != 3:
        raise ValueError(f"`masks` among the {which} has shape {masks.shape}; it is (instances, height, width).")
    encoded = {"size": list(masks.shape[-2:]), "rle": []}
    for mask in masks:
        encoded["rle"].append(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode("ascii"))
    for field in fields:
        values = common.as_array(example[field], float).reshape(-1).tolist()
        if len(values) != len(masks):
            raise ValueError(f"{len(values)} `{field}` for {len(masks)} masks among the {which}; give one per mask.")
        if field != "scores" and any(value != int(value) for value in values):
            raise ValueError(f"`{field}` among the {which} hold values that are not whole numbers: {values[:5]}.")
        encoded[field] = values if field == "scores" else [int(value) for value in values]
    return encoded


def _decoded(example: dict) -> np.ndarray:
    height, width = example["size"]
    masks = [mask_utils.decode({"size": [height, width], "counts": counts.encode("ascii")})
             for counts in example["rle"]]
    return np.stack(masks).astype(bool) if masks else np.zeros((0, height, width), bool)


class MaskAP(common.PreparedInputsMetric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            reference_urls=["https://cocodataset.org/#detection-eval"],
            features=datasets.Features({"predictions": _PREDICTION, "references": _REFERENCE}),
        )

    def prepare_prediction(self, prediction):
        return _encoded(prediction, "predictions", ("labels", "scores"))

    def prepare_reference(self, reference):
        if isinstance(reference, dict) and "iscrowd" not in reference and "labels" in reference:
            reference = {**reference, "iscrowd": np.zeros(len(common.as_array(reference["labels"], float).reshape(-1)))}
        return _encoded(reference, "references", ("labels", "iscrowd"))

    def _compute(self, predictions, references, category_ids):
        accumulator = MaskAPAccumulator(category_ids)
        for image_id, (prediction, reference) in enumerate(zip(predictions, references)):
            gt_masks, pred_masks = _decoded(reference), _decoded(prediction)
            if not len(gt_masks) and len(pred_masks):  # the accumulator reads the image size from the masks
                gt_masks = np.zeros((0, *pred_masks.shape[-2:]), bool)
            accumulator.update(
                image_id, gt_masks, reference["labels"], pred_masks, prediction["labels"], prediction["scores"],
                gt_iscrowd=reference["iscrowd"],
            )
        return accumulator.compute()

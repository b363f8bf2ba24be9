"""Mean IoU and pixel accuracy of semantic label maps, as an `evaluate` metric (seem_hf's
`SemanticSegmentationAccumulator`: the numbers `SegmentationTrainer` reports as `miou` and `pixel_accuracy`, as
fractions)."""

import datasets
import evaluate
import numpy as np

from seem_hf.metrics import SemanticSegmentationAccumulator
from seem_hf.metrics.evaluate_modules import common

_DESCRIPTION = """Mean IoU and pixel accuracy over a dataset: one confusion matrix over all pixels of all images,
IoU = TP / (TP + FP + FN) per label, averaged over the labels that occur in the targets or predictions."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted label maps, one (height, width) array, tensor or nested list per image.
    references: target label maps of the same sizes.
    num_labels (`int`): the number of labels (label ids are 0 .. num_labels - 1).
    ignore_index (`int`, default 255): target value of pixels that are not counted.
    reduce_labels (`bool`, default False): shift the references down by one and ignore their 0 (background), as
        `evaluate`'s mean_iou and the image processors' `do_reduce_labels`; predictions are taken as given.
    label_map (`dict`, optional): old reference id -> new id, applied to the references (before reduce_labels), all
        ids at once.
    nan_to_num (`float`, optional): the value given in place of NaN (labels that occur nowhere, and every number
        when no pixel is counted), in every result.
Returns:
    mean_iou: IoU averaged over the labels present (union > 0).
    pixel_accuracy: the fraction of counted pixels labelled right (mean_iou's `overall_accuracy`).
    mean_accuracy: per-label accuracy (TP / reference pixels) averaged over the labels in the references.
    per_class_iou, per_class_accuracy: per label, NaN for labels that occur nowhere (accuracy: nowhere in the
        references).
    overall_accuracy, per_category_iou, per_category_accuracy: the same numbers under evaluate's mean_iou names
        (`pixel_accuracy`, and the per-label lists as numpy arrays).
    With no pixel counted (every reference pixel ignored), all of them are NaN, as evaluate's mean_iou gives them.
Examples:
    >>> metric = evaluate.load(seem_hf.metrics.evaluate_module_path("mean_iou"))
    >>> metric.compute(predictions=[[[0, 1], [1, 1]]], references=[[[0, 1], [255, 0]]], num_labels=2)["pixel_accuracy"]
    0.6666666666666666
"""

_LABEL_MAP = common.STORED_ARRAY


class MeanIou(common.PreparedInputsMetric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _LABEL_MAP, "references": _LABEL_MAP}),
        )

    def prepare_prediction(self, prediction):
        labels = SemanticSegmentationAccumulator._labels(prediction, "predicted label map")
        return common.store_array(labels, np.int32, 2, "A predicted label map")

    def prepare_reference(self, reference):
        labels = SemanticSegmentationAccumulator._labels(reference, "reference label map")
        return common.store_array(labels, np.int32, 2, "A reference label map")

    def _compute(self, predictions, references, num_labels: int, ignore_index: int = 255, reduce_labels: bool = False,
                 label_map: dict | None = None, nan_to_num: float | None = None):
        accumulator = SemanticSegmentationAccumulator(num_labels, ignore_index=ignore_index,
                                                      reduce_labels=reduce_labels)
        lookup = None
        if label_map:  # every old id to its new one at once (a chain such as {1: 2, 2: 3} moves each id one step)
            old_ids = np.array(sorted(int(old) for old in label_map), dtype=np.int64)
            new_ids = np.array([int(label_map[old]) for old in sorted(label_map, key=int)], dtype=np.int64)
            lookup = old_ids, new_ids
        for prediction, reference in zip(predictions, references):
            reference = common.load_array(reference, np.int32).astype(np.int64)
            if lookup is not None:
                position = np.searchsorted(lookup[0], reference).clip(max=len(lookup[0]) - 1)
                reference = np.where(lookup[0][position] == reference, lookup[1][position], reference)
            accumulator.update(common.load_array(prediction, np.int32), reference)
        scores = accumulator.compute()
        # evaluate's mean_iou names, so that this module replaces it as is (same values).
        scores.update(overall_accuracy=scores["pixel_accuracy"], per_category_iou=np.array(scores["per_class_iou"]),
                      per_category_accuracy=np.array(scores["per_class_accuracy"]))
        if nan_to_num is not None:
            for name, value in scores.items():
                replaced = np.nan_to_num(np.asarray(value, dtype=float), nan=nan_to_num)
                scores[name] = replaced.tolist() if isinstance(value, (list, float)) else replaced
        return scores

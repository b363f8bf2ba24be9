"""Referring segmentation: cIoU, mean IoU and precision at 0.5 / 0.6 / 0.7 / 0.8 / 0.9 of one binary mask per
sentence, as an `evaluate` metric (seem_hf's `ReferringAccumulator`)."""

import datasets
import evaluate

from seem_hf.metrics import ReferringAccumulator
from seem_hf.metrics.evaluate_modules import common
from seem_hf.metrics.segmentation import binary_masks

_DESCRIPTION = """Referring segmentation scores over sentences: cIoU = total intersection / total union over all
sentences (large objects weigh more), mIoU = mean of the per-sentence IoUs (an empty target predicted empty has
IoU 1), precision@t = fraction of sentences with IoU of at least t (as SEEM's GroundingEvaluator counts them)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted binary masks, one (height, width) array, tensor or nested list per sentence.
    references: target binary masks of the same sizes.
Returns:
    ciou, miou, precision@0.5, precision@0.6, precision@0.7, precision@0.8, precision@0.9 (fractions).
Examples:
    >>> metric = evaluate.load(seem_hf.metrics.evaluate_module_path("referring_iou"))
    >>> metric.compute(predictions=[[[1, 1], [0, 0]]], references=[[[1, 0], [0, 0]]])["ciou"]
    0.5
"""

_MASK = common.STORED_ARRAY


class ReferringIou(common.PreparedInputsMetric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _MASK, "references": _MASK}),
        )

    def prepare_prediction(self, prediction):
        return common.store_array(binary_masks(prediction, "A predicted mask"), bool, 2, "A predicted mask")

    def prepare_reference(self, reference):
        return common.store_array(binary_masks(reference, "A reference mask"), bool, 2, "A reference mask")

    def _compute(self, predictions, references):
        accumulator = ReferringAccumulator()
        for prediction, reference in zip(predictions, references):
            accumulator.update(common.load_array(prediction, bool), common.load_array(reference, bool))
        return accumulator.compute()

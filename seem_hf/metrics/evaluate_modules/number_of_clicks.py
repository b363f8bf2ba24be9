"""Interactive segmentation: NoC@t, the mean number of clicks an object needs before its IoU reaches t, as an
`evaluate` metric (seem_hf's `number_of_clicks`)."""

import datasets
import evaluate

from seem_hf.metrics import number_of_clicks
from seem_hf.metrics.evaluate_modules import common

_DESCRIPTION = """NoC@t: for each object, the number of clicks after which its IoU first reaches t (`max_clicks`
when it never does within `max_clicks` clicks), averaged over objects."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per object, its IoU after click 1, 2, ... (a list of floats; lengths may differ).
    thresholds (`tuple[float]`, default (0.85, 0.9)): the IoUs to reach.
    max_clicks (`int`, default 20): the clicks counted for an object that never reaches a threshold.
Returns:
    noc@85, noc@90 (one `noc@<100 t>` per threshold).
Examples:
    >>> metric = evaluate.load(seem_hf.metrics.evaluate_module_path("number_of_clicks"))
    >>> metric.compute(predictions=[[0.5, 0.95], [0.9]])["noc@90"]
    1.5
"""


class NumberOfClicks(common.PreparedInputsMetric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.List(datasets.Value("float64"))}),
        )

    def prepare_prediction(self, prediction):
        return [float(iou) for iou in common.as_array(prediction, float).reshape(-1)]

    def _compute(self, predictions, thresholds=(0.85, 0.9), max_clicks: int = 20):
        return number_of_clicks(predictions, thresholds=tuple(thresholds), max_clicks=max_clicks)

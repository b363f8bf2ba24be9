"""Metrics: panoptic quality (files and in memory), semantic, instance, referring and interactive metrics, also as
`evaluate` modules (`evaluate.load(evaluate_module_path("mean_iou"))`, see `seem_hf.metrics.evaluate_modules`)."""

from .evaluate_modules import EVALUATE_MODULES, evaluate_module_path
from .panoptic_quality import PanopticQualityAccumulator, pq_compute
from .segmentation import MaskAPAccumulator, ReferringAccumulator, SemanticSegmentationAccumulator, number_of_clicks

__all__ = [
    "EVALUATE_MODULES",
    "MaskAPAccumulator",
    "PanopticQualityAccumulator",
    "ReferringAccumulator",
    "SemanticSegmentationAccumulator",
    "evaluate_module_path",
    "number_of_clicks",
    "pq_compute",
]

"""Metrics: panoptic quality (files and in memory), semantic, instance, referring and interactive metrics."""

from .panoptic_quality import PanopticQualityAccumulator, pq_compute
from .segmentation import MaskAPAccumulator, ReferringAccumulator, SemanticSegmentationAccumulator, number_of_clicks

__all__ = [
    "MaskAPAccumulator",
    "PanopticQualityAccumulator",
    "ReferringAccumulator",
    "SemanticSegmentationAccumulator",
    "number_of_clicks",
    "pq_compute",
]

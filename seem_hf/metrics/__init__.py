"""Metrics: panoptic quality (files and in memory)."""

from .panoptic_quality import PanopticQualityAccumulator, pq_compute

__all__ = ["PanopticQualityAccumulator", "pq_compute"]

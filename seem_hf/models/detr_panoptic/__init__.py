"""DETR-panoptic: DETR with the attention-map mask head."""

from .configuration_detr_panoptic import DetrPanopticConfig
from .image_processing_detr_panoptic import DetrPanopticImageProcessor
from .modeling_detr_panoptic import (
    DetrPanopticForSegmentation,
    DetrPanopticPreTrainedModel,
    DetrPanopticSegmentationOutput,
)
from .processing_detr_panoptic import DetrPanopticProcessor

__all__ = [
    "DetrPanopticConfig",
    "DetrPanopticForSegmentation",
    "DetrPanopticImageProcessor",
    "DetrPanopticPreTrainedModel",
    "DetrPanopticProcessor",
    "DetrPanopticSegmentationOutput",
]

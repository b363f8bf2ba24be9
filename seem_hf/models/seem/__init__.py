"""SEEM: segment everything everywhere all at once (v1). Generic segmentation over any label set; referring and
interactive prompts are being added."""

from .configuration_seem import SeemConfig
from .image_processing_seem import SeemImageProcessor
from .modeling_seem import SeemForUniversalSegmentation, SeemPreTrainedModel, SeemUniversalSegmentationOutput
from .processing_seem import SeemProcessor

__all__ = [
    "SeemConfig",
    "SeemForUniversalSegmentation",
    "SeemImageProcessor",
    "SeemPreTrainedModel",
    "SeemProcessor",
    "SeemUniversalSegmentationOutput",
]

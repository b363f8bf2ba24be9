"""LSeg: language-driven semantic segmentation over any label set."""

from .configuration_lseg import LSegConfig, lseg_vision_config
from .evaluation_lseg import LSEG_SCALES, multi_scale_logits
from .image_processing_lseg import LSegImageProcessor
from .modeling_lseg import LSegForSemanticSegmentation, LSegPreTrainedModel, LSegSemanticSegmentationOutput
from .processing_lseg import LSegProcessor

__all__ = [
    "LSegConfig",
    "LSegForSemanticSegmentation",
    "LSegImageProcessor",
    "LSegPreTrainedModel",
    "LSegProcessor",
    "LSegSemanticSegmentationOutput",
    "LSEG_SCALES",
    "lseg_vision_config",
    "multi_scale_logits",
]

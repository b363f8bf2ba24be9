"""seem_hf: SEEM, LSeg and DETR-panoptic as Hugging Face transformers models.

Importing the package registers every model with transformers' Auto classes.
"""

from .models.auto import register_auto_classes
from .models.detr_panoptic import (
    DetrPanopticConfig,
    DetrPanopticForSegmentation,
    DetrPanopticImageProcessor,
    DetrPanopticPreTrainedModel,
    DetrPanopticProcessor,
    DetrPanopticSegmentationOutput,
)
from .models.lseg import (
    LSegConfig,
    LSegForSemanticSegmentation,
    LSegImageProcessor,
    LSegPreTrainedModel,
    LSegProcessor,
    LSegSemanticSegmentationOutput,
)
from .models.seem import (
    SeemConfig,
    SeemForUniversalSegmentation,
    SeemImageProcessor,
    SeemPreTrainedModel,
    SeemProcessor,
    SeemUniversalSegmentationOutput,
)
from .pipelines import ArrayImageSegmentationPipeline, ReferringSegmentationPipeline, register_pipeline

__version__ = "0.1.0"

register_auto_classes()
register_pipeline()

__all__ = [
    "ArrayImageSegmentationPipeline",
    "ReferringSegmentationPipeline",
    "DetrPanopticConfig",
    "DetrPanopticForSegmentation",
    "DetrPanopticImageProcessor",
    "DetrPanopticPreTrainedModel",
    "DetrPanopticProcessor",
    "DetrPanopticSegmentationOutput",
    "LSegConfig",
    "LSegForSemanticSegmentation",
    "LSegImageProcessor",
    "LSegPreTrainedModel",
    "LSegProcessor",
    "LSegSemanticSegmentationOutput",
    "SeemConfig",
    "SeemForUniversalSegmentation",
    "SeemImageProcessor",
    "SeemPreTrainedModel",
    "SeemProcessor",
    "SeemUniversalSegmentationOutput",
    "__version__",
]

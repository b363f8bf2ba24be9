"""Registration of every seem_hf model with transformers' Auto classes (transformers' mappings are the
registry; seem_hf keeps none of its own)."""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageSegmentation,
    AutoModelForSemanticSegmentation,
    AutoModelForUniversalSegmentation,
    AutoProcessor,
    AutoTokenizer,
    CLIPTokenizer,
)

from .detr_panoptic import (
    DetrPanopticConfig,
    DetrPanopticForSegmentation,
    DetrPanopticImageProcessor,
    DetrPanopticProcessor,
)
from .lseg import LSegConfig, LSegForSemanticSegmentation, LSegImageProcessor, LSegProcessor
from .seem import SeemConfig, SeemForUniversalSegmentation, SeemImageProcessor, SeemProcessor


def register_auto_classes() -> None:
    """Register configs, models, image processors and processors; safe to call more than once."""
    AutoConfig.register(DetrPanopticConfig.model_type, DetrPanopticConfig, exist_ok=True)
    # transformers maps its own DetrForSegmentation to AutoModelForUniversalSegmentation too
    for auto_class in (AutoModel, AutoModelForImageSegmentation, AutoModelForUniversalSegmentation):
        auto_class.register(DetrPanopticConfig, DetrPanopticForSegmentation, exist_ok=True)
    AutoImageProcessor.register(
        DetrPanopticConfig, image_processor_classes={"pil": DetrPanopticImageProcessor}, exist_ok=True
    )
    AutoProcessor.register(DetrPanopticConfig, DetrPanopticProcessor, exist_ok=True)

    AutoConfig.register(LSegConfig.model_type, LSegConfig, exist_ok=True)
    for auto_class in (AutoModel, AutoModelForSemanticSegmentation, AutoModelForImageSegmentation):
        auto_class.register(LSegConfig, LSegForSemanticSegmentation, exist_ok=True)
    AutoImageProcessor.register(LSegConfig, image_processor_classes={"pil": LSegImageProcessor}, exist_ok=True)
    AutoProcessor.register(LSegConfig, LSegProcessor, exist_ok=True)
    AutoTokenizer.register(LSegConfig, CLIPTokenizer, exist_ok=True)

    AutoConfig.register(SeemConfig.model_type, SeemConfig, exist_ok=True)
    for auto_class in (AutoModel, AutoModelForUniversalSegmentation, AutoModelForImageSegmentation):
        auto_class.register(SeemConfig, SeemForUniversalSegmentation, exist_ok=True)
    AutoImageProcessor.register(SeemConfig, image_processor_classes={"pil": SeemImageProcessor}, exist_ok=True)
    AutoProcessor.register(SeemConfig, SeemProcessor, exist_ok=True)
    AutoTokenizer.register(SeemConfig, CLIPTokenizer, exist_ok=True)


__all__ = ["register_auto_classes"]

"""Registration of every seem_hf model with transformers' Auto classes (transformers' mappings are the
registry; seem_hf keeps none of its own)."""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageSegmentation,
    AutoProcessor,
)

from .detr_panoptic import (
    DetrPanopticConfig,
    DetrPanopticForSegmentation,
    DetrPanopticImageProcessor,
    DetrPanopticProcessor,
)


def register_auto_classes() -> None:
    """Register configs, models, image processors and processors; safe to call more than once."""
    AutoConfig.register(DetrPanopticConfig.model_type, DetrPanopticConfig, exist_ok=True)
    for auto_class in (AutoModel, AutoModelForImageSegmentation):
        auto_class.register(DetrPanopticConfig, DetrPanopticForSegmentation, exist_ok=True)
    AutoImageProcessor.register(
        DetrPanopticConfig, image_processor_classes={"pil": DetrPanopticImageProcessor}, exist_ok=True
    )
    AutoProcessor.register(DetrPanopticConfig, DetrPanopticProcessor, exist_ok=True)


__all__ = ["register_auto_classes"]

"""Processor for DETR-panoptic: the image processor together with the label vocabulary it carries."""

from __future__ import annotations

from transformers import ProcessorMixin

from seem_hf.processing_utils import PostProcessingMixin
from seem_hf.remote_code import RemoteCodeMixin


class DetrPanopticProcessor(PostProcessingMixin, RemoteCodeMixin, ProcessorMixin):
    r"""
    The processor of [`DetrPanopticForSegmentation`]. DETR-panoptic reads no text, so the processor is the
    image processor plus the label vocabulary that post-processing and visualisation need (`id2label`,
    `thing_label_ids`, `label_colors`, stored with the image processor). Calling it pre-processes images;
    the `post_process_*` methods are the image processor's.

    Args:
        image_processor ([`DetrPanopticImageProcessor`]): the image processor.
    """

    def __init__(self, image_processor=None, **kwargs):
        super().__init__(image_processor, **kwargs)

    def __call__(self, images=None, text=None, return_tensors="pt", **kwargs):
        """Pre-process `images` (see [`DetrPanopticImageProcessor`]); returns `pixel_values` and `pixel_mask`, torch
        tensors by default (what the model takes), as the SEEM and LSeg processors. The arguments are in their
        order, so that a call written for them is read alike; text, sentences and visual prompts are refused
        (DETR-panoptic segments over the fixed label set it was trained on)."""
        prompts = [name for name, value in (("text", text), ("sentences", kwargs.get("sentences")),
                                            ("visual_prompts", kwargs.get("visual_prompts"))) if value is not None]
        if prompts:
            labels = list((self.id2label or {}).values())
            shown = ", ".join(map(repr, labels[:6])) + (", ..." if len(labels) > 6 else "")
            raise ValueError(
                f"DetrPanopticProcessor takes no {' or '.join(prompts)}: DETR-panoptic reads no text or prompts and "
                f"segments over the fixed label set it was trained on ({len(labels)} labels: {shown}; "
                "model.config.id2label). Call processor(images=...); for labels of your own, use LSeg or SEEM."
            )
        if images is None:
            raise ValueError("DetrPanopticProcessor needs `images`.")
        return self.image_processor(images, return_tensors=return_tensors, **kwargs)

    def post_process_object_detection(self, *args, **kwargs):
        """The image processor's (transformers' DETR rule): each query's best real class, its score and its box in
        (x0, y0, x1, y1) pixels of `target_sizes` (normalised to [0, 1] without them)."""
        return self.image_processor.post_process_object_detection(*args, **kwargs)

    @property
    def id2label(self) -> dict | None:
        return self.image_processor.id2label

    @property
    def thing_label_ids(self) -> list[int] | None:
        return self.image_processor.thing_label_ids

    @property
    def label_colors(self) -> dict | None:
        return self.image_processor.label_colors



DetrPanopticProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["DetrPanopticProcessor"]

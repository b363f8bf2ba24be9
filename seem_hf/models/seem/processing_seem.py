"""Processor for SEEM: the image processor, CLIP's tokenizer and SEEM's prompt templates."""

from __future__ import annotations

from transformers import BatchFeature, ProcessorMixin

from seem_hf.processing_utils import CONTEXT_LENGTH, PostProcessingMixin, check_label_set
from seem_hf.remote_code import RemoteCodeMixin

from .prompts_seem import BACKGROUND, evaluation_prompts, training_prompt


class SeemProcessor(PostProcessingMixin, RemoteCodeMixin, ProcessorMixin):
    r"""
    The processor of [`SeemForUniversalSegmentation`]: [`SeemImageProcessor`] for images, CLIP's BPE tokenizer for
    text.

    `processor(images=..., text=["person", "dog", "grass"])` returns `pixel_values`, `pixel_mask` and the label
    set as `input_ids` `(num_labels + 1, 81, 77)`: each class name written into SEEM's 81 prompt templates, and
    "background" appended last (SEEM's no-object class). Without `text`, the default label set stored with the
    image processor (`id2label`) is used when there is one.
    """

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        super().__init__(image_processor, tokenizer, **kwargs)

    def __call__(self, images=None, text=None, return_tensors="pt", **kwargs) -> BatchFeature:
        if images is None and text is None:
            raise ValueError("SeemProcessor needs images, text (class names), or both.")
        outputs = BatchFeature()
        if images is not None:
            outputs.update(self.image_processor(images, return_tensors=return_tensors, **kwargs))
        labels = text if text is not None else self.default_labels
        if labels is not None:
            outputs["input_ids"] = self.tokenize_labels(labels)
        return outputs

    @property
    def default_labels(self) -> list[str] | None:
        id2label = getattr(self.image_processor, "id2label", None)
        return [id2label[index] for index in sorted(id2label)] if id2label else None

    def tokenize_labels(self, labels):
        """`(num_labels + 1, 81, 77)` token ids of the label set's prompts, "background" last."""
        labels = check_label_set(labels)
        prompts = [prompt for label in labels + [BACKGROUND] for prompt in evaluation_prompts(label)]
        return self._tokenize(prompts).view(len(labels) + 1, -1, CONTEXT_LENGTH)

    def tokenize_training_labels(self, labels, rng):
        """`(num_labels + 1, 1, 77)` token ids with one prompt template drawn per label from `rng` (a
        `random.Random`), as SEEM's training draws them; "background" last."""
        prompts = [training_prompt(label, rng) for label in list(labels) + [BACKGROUND]]
        return self._tokenize(prompts)[:, None]

    def _tokenize(self, prompts: list[str]):
        return self.tokenizer(
            prompts, padding="max_length", max_length=CONTEXT_LENGTH, truncation=True, return_tensors="pt"
        )["input_ids"]



SeemProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["SeemProcessor"]

"""Processor for LSeg: the image processor and CLIP's tokenizer, for images and a label set."""

from __future__ import annotations

from transformers import BatchFeature, ProcessorMixin

from seem_hf.processing_utils import check_cut_labels, check_label_set, tokenize_to_context
from seem_hf.remote_code import RemoteCodeMixin
from seem_hf.text_utils import clean_text, without_unicode_normalization


class LSegProcessor(RemoteCodeMixin, ProcessorMixin):
    r"""
    The processor of [`LSegForSemanticSegmentation`]: [`LSegImageProcessor`] for the images and CLIP's BPE
    tokenizer for the label set.

    `processor(images=..., text=["dog", "grass", "other"])` returns `pixel_values` and the label set tokenised
    to CLIP's 77 tokens (`input_ids`, `attention_mask`, one row per label, shared by every image). Without
    `text`, the default label set stored with the image processor is used (see `set_default_labels`).
    """

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        super().__init__(image_processor, without_unicode_normalization(tokenizer), **kwargs)

    def __call__(self, images=None, text=None, return_tensors="pt", **kwargs) -> BatchFeature:
        if images is None and text is None:
            raise ValueError("LSegProcessor needs images, text (a label set), or both.")
        outputs = BatchFeature()
        if images is not None:
            outputs.update(self.image_processor(images, return_tensors=return_tensors, **kwargs))
        if text is not None:
            outputs.update(self.tokenize_labels(text, return_tensors=return_tensors))
        return outputs

    def tokenize_labels(self, labels, return_tensors="pt") -> BatchFeature:
        """`input_ids` and `attention_mask` of a label set, padded to CLIP's 77 tokens."""
        labels = check_label_set(labels, clean_text, "text")
        tokens, cut = tokenize_to_context(self.tokenizer, [clean_text(label) for label in labels], return_tensors)
        check_cut_labels(labels, tokens["input_ids"], cut)
        return BatchFeature({"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]})

    def set_default_labels(self, labels, model=None) -> None:
        """Store `labels` as the image processor's default label set (names and tokens), saved with it. With
        `model`, it becomes the model's default label set too (`config.id2label`), and `model.save_pretrained`
        then carries the set's text embeddings in the folder (`seem_hf.label_embeddings`)."""
        labels = check_label_set(labels, clean_text)
        tokens = self.tokenize_labels(labels, return_tensors=None)
        self.image_processor.id2label = dict(enumerate(labels))
        self.image_processor.label_input_ids = [list(ids) for ids in tokens["input_ids"]]
        self.image_processor.label_attention_mask = [list(mask) for mask in tokens["attention_mask"]]
        if model is not None:
            model.config.id2label = dict(enumerate(labels))
            model.config.label2id = {label: index for index, label in enumerate(labels)}
            tensors = self.tokenize_labels(labels)
            model.set_default_label_set(tensors["input_ids"], tensors["attention_mask"], labels)

    @property
    def id2label(self) -> dict | None:
        return self.image_processor.id2label

    def post_process_semantic_segmentation(self, *args, **kwargs):
        return self.image_processor.post_process_semantic_segmentation(*args, **kwargs)


LSegProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["LSegProcessor"]

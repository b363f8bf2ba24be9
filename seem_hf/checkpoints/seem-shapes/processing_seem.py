"""Processor for SEEM: the image processor, CLIP's tokenizer and SEEM's prompt templates."""

from __future__ import annotations

import torch
from transformers import BatchFeature, ProcessorMixin

from .image_utils import image_size
from .processing_utils import CONTEXT_LENGTH, PostProcessingMixin, check_label_set
from .remote_code import RemoteCodeMixin

from .prompts_seem import BACKGROUND, evaluation_prompts, training_prompt
from .visual_sampler_seem import rasterize_prompt


def _per_image(value, kind, count):
    """One image's prompts (a dict list, or a string list for sentences) -> a batch of one; check the count."""
    single = (kind is dict and value and isinstance(value[0], dict)) or (kind is str and (
        isinstance(value, str) or (value and isinstance(value[0], str))))
    batch = [[value] if isinstance(value, str) else value] if single else list(value)
    if len(batch) != count:
        raise ValueError(f"Got prompts for {len(batch)} images and {count} images.")
    return batch


class SeemProcessor(PostProcessingMixin, RemoteCodeMixin, ProcessorMixin):
    r"""
    The processor of [`SeemForUniversalSegmentation`]: [`SeemImageProcessor`] for images, CLIP's BPE tokenizer for
    text.

    `processor(images=..., text=["person", "dog", "grass"])` returns `pixel_values`, `pixel_mask` and the label
    set as `input_ids` `(num_labels + 1, 81, 77)`: each class name written into SEEM's 81 prompt templates, and
    "background" appended last (SEEM's no-object class). Without `text`, the default label set stored with the
    image processor (`id2label`) is used when there is one.

    Prompts, per image (for a batch, a list of them per image):
    - `sentences=["the red circle", "the square on the left"]`: referring expressions, returned as
      `grounding_input_ids` and `grounding_attention_mask` `(batch, num_sentences, 77)` (padding sentences are
      all-zero in the mask);
    - `visual_prompts=[{"points": [(x, y)]}, {"box": (x0, y0, x1, y1), "negative_points": [...]}, ...]`: one dict per
      object, in pixels of the original image (keys in `rasterize_prompt`: points, box, scribbles, polygons,
      mask, and negative points, scribbles and mask), returned as `spatial_positive_masks` and
      `spatial_negative_masks` `(batch, num_objects, height, width)` on the model's padded input.

    The interactive loop: keep `image_features = model.get_image_features(inputs["pixel_values"])`, call the model
    with `image_features`, the prompt masks and a seeded `generator`; for the next round add clicks with
    `prepare_visual_prompts` (no image work) and pass the last `interactive_masks_logits` as `previous_masks`.
    """

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        super().__init__(image_processor, tokenizer, **kwargs)

    def __call__(self, images=None, text=None, sentences=None, visual_prompts=None, return_tensors="pt",
                 **kwargs) -> BatchFeature:
        if images is None and text is None and sentences is None:
            raise ValueError("SeemProcessor needs images, text (class names), sentences, or several of them.")
        outputs = BatchFeature()
        if images is not None:
            outputs.update(self.image_processor(images, return_tensors=return_tensors, **kwargs))
        labels = text if text is not None else self.default_labels
        if labels is not None and (text is not None or (sentences is None and visual_prompts is None)):
            outputs["input_ids"] = self.tokenize_labels(labels)
        count = len(images) if isinstance(images, (list, tuple)) else 1
        if sentences is not None:
            outputs.update(self.tokenize_sentences(_per_image(sentences, str, count)))
        if visual_prompts is not None:
            if images is None:
                raise ValueError("Visual prompts are given in image coordinates: pass the images too.")
            image_list = images if isinstance(images, (list, tuple)) else [images]
            outputs.update(self.prepare_visual_prompts(
                _per_image(visual_prompts, dict, count), [image_size(image) for image in image_list],
                torch.as_tensor(outputs["pixel_mask"]),
            ))
        return outputs

    def tokenize_sentences(self, sentences: list[list[str]], allow_empty: bool = False) -> dict:
        """Referring sentences per image -> `grounding_input_ids` and `grounding_attention_mask`
        `(batch, max sentences, 77)`; SEEM lower-cases them. `allow_empty` lets an image have none (training
        batches), which the model treats as padding only."""
        for image_sentences in sentences:
            if (not image_sentences and not allow_empty) or any(
                not isinstance(t, str) or not t.strip() for t in image_sentences
            ):
                raise ValueError(f"Each image needs a non-empty list of non-empty sentences, got {image_sentences!r}.")
        width = max(1, max(len(image_sentences) for image_sentences in sentences))
        ids = torch.full((len(sentences), width, CONTEXT_LENGTH), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(ids)
        for image, image_sentences in enumerate(sentences):
            if not image_sentences:
                continue
            encoded = self.tokenizer([t.lower() for t in image_sentences], padding="max_length",
                                     max_length=CONTEXT_LENGTH, truncation=True, return_tensors="pt")
            ids[image, : len(image_sentences)] = encoded["input_ids"]
            attention[image, : len(image_sentences)] = encoded["attention_mask"]
        return {"grounding_input_ids": ids, "grounding_attention_mask": attention}

    def prepare_visual_prompts(self, visual_prompts: list[list[dict]], image_sizes, pixel_mask) -> dict:
        """Visual prompts per image (one dict per object, original image coordinates) -> `spatial_positive_masks`
        and `spatial_negative_masks` `(batch, max objects, height, width)` on the padded input described by
        `pixel_mask` (from this processor); `image_sizes` are the original (height, width). Objects beyond an
        image's own count are empty (the model ignores them)."""
        pixel_mask = torch.as_tensor(pixel_mask)
        if len(visual_prompts) != len(image_sizes) or len(image_sizes) != len(pixel_mask):
            raise ValueError(f"Got prompts for {len(visual_prompts)} images, {len(image_sizes)} image sizes and a "
                             f"pixel_mask for {len(pixel_mask)} images.")
        padded = tuple(pixel_mask.shape[-2:])
        width = max(1, max(len(objects) for objects in visual_prompts))
        positive = torch.zeros(len(image_sizes), width, *padded, dtype=torch.bool)
        negative = torch.zeros_like(positive)
        for image, (objects, size, valid) in enumerate(zip(visual_prompts, image_sizes, pixel_mask.bool())):
            if not objects:
                raise ValueError(f"Image {image} has no visual prompt: give at least one object's prompt.")
            resized = (int(valid.any(1).sum()), int(valid.any(0).sum()))
            for index, prompt in enumerate(objects):
                masks = rasterize_prompt(prompt, size, resized, padded)
                positive[image, index], negative[image, index] = torch.from_numpy(masks[0]), torch.from_numpy(masks[1])
        return {"spatial_positive_masks": positive, "spatial_negative_masks": negative}

    def post_process_referring_segmentation(self, *args, **kwargs):
        return self.image_processor.post_process_referring_segmentation(*args, **kwargs)

    def post_process_interactive_segmentation(self, *args, **kwargs):
        return self.image_processor.post_process_interactive_segmentation(*args, **kwargs)

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

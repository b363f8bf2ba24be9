"""Processor for SEEM: the image processor, CLIP's tokenizer and SEEM's prompt templates."""

from __future__ import annotations

import warnings

import PIL.Image
import torch
from transformers import BatchFeature, ProcessorMixin

from seem_hf.image_utils import image_batch, image_size, opened
from seem_hf.postprocessing import model_outputs
from seem_hf.processing_utils import (
    CONTEXT_LENGTH,
    PostProcessingMixin,
    check_cut_labels,
    check_label_set,
    ordered_list,
    tokenize_to_context,
    warn_cut_texts,
)
from seem_hf.remote_code import RemoteCodeMixin
from seem_hf.text_utils import clean_text, without_unicode_normalization

from .prompts_seem import BACKGROUND, clean_class_name, evaluation_prompts, training_prompt
from .visual_sampler_seem import rasterize_prompt


def _listed(value, kind, name, example):
    """One image's prompts, or a batch of them, as a list (`ordered_list`); a single prompt (a dict, or a string for
    sentences) is returned as it is."""
    if isinstance(value, dict if kind is dict else str):
        return value
    return ordered_list(value, name, example)


def _per_image(value, kind, count, name):
    """One image's prompts (a dict list, or a string list for sentences) -> a batch of one; check the count.
    `name` is the argument, for the errors. Tuples, arrays and iterators are read as lists."""
    example = '["the red circle"]' if kind is str else '[{"points": [(x, y)]}]'
    value = _listed(value, kind, name, example)
    if isinstance(value, list) and not value:
        raise ValueError(f"{name} is empty: give at least one prompt per image, e.g. {name}={example}.")
    if kind is dict and isinstance(value, dict):  # one object's prompt for one image
        value = [value]
    single = (kind is dict and value and isinstance(value[0], dict)) or (kind is str and (
        isinstance(value, str) or (value and isinstance(value[0], str))))
    batch = [[value] if isinstance(value, str) else value] if single else [
        _listed(prompts, kind, f"{name}[{image}]", example) for image, prompts in enumerate(value)]
    if len(batch) != count:
        raise ValueError(f"{name}: got prompts for {len(batch)} images but {count} image(s) were given; give one "
                         f"list per image (for a single image, a flat list such as {name}={example}).")
    return batch


def check_seem_label_set(labels, name: str = "labels") -> list[str]:
    """`check_label_set` with SEEM's reading of a label (`clean_class_name` strips COCO's "-other", "-merged" and
    "-stuff", then CLIP's cleaning): labels that read alike, such as "wall-other" and "wall", are refused, and so
    "background", SEEM's own no-object class, which the processor appends to every label set, gets a warning (a
    data set's "background" class still trains, as the competing twin of the no-object class)."""
    def read(label):
        return clean_text(clean_class_name(label))

    labels = check_label_set(labels, read, name)
    if clashes := [label for label in labels if read(label) == read(BACKGROUND)]:
        warnings.warn(
            f"The label {clashes[0]!r} reads as {BACKGROUND!r}, SEEM's own no-object class, which the processor adds "
            "to every label set (last): the two prompts are the same, so the label competes with 'no object' and "
            "is rarely predicted. Leave it out (pixels of no label are background already) or name it "
            "differently, e.g. 'backdrop'.",
            stacklevel=3,
        )
    return labels


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
        super().__init__(image_processor, without_unicode_normalization(tokenizer), **kwargs)

    def __call__(self, images=None, text=None, sentences=None, visual_prompts=None, return_tensors="pt",
                 independent_sentences: bool = False, **kwargs) -> BatchFeature:
        """See the class docstring. `independent_sentences=True` makes one batch row per (image, sentence), so that
        each sentence gets the answer it would get alone (in one row, SEEM's grounding queries see the tokens of
        every sentence of the image); pass `sentences_per_image` to `post_process_referring_segmentation` to get the
        answers back per image."""
        if images is None and text is None and sentences is None:
            raise ValueError("SeemProcessor needs images, text (class names), sentences, or several of them.")
        if return_tensors not in ("pt", "np"):
            raise ValueError(
                "SeemProcessor returns torch tensors (return_tensors='pt', the default: what the model takes) or "
                f"numpy arrays (return_tensors='np'), got return_tensors={return_tensors!r}."
            )
        batch = image_batch(images)  # a list, tuple, other sequence or 4-D array or tensor of images
        # paths and URLs opened once: the pixels and the visual prompts' image sizes are read from the same image
        images = [opened(image) for image in batch] if batch is not None else opened(images)
        if independent_sentences:
            outputs = self._independent_sentences(images, text, sentences, visual_prompts, "pt", **kwargs)
        else:
            outputs = self._call(images, text, sentences, visual_prompts, **kwargs)
        if return_tensors == "np":
            outputs = BatchFeature({key: value.numpy() if isinstance(value, torch.Tensor) else value
                                    for key, value in outputs.items()})
        return outputs

    def _call(self, images, text, sentences, visual_prompts, return_tensors="pt", **kwargs) -> BatchFeature:
        outputs = BatchFeature()
        if images is not None:
            outputs.update(self.image_processor(images, return_tensors=return_tensors, **kwargs))
        labels = text if text is not None else self.default_labels
        if labels is not None and (text is not None or (sentences is None and visual_prompts is None)):
            outputs["input_ids"] = self.tokenize_labels(labels)
        else:  # prompts without a label set: not the default label set the image processor may carry
            outputs.pop("input_ids", None)
        count = len(images) if isinstance(images, list) else 1
        if sentences is not None:
            outputs.update(self.tokenize_sentences(_per_image(sentences, str, count, "sentences")))
        if visual_prompts is not None:
            if images is None:
                raise ValueError("Visual prompts are given in image coordinates: pass the images too.")
            image_list = images if isinstance(images, list) else [images]
            # the images' sizes as the image processor read them: an ambiguous array's layout is the one given
            sizes = [image_size(image, kwargs.get("input_data_format")) for image in image_list]
            try:
                outputs.update(self.prepare_visual_prompts(
                    _per_image(visual_prompts, dict, count, "visual_prompts"), sizes,
                    torch.as_tensor(outputs["pixel_mask"]),
                ))
            except ValueError as error:
                turned = [index for index, (image, size) in enumerate(zip(image_list, sizes))
                          if isinstance(image, PIL.Image.Image) and size != (image.height, image.width)]
                if not turned:
                    raise
                raise ValueError(
                    f"{error} Image(s) {turned} are photos turned upright by their EXIF orientation (as every "
                    "processor reads them): give prompts on the upright image, whose (height, width) is "
                    "seem_hf.image_utils.image_size(image), not on the pixels as stored (PIL's image.size)."
                ) from None
        return outputs

    def _independent_sentences(self, images, text, sentences, visual_prompts, return_tensors, **kwargs):
        if sentences is None or images is None or visual_prompts is not None:
            raise ValueError("independent_sentences=True needs images and sentences, and no visual_prompts (give "
                             "visual prompts in a call of their own).")
        count = len(images) if isinstance(images, list) else 1
        per_image = _per_image(sentences, str, count, "sentences")
        outputs = BatchFeature(self.image_processor(images, return_tensors=return_tensors, **kwargs))
        outputs.pop("input_ids", None)
        if text is not None:
            outputs["input_ids"] = self.tokenize_labels(text)
        rows = [image for image, image_sentences in enumerate(per_image) for _ in image_sentences]
        for key in ("pixel_values", "pixel_mask"):
            value = outputs[key]
            outputs[key] = value[rows] if hasattr(value, "shape") else [value[row] for row in rows]
        tokens = self.tokenize_sentences([[sentence] for image_sentences in per_image for sentence in image_sentences])
        outputs.update(tokens)
        return outputs

    def tokenize_sentences(self, sentences: list[list[str]], allow_empty: bool = False) -> dict:
        """Referring sentences per image -> `grounding_input_ids` and `grounding_attention_mask`
        `(batch, max sentences, 77)`, cleaned as CLIP cleans text (`seem_hf.text_utils.clean_text`, lower case
        included, as SEEM lower-cases them). `allow_empty` lets an image have none (training
        batches), which the model treats as padding only."""
        cleaned = []
        for image, image_sentences in enumerate(sentences):
            if isinstance(image_sentences, str) or not isinstance(image_sentences, (list, tuple)):
                raise ValueError(f"sentences: image {image} needs a list of sentences, got {image_sentences!r}.")
            if not image_sentences and not allow_empty:
                raise ValueError(f"sentences: image {image} has none; each image needs a non-empty list of non-empty "
                                 "sentences.")
            if bad := [t for t in image_sentences if not isinstance(t, str) or not t.strip()]:
                raise ValueError(f"sentences: each image needs a non-empty list of non-empty sentences; image {image} "
                                 f"has {bad!r}.")
            cleaned.append([clean_text(t) for t in image_sentences])
        sentences = cleaned
        width = max(1, max(len(image_sentences) for image_sentences in sentences))
        ids = torch.full((len(sentences), width, CONTEXT_LENGTH), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(ids)
        for image, image_sentences in enumerate(sentences):
            if not image_sentences:
                continue
            encoded, cut = tokenize_to_context(self.tokenizer, image_sentences)
            if cut:
                warn_cut_texts("sentences", [image_sentences[index] for index in cut])
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
                try:
                    masks = rasterize_prompt(prompt, size, resized, padded)
                except ValueError as error:
                    raise ValueError(f"visual_prompts of image {image}, object {index}: {error}") from None
                positive[image, index], negative[image, index] = torch.from_numpy(masks[0]), torch.from_numpy(masks[1])
        return {"spatial_positive_masks": positive, "spatial_negative_masks": negative}

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Also stores the default label set's tokens with the image processor, so that transformers' own
        image-segmentation pipeline (which calls the image processor alone) works where seem_hf is not installed."""
        if self.default_labels:
            self.image_processor.set_default_label_ids(
                self.tokenize_labels(self.default_labels), self.tokenizer.pad_token_id
            )
        return super().save_pretrained(save_directory, *args, **kwargs)

    def post_process_referring_segmentation(self, outputs, target_sizes=None, *args, sentences_per_image=None,
                                            **kwargs):
        """The image processor's `post_process_referring_segmentation`. With `sentences_per_image` (the number of
        sentences of each image, for outputs of `independent_sentences=True`), the rows are gathered back per image,
        with `target_sizes` per image and `sentence_index` the sentence's index in its image's list."""
        if sentences_per_image is None:
            return self.image_processor.post_process_referring_segmentation(outputs, target_sizes, *args, **kwargs)
        outputs = model_outputs(outputs)
        counts = [int(count) for count in sentences_per_image]
        if sum(counts) != len(outputs.grounding_logits) or any(count < 1 for count in counts):
            rows = len(outputs.grounding_logits)
            raise ValueError(f"sentences_per_image={counts} does not match outputs with {rows} rows (one per sentence, "
                             "from independent_sentences=True).")
        if target_sizes is not None:
            if len(target_sizes) != len(counts):
                raise ValueError(f"Got {len(target_sizes)} target_sizes for {len(counts)} images: one per image.")
            target_sizes = [size for size, count in zip(target_sizes, counts) for _ in range(count)]
        rows = self.image_processor.post_process_referring_segmentation(outputs, target_sizes, *args, **kwargs)
        results, start = [], 0
        for count in counts:
            results.append([dict(row[0], sentence_index=index) for index, row in enumerate(rows[start:start + count])])
            start += count
        return results

    def post_process_interactive_segmentation(self, *args, **kwargs):
        return self.image_processor.post_process_interactive_segmentation(*args, **kwargs)

    def set_default_labels(self, labels, thing_label_ids: list[int] | None = None, model=None) -> None:
        """Make `labels` the default label set (the image processor's `id2label`, its tokens stored when the
        processor is saved), with `thing_label_ids` the countable ones (the others are stuff, fused in panoptic
        results). With `model`, it becomes the model's default label set too (`config.id2label`), and
        `model.save_pretrained` then carries the set's text embeddings in the folder (`seem_hf.label_embeddings`),
        so that no process encodes its 81 prompts per label again."""
        labels = check_seem_label_set(labels)
        if thing_label_ids is not None and any(not 0 <= int(i) < len(labels) for i in thing_label_ids):
            raise ValueError(f"thing_label_ids must index the {len(labels)} labels, got {list(thing_label_ids)}.")
        self.image_processor.id2label = dict(enumerate(labels))
        self.image_processor.thing_label_ids = None if thing_label_ids is None else sorted(map(int, thing_label_ids))
        self.image_processor.label_input_ids = self.image_processor.label_pad_token_id = None
        if model is not None:
            model.config.id2label = dict(enumerate(labels))
            model.config.label2id = {label: index for index, label in enumerate(labels)}
            model.set_default_label_set(self.tokenize_labels(labels), labels=labels)

    @property
    def default_labels(self) -> list[str] | None:
        id2label = getattr(self.image_processor, "id2label", None)
        return [id2label[index] for index in sorted(id2label)] if id2label else None

    def tokenize_labels(self, labels):
        """`(num_labels + 1, 81, 77)` token ids of the label set's prompts, "background" last."""
        labels = check_seem_label_set(labels, "text")
        prompts = [prompt for label in labels + [BACKGROUND] for prompt in evaluation_prompts(label)]
        encoded, cut = tokenize_to_context(self.tokenizer, [clean_text(prompt) for prompt in prompts])
        input_ids = encoded["input_ids"].view(len(labels) + 1, -1, CONTEXT_LENGTH)
        check_cut_labels(labels, input_ids[: len(labels)], sorted({index // input_ids.shape[1] for index in cut}))
        return input_ids

    def tokenize_training_labels(self, labels, rng):
        """`(num_labels + 1, 1, 77)` token ids with one prompt template drawn per label from `rng` (a
        `random.Random`), as SEEM's training draws them; "background" last."""
        prompts = [training_prompt(label, rng) for label in list(labels) + [BACKGROUND]]
        return self._tokenize(prompts)[:, None]

    def _tokenize(self, prompts: list[str]):
        return self.tokenizer(
            [clean_text(prompt) for prompt in prompts], padding="max_length", max_length=CONTEXT_LENGTH,
            truncation=True, return_tensors="pt",
        )["input_ids"]


SeemProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["SeemProcessor"]

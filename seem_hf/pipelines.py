"""The image-segmentation pipeline, extended to read every image through seem_hf's one image reader, and the
referring-segmentation pipeline.

transformers' `ImageSegmentationPipeline` reads paths, URLs and PIL images with its own `load_image`. `import
seem_hf` installs this subclass as the task's implementation: every input (paths as `str` or `pathlib.Path`, URLs,
PIL images, numpy arrays, torch tensors) is read by `seem_hf.image_utils.read_image`, the rule the image processors
apply, and behaves as transformers' pipeline otherwise. With `batch_size`, the images of a batch go through the model
together when they have one processed size (a batched call gives what one image at a time gives); with
`padding=True`, images of different sizes are padded to the largest as the originals batch them (see
`_ImageBatchingMixin`).
"""

from __future__ import annotations

import collections.abc
import inspect
import time
import warnings

import numpy as np
import PIL.Image
import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForUniversalSegmentation, AutoProcessor
from transformers.pipelines import PIPELINE_REGISTRY, ImageSegmentationPipeline, Pipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator
from transformers.utils import ModelOutput

from seem_hf.image_utils import image_batch, read_image
from seem_hf.postprocessing import UnusedThresholdWarning, check_threshold, check_top_k
from seem_hf.processing_utils import check_label_set, ordered_list, placeholder_label_set

SUBTASKS = (None, "panoptic", "instance", "semantic")
# Model outputs that describe the label set, not one image: every image of a batch shares them.
_SHARED_OUTPUTS = ("class_embeddings",)


class _BatchImage:
    """An image of a batch with its position, so that an error reading it names which image it is."""

    __slots__ = ("index", "image")

    def __init__(self, index: int, image):
        self.index, self.image = index, image


def _images_argument(inputs):
    """The pipelines' `inputs`: one image, or a batch (`image_batch`: a list, a tuple, another sequence such as a
    `datasets` column, or a 4-D array or tensor, as the image processors read it) as a list of `_BatchImage`."""
    if inputs is None:
        raise ValueError("No image given: call the pipeline with an image, or a list of images.")
    batch = image_batch(inputs)
    if batch is not None:
        inputs = batch
    if isinstance(inputs, list) and not inputs:
        raise ValueError("No images given: the pipeline got an empty list; give at least one image.")
    if isinstance(inputs, list) and len(inputs) > 1:
        inputs = [_BatchImage(index, image) for index, image in enumerate(inputs)]
    return inputs


def _read_input(image, timeout=None) -> np.ndarray:
    """One pipeline input read by `read_image` (paths and URLs too), its errors naming its place in a batch."""
    index = None
    if isinstance(image, _BatchImage):
        index, image = image.index, image.image
    return read_image(image, timeout=timeout, index=index, allow_paths=True)


def _check_fraction(name: str, value) -> None:
    """Post-processing's rule (`check_threshold`: numpy and one-element tensor scalars are numbers too), with
    the pipeline's error type."""
    if value is not None:
        try:
            check_threshold(name, value)
        except TypeError as error:
            raise ValueError(str(error)) from None


def _check_padding(padding) -> bool:
    if not isinstance(padding, bool):
        raise ValueError(f"padding= is True (images of different sizes share a padded forward) or False, got "
                         f"{padding!r}.")
    return padding


class _Flattened:
    """Per-image outputs from an iterable of per-batch lists (with the number of images when it is known)."""

    def __init__(self, batches, size):
        self.batches, self.size = batches, size

    def __len__(self):
        if self.size is None:
            raise TypeError("unknown length")
        return self.size

    def __iter__(self):
        for batch in self.batches:
            yield from batch


class _AdaptedModelMixin:
    """A model wrapped by PEFT (`PeftModel`: what `seem_hf.adapters` and `PeftModel.from_pretrained` return) is
    checked as the model it wraps. transformers' check logged "The model 'PeftModel' is not supported for
    image-segmentation" (an error-level message) for it, though the pipeline runs it as the model it wraps."""

    def check_model_type(self, supported_models):
        wrapped = getattr(self.model, "get_base_model", None)
        if not callable(wrapped):
            return super().check_model_type(supported_models)
        model, self.model = self.model, wrapped()
        try:
            return super().check_model_type(supported_models)
        finally:
            self.model = model


class _ImageBatchingMixin:
    """`batch_size` for pipelines whose preprocess gives one image's model inputs: a batch's images are grouped (by
    anything their inputs differ in but the image), each group runs through the model at once, and the outputs are
    split back into one batch-1 output per image, so post-processing is the one-image code.

    Images of one processed size share a forward as they are: the results are those of one image at a time. With
    `padding=True` (a call's or the pipeline's argument), images of different sizes share one too, padded at the
    bottom and right to the group's largest (`pixel_mask` 0 there) as DETR's `NestedTensor` and SEEM's detectron2
    `ImageList` batch them, when the model reads a `pixel_mask` and the padding adds at most `padding_waste` (a
    quarter) of the group's real pixels (padding a portrait photo to a landscape one's width costs more than
    batching saves). A padded image's mask outputs are cropped back to its own extent (SEEM crops by the
    `image_sizes` it reports), but its features are not those of the image alone: the convolutions see the padding
    near its bottom and right edges and DETR's transformer its masked cells, which can move a weak model's segment
    boundaries (the embedded DETR-panoptic: same segments, scores within 2e-4, 17% of one 300x451 image's mask
    pixels moved). Hence off by default: a batched call gives what one image at a time gives.

    Whether a shared forward pays is measured, not guessed: on CPU a forward of large images is compute-bound at
    batch 1 already, and batching there can be slower than one image at a time (SEEM Focal-T at 384x512 ran pairs at
    0.86x, DETR-panoptic R50 at 800x1066 fours at 0.74x, while the embedded defaults' 256x341 images gain 1.2-1.5x:
    benchmarks/RESULTS.md, batched pipelines), and a forward's time can depend on the image (DETR-panoptic runs its
    mask head for confident queries only). So on CPU a pipeline measures it per input shape, on the same images both
    ways: the shape's first group runs one image at a time (which also pays a first call's one-off costs), its next
    `batching_trials` groups each run once in one shared forward and then one image at a time (those outputs are
    returned: the results stay those of one image at a time), and its later groups share a forward only if, in the
    better trial, it took under `batching_gain` (0.9) of the time of the images one by one (the first forward at a
    new batch size pays one-off costs, for memory and kernels, that a repeated one does not; a timing on a busy
    machine moves by 5-10%, so a smaller gain is no evidence; the trials cost one extra forward each). On other
    devices (where batching pays and timing would need synchronising), and with `batching_trials = 0`, groups always
    share a forward. `batching_measurements` holds each input shape's trials (shared, one-by-one seconds).

    Subclasses set `_per_image_inputs` (the input keys with a batch axis) and `_per_image_lists` (list-valued keys,
    one entry per image, in inputs and outputs)."""

    _per_image_inputs: tuple[str, ...] = ("pixel_values", "pixel_mask")
    _per_image_lists: tuple[str, ...] = ("target_size",)
    _padded_inputs: tuple[str, ...] = ("pixel_values", "pixel_mask")
    padding_waste: float = 0.25
    batching_trials: int = 2
    batching_gain: float = 0.9

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        if batch_size == 1:
            return super().get_iterator(
                inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params
            )
        sized = isinstance(inputs, collections.abc.Sized)
        dataset = (PipelineDataset if sized else PipelineIterator)(inputs, self.preprocess, preprocess_params)
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=list)
        outputs = _Flattened(PipelineIterator(loader, self.forward, forward_params), len(inputs) if sized else None)
        return PipelineIterator(outputs, self.postprocess, postprocess_params)

    def _forward(self, model_inputs, padding: bool = False, **forward_params):
        if not isinstance(model_inputs, list):
            return self._forward_one(model_inputs, **forward_params)
        groups: list[list[int]] = []
        for index, item in enumerate(model_inputs):
            for group in groups:
                members = [model_inputs[member] for member in (*group, index)]
                if self._batchable(model_inputs[group[0]], item, padding) and self._padding_pays(members):
                    group.append(index)
                    break
            else:
                groups.append([index])
        results = [None] * len(model_inputs)
        for group in groups:
            for index, outputs in zip(group, self._run_group([model_inputs[index] for index in group], forward_params)):
                results[index] = outputs
        return results

    def _run_group(self, items: list[dict], forward_params: dict) -> list[ModelOutput]:
        """Per-image outputs of a group of batchable images: one shared forward where that was measured to pay (see
        the class docstring), one image at a time otherwise and until it is measured."""
        if len(items) == 1 or self.device.type != "cpu" or not self.batching_trials:
            return self._run_together(items, forward_params)
        shape = tuple(sorted({tuple(item["pixel_values"].shape) for item in items}))
        # Per input shape seen: each trial's seconds (the shared forward, the same images one by one).
        measurements = self.__dict__.setdefault("batching_measurements", {})
        if shape not in measurements:
            measurements[shape] = []
        elif len(measurements[shape]) < self.batching_trials:
            self._run_together(items, forward_params)  # the trial's shared forward; its outputs are not used
            shared = self._forward_seconds
            outputs, alone = self._one_by_one(items, forward_params)
            measurements[shape].append((shared, alone))
            return outputs
        elif self.batching_pays(measurements[shape]):
            return self._run_together(items, forward_params)
        return self._one_by_one(items, forward_params)[0]

    def batching_pays(self, trials: list[tuple[float, float]]) -> bool:
        """The rule applied to an input shape's trials (shared, one-by-one seconds): its better trial's shared forward
        took under `batching_gain` of the time."""
        return min(shared / alone for shared, alone in trials) < self.batching_gain

    def _one_by_one(self, items: list[dict], forward_params: dict) -> tuple[list[ModelOutput], float]:
        """Each image's outputs from a forward of its own, and the forwards' seconds."""
        outputs, seconds = [], 0.0
        for item in items:
            outputs += self._run_together([item], forward_params)
            seconds += self._forward_seconds
        return outputs, seconds

    def _run_together(self, items: list[dict], forward_params: dict) -> list[ModelOutput]:
        """`items` through the model in one forward (padded to the largest where their sizes differ), split into
        one batch-1 output per image."""
        sizes = [tuple(item["pixel_values"].shape[-2:]) for item in items]
        padded = tuple(max(size[axis] for size in sizes) for axis in (0, 1))
        batch = dict(items[0])
        for key in self._per_image_inputs:
            if key in batch:
                batch[key] = torch.cat([self._padded(key, item[key], padded) for item in items])
        for key in self._per_image_lists:
            if key in batch:
                batch[key] = [entry for item in items for entry in item[key]]
        outputs = self._forward_one(batch, **forward_params)
        return [self._one_image(outputs, position, len(items), size, padded) for position, size in enumerate(sizes)]

    def _model(self, **model_inputs):
        """The model's forward, timed (`_forward_seconds`: what the batching trial compares; label-set encoding
        and other preparation are not part of it)."""
        start = time.perf_counter()
        outputs = self.model(**model_inputs)
        self._forward_seconds = time.perf_counter() - start
        return outputs

    def _can_pad(self, item: dict) -> bool:
        return "pixel_mask" in item and "pixel_mask" in inspect.signature(self.model.forward).parameters

    def _padding_pays(self, items: list[dict]) -> bool:
        """Whether `items`, each `_batchable` with the first (so of one size unless padding is allowed), are worth
        padding into one forward: padding adds at most `padding_waste` of their real pixels."""
        sizes = [tuple(item["pixel_values"].shape[-2:]) for item in items]
        height, width = max(size[0] for size in sizes), max(size[1] for size in sizes)
        return len(sizes) * height * width <= (1 + self.padding_waste) * sum(h * w for h, w in sizes)

    def _padded(self, key: str, value: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if key not in self._padded_inputs or tuple(value.shape[-2:]) == size:
            return value
        return torch.nn.functional.pad(value, (0, size[1] - value.shape[-1], 0, size[0] - value.shape[-2]))

    def _batchable(self, first: dict, other: dict, padding: bool = False) -> bool:
        """Whether two images' inputs can share a forward: the same keys, per-image tensors of the same shape (up
        to the image size, with `padding` for a model that reads a `pixel_mask`), and everything else (label set,
        thresholds, prompts) equal."""
        if first.keys() != other.keys():
            return False
        paddable = padding and self._can_pad(first)
        for key, value in first.items():
            if key in self._per_image_lists:
                continue
            if key in self._per_image_inputs:
                kept = value.ndim - (2 if paddable and key in self._padded_inputs else 0)  # the image axes may differ
                if value.ndim != other[key].ndim or value.shape[:kept] != other[key].shape[:kept]:
                    return False
            elif isinstance(value, torch.Tensor):
                if value.shape != other[key].shape or not torch.equal(value, other[key]):
                    return False
            elif value != other[key]:
                return False
        return True

    def _one_image(self, outputs, position: int, count: int, size=None, padded=None) -> ModelOutput:
        """The batch-1 outputs of image `position` of a batch of `count`: tensors with a batch axis sliced, shared
        outputs kept, per-image lists cut; nested outputs (auxiliary losses) are left out, as post-processing does
        not read them. An image of processed `size` padded to `padded` has its mask maps (4-D outputs) cropped to
        its own extent, unless the model reports `image_sizes` (its post-processing crops)."""
        crop = size != padded and getattr(outputs, "image_sizes", None) is None
        single = {}
        for key, value in outputs.items():
            if key in _SHARED_OUTPUTS:
                single[key] = value
            elif isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == count:
                value = value[position : position + 1]
                if crop and value.ndim == 4:
                    rows = -(-value.shape[-2] * size[0] // padded[0])  # ceil: a stride-s map of the image
                    columns = -(-value.shape[-1] * size[1] // padded[1])
                    value = value[..., :rows, :columns]
                single[key] = value
            elif key in self._per_image_lists + ("image_sizes",) and isinstance(value, (list, tuple)):
                single[key] = [value[position]]
        return ModelOutput(single)


class ArrayImageSegmentationPipeline(_AdaptedModelMixin, _ImageBatchingMixin, ImageSegmentationPipeline):
    """`pipeline("image-segmentation")` for seem_hf's models: images as paths (`str` or `pathlib.Path`), URLs, PIL
    images, numpy arrays (H, W), (H, W, C), (C, H, W) and torch tensors, read by `seem_hf.image_utils.read_image`
    (the rule is documented there: uint8, bool, uint16 and float values, alpha, EXIF orientation); a list, a tuple
    or a 4-D array or tensor is a batch.

    For panoptic and instance results of a model whose forward takes `mask_score_threshold` (DETR-panoptic),
    the call's score threshold is passed to it, so masks are computed only for queries that can pass it;
    the results are those of the full forward.

    Open-vocabulary models (LSeg, SEEM) segment over the label set stored with their processor by default;
    `segmenter(image, labels=["cat", "sofa", "other"])` segments over another set for that call.
    """

    _per_image_lists = ("target_size",)

    def __call__(self, inputs=None, **kwargs):
        if "images" in kwargs:
            inputs = kwargs.pop("images")
        return super().__call__(_images_argument(inputs), **kwargs)

    def _sanitize_parameters(self, **kwargs):
        # Every value below is derived from this call's own arguments; what depends on several of them (the
        # forward's mask threshold depends on subtask, threshold and labels) is settled in preprocess, from the
        # call's arguments merged with the pipeline's, so nothing of one call can reach the next.
        if kwargs.get("subtask") not in SUBTASKS:
            raise ValueError(f"subtask must be one of {SUBTASKS}, got {kwargs['subtask']!r}.")
        for name in ("threshold", "mask_threshold", "overlap_mask_area_threshold"):
            if name in kwargs and kwargs[name] is None:
                # None is "not given", as for the referring pipeline: the pipeline's own value or the default applies
                # (transformers passed the None on to post-processing, which failed on it)
                del kwargs[name]
            _check_fraction(name, kwargs.get(name))
        if "label_ids_to_fuse" in kwargs:  # transformers' pipeline would drop it without a word
            raise ValueError(
                "label_ids_to_fuse is not an argument of the pipeline: its panoptic results fuse the stuff labels of "
                "the processor (the labels not in thing_label_ids). To fuse other labels, run the model and call "
                "processor.post_process_panoptic_segmentation(outputs, label_ids_to_fuse=[...])."
            )
        padding = kwargs.pop("padding", None)
        preprocess, forward, postprocess = super()._sanitize_parameters(**kwargs)
        if padding is not None:
            forward["padding"] = _check_padding(padding)
        if kwargs.get("threshold") is not None:
            preprocess["threshold"] = kwargs["threshold"]
        if kwargs.get("labels") is not None:
            if "input_ids" not in inspect.signature(self.model.forward).parameters:
                raise ValueError(f"{type(self.model).__name__} has a fixed label set; it takes no labels=.")
            labels = check_label_set(kwargs["labels"])
            preprocess["labels"] = postprocess["labels"] = labels
        self._warn_unused_thresholds(kwargs)
        return preprocess, forward, postprocess

    def _warn_unused_thresholds(self, kwargs: dict) -> None:
        """Warn when this call (or the pipeline's construction) gives thresholds that its results do not read:
        semantic segmentation (a model without panoptic and instance results, `subtask="semantic"`, or a per-call
        label set) has no score or mask threshold, and DETR's own panoptic rule (`panoptic_rule="detr"`, converted
        checkpoints) no mask or overlap threshold. transformers' pipeline drops them without a word."""
        given = [name for name in ("threshold", "mask_threshold", "overlap_mask_area_threshold")
                 if kwargs.get(name) is not None]
        if not given:
            return
        earlier = getattr(self, "_postprocess_params", None) or {}
        subtask = kwargs.get("subtask", earlier.get("subtask"))
        labels = kwargs.get("labels", earlier.get("labels"))
        unused, semantic = given, " gives semantic segmentation, which has no score or mask threshold"
        if not any(hasattr(self.image_processor, f"post_process_{kind}_segmentation")
                   for kind in ("panoptic", "instance")):
            reason = f"{type(self.model).__name__} gives semantic segmentation only, with no score or mask threshold"
        elif labels is not None:
            reason = "a call with labels=" + semantic
        elif subtask == "semantic":
            reason = "subtask='semantic'" + semantic
        else:
            unused = [name for name in given if name != "threshold"]
            if not unused or subtask not in (None, "panoptic") or getattr(
                    self.image_processor, "panoptic_rule", None) != "detr":
                return
            reason = ("the image processor's panoptic_rule='detr' (DETR's own rule: the best query per pixel, segments "
                      "of at most 4 pixels dropped) has no mask or overlap threshold; set "
                      "segmenter.image_processor.panoptic_rule = 'maskformer' for transformers' rule, which reads them")
        # the user's call -> ArrayImageSegmentationPipeline.__call__ -> transformers' two __call__ -> here
        warnings.warn(f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used: {reason}.", stacklevel=6)

    def preprocess(self, image, subtask=None, timeout=None, labels=None, threshold=None):
        image = _read_input(image, timeout)
        inputs = self.image_processor(images=[image], return_tensors="pt").to(self.dtype)
        inputs = dict(inputs)
        inputs["target_size"] = [tuple(image.shape[:2])]
        takes_text = "input_ids" in inspect.signature(self.model.forward).parameters
        if takes_text and labels is None:
            self._check_default_label_sets()
        if takes_text and (labels is not None or "input_ids" not in inputs):
            inputs.update(self._label_set_inputs(labels))
        if takes_text:
            inputs["default_label_set"] = labels is None
        if labels is not None and subtask not in (None, "semantic"):
            raise ValueError("A per-call label set gives semantic segmentation only: use subtask='semantic'.")
        accepts = "mask_score_threshold" in inspect.signature(self.model.forward).parameters
        if accepts and subtask != "semantic":
            # Masks may be skipped only below the threshold postprocess will apply, so read its default rather
            # than restating it.
            default = inspect.signature(ImageSegmentationPipeline.postprocess).parameters["threshold"].default
            inputs["mask_score_threshold"] = default if threshold is None else threshold
        return inputs

    def _check_default_label_sets(self) -> None:
        """Segments are named by the model's `config.id2label`; an image processor that carries another default label
        set (encoded in its place, or used to tell things from stuff) would name them wrongly or fail on a missing
        id, so the two must be one set."""
        theirs = getattr(self.image_processor, "id2label", None)
        ours = self.model.config.id2label
        if not theirs and placeholder_label_set(ours):
            raise ValueError(
                f"{type(self.model).__name__} has no default label set: its config.id2label holds transformers' "
                f"placeholders ({', '.join(ours[i] for i in sorted(ours))}), which would be read as the labels. Give "
                "the call its labels, e.g. segmenter(image, labels=['cat', 'dog']), or save a default set with "
                "processor.set_default_labels(labels, model=model) (a converted checkpoint: convert with "
                "--categories or --labels)."
            )
        if not theirs or [theirs[i] for i in sorted(theirs)] == [ours[i] for i in sorted(ours)]:
            return

        def show(id2label):
            names = [id2label[i] for i in sorted(id2label)]
            return f"{len(names)} labels: {', '.join(map(repr, names[:6]))}{', ...' if len(names) > 6 else ''}"

        raise ValueError(
            f"The image processor's default label set ({show(theirs)}) is not the model's config.id2label "
            f"({show(ours)}), so segments would be named from the wrong set. Make them one set with "
            "`processor.set_default_labels(labels, model=model)`, or give each call its own `labels=[...]`."
        )

    def _forward_one(self, model_inputs):
        model_inputs = dict(model_inputs)
        target_size = model_inputs.pop("target_size")
        default_label_set = model_inputs.pop("default_label_set", False)
        if "input_ids" in model_inputs and hasattr(self.model, "get_text_features"):
            model_inputs["class_embeddings"] = self._label_embeddings(
                model_inputs.pop("input_ids"), model_inputs.pop("attention_mask", None), default_label_set
            )
        model_outputs = self._model(**model_inputs)
        model_outputs["target_size"] = target_size
        return model_outputs

    def _label_embeddings(self, input_ids, attention_mask, default_label_set: bool = False):
        """The label set's text embeddings, computed once while the label set and the model's weights stay the
        same. SEEM averages 81 prompt templates per label, so encoding COCO's 133 labels is ~10,000 prompts: the
        original encodes them once too. Any in-place change to a parameter (an optimizer step, `load_state_dict`)
        bumps its version counter, which invalidates the cache. Models with `get_label_embeddings`
        (`seem_hf.label_embeddings`) also read them from their folder or the disk cache, across processes."""
        versions = tuple(parameter._version for parameter in self.model.parameters())
        cached = getattr(self, "_label_cache", None)
        if (
            cached is not None
            and cached[0] == versions
            and cached[1].shape == input_ids.shape
            and torch.equal(cached[1], input_ids)
            and (cached[2] is None) == (attention_mask is None)
            and (attention_mask is None or torch.equal(cached[2], attention_mask))
        ):
            return cached[3]
        if hasattr(self.model, "get_label_embeddings"):
            embeddings = self.model.get_label_embeddings(input_ids, attention_mask, default_label_set=default_label_set)
        elif "attention_mask" in inspect.signature(self.model.get_text_features).parameters:
            embeddings = self.model.get_text_features(input_ids, attention_mask)
        else:
            embeddings = self.model.get_text_features(input_ids)
        self._label_cache = (versions, input_ids, attention_mask, embeddings)
        return embeddings

    def _label_set_inputs(self, labels) -> dict:
        """The label set (this call's, or the model's default `id2label`) tokenised by the model's processor."""
        if labels is None:
            labels = [self.model.config.id2label[index] for index in sorted(self.model.config.id2label)]
        processor = getattr(self, "processor", None)
        if processor is None or not hasattr(processor, "tokenize_labels"):
            try:
                processor = AutoProcessor.from_pretrained(self.model.name_or_path)
            except (OSError, ValueError) as error:
                raise ValueError(
                    f"{type(self.model).__name__} reads a label set: give the pipeline its processor (processor=...)."
                ) from error
            self.processor = processor
        labels = tuple(check_label_set(labels))
        cached = getattr(self, "_tokenized_labels", None)
        if cached is None or cached[0] != labels:
            text = processor(text=list(labels), return_tensors="pt")
            cached = self._tokenized_labels = (
                labels, {key: text[key] for key in ("input_ids", "attention_mask") if key in text}
            )
        return dict(cached[1])

    def postprocess(self, model_outputs, labels=None, **kwargs):
        if labels is None:
            with warnings.catch_warnings():
                # transformers' postprocess passes its default mask and overlap thresholds whether or not the user
                # gave them; the ones the user gave and no rule reads were named by `_warn_unused_thresholds`
                warnings.simplefilter("ignore", UnusedThresholdWarning)
                return super().postprocess(model_outputs, **kwargs)
        segmentation = self.image_processor.post_process_semantic_segmentation(
            model_outputs, target_sizes=model_outputs["target_size"]
        )[0].numpy()
        return [
            {"score": None, "label": labels[label],
             "mask": PIL.Image.fromarray(((segmentation == label) * 255).astype(np.uint8), mode="L")}
            for label in np.unique(segmentation)
        ]


class ReferringSegmentationPipeline(_AdaptedModelMixin, _ImageBatchingMixin, Pipeline):
    """`pipeline("referring-segmentation", model=...)`: a mask for each sentence that describes something in the
    image (SEEM's grounding queries).

    `segmenter(image, sentences=["the red circle", "the squares"], top_k=1)` returns, per sentence, a list of
    `{"sentence", "score", "mask"}` (a PIL "L" image at the input's size); `top_k` > 1 returns the next-best
    matches too (every car for "cars", not one). Images as in the image-segmentation pipeline; one sentence may be
    given as a string.
    """

    _load_processor = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _per_image_inputs = ("pixel_values", "pixel_mask", "grounding_input_ids", "grounding_attention_mask")
    _per_image_lists = ("target_size", "sentences")

    def __call__(self, inputs=None, **kwargs):
        if "images" in kwargs:
            inputs = kwargs.pop("images")
        return super().__call__(_images_argument(inputs), **kwargs)

    def _sanitize_parameters(self, sentences=None, top_k=None, mask_threshold=None, timeout=None, padding=None,
                             **kwargs):
        if kwargs:
            raise ValueError(f"Unknown arguments for referring segmentation: {sorted(kwargs)}.")
        if top_k is not None:
            try:
                top_k = check_top_k(top_k)
            except TypeError as error:
                raise ValueError(str(error)) from None
        _check_fraction("mask_threshold", mask_threshold)
        if sentences is not None:
            # the results are one list per sentence, in their order: a set's order changes between processes
            sentences = [sentences] if isinstance(sentences, str) else ordered_list(
                sentences, "sentences", '["the red circle", "the squares"]', what="sentences")
            if any(isinstance(text, (list, tuple)) for text in sentences):
                raise ValueError("sentences= is one list of sentences for every image of the call, not a list per "
                                 "image: call the pipeline once per set of sentences.")
            if not sentences or any(not isinstance(text, str) or not text.strip() for text in sentences):
                raise ValueError(f"sentences= needs at least one non-empty sentence, got {sentences!r}.")
        # only what this call gives: a None must not override the pipeline's own default
        preprocess = {key: value for key, value in (("sentences", sentences), ("timeout", timeout))
                      if value is not None}
        postprocess = {key: value for key, value in (("top_k", top_k), ("mask_threshold", mask_threshold))
                       if value is not None}
        return preprocess, {} if padding is None else {"padding": _check_padding(padding)}, postprocess

    def preprocess(self, image, sentences=None, timeout=None):
        if sentences is None:
            raise ValueError("Referring segmentation needs sentences=[...] describing what to segment.")
        image = _read_input(image, timeout)
        inputs = dict(self.processor(images=image, sentences=sentences, return_tensors="pt").to(self.dtype))
        inputs["target_size"] = [tuple(image.shape[:2])]
        inputs["sentences"] = [list(sentences)]
        return inputs

    def _forward_one(self, model_inputs):
        model_inputs = dict(model_inputs)
        target_size, sentences = model_inputs.pop("target_size"), model_inputs.pop("sentences")
        outputs = self._model(**model_inputs)
        outputs["target_size"], outputs["sentences"] = target_size, sentences
        return outputs

    def postprocess(self, model_outputs, top_k=1, mask_threshold=0.5):
        results = self.processor.post_process_referring_segmentation(
            model_outputs, target_sizes=model_outputs["target_size"], top_k=top_k, mask_threshold=mask_threshold
        )[0]
        sentences = model_outputs["sentences"][0]
        return [
            [{"sentence": sentences[result["sentence_index"]], "score": float(score),
              "mask": PIL.Image.fromarray((mask.numpy() * 255).astype(np.uint8), mode="L")}
             for mask, score in zip(result["masks"], result["scores"])]
            for result in results
        ]


def register_pipeline() -> None:
    """Make `pipeline("image-segmentation")` build `ArrayImageSegmentationPipeline` (a strict superset of
    transformers' pipeline for every input it accepted), and register `pipeline("referring-segmentation")`."""
    PIPELINE_REGISTRY.supported_tasks["image-segmentation"]["impl"] = ArrayImageSegmentationPipeline
    PIPELINE_REGISTRY.register_pipeline(
        "referring-segmentation", pipeline_class=ReferringSegmentationPipeline,
        pt_model=AutoModelForUniversalSegmentation, type="multimodal",
    )


__all__ = ["ArrayImageSegmentationPipeline", "ReferringSegmentationPipeline", "register_pipeline"]

"""Image processor for LSeg: transformers' DPT pre-processing on the PIL backend, with LSeg's settings."""

from __future__ import annotations

from transformers import BatchFeature
from transformers.image_utils import PILImageResampling
from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

from seem_hf.image_utils import CheckedImagesMixin
from seem_hf.postprocessing import check_orientation, check_sizes, model_outputs, resized_argmax
from seem_hf.remote_code import RemoteCodeMixin


class LSegImageProcessor(CheckedImagesMixin, RemoteCodeMixin, DPTImageProcessorPil):
    r"""
    Pre- and post-processing for [`LSegForSemanticSegmentation`].

    Resizes each image towards `size` (480x480, LSeg's crop size) keeping its aspect ratio, with sides rounded
    to multiples of 32 (what the model needs), rescales to [0, 1] and normalises with LSeg's mean = std = 0.5.
    Inputs are checked as every seem_hf processor checks them (PIL, numpy, tensors; grayscale and RGBA become
    RGB; errors name the problem). `post_process_semantic_segmentation` resizes the logits to each target size
    and takes the best label per pixel (transformers' DPT post-processing).

    The processor can carry a default label set, so that a plain `image_processor(images)` (and transformers'
    own image-segmentation pipeline) gives the model everything it needs: `id2label` names the labels and
    `label_input_ids` / `label_attention_mask` hold them tokenised (`LSegProcessor` fills these in); they are
    returned as `input_ids` / `attention_mask` with the pixels.
    """

    resample = PILImageResampling.BILINEAR
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    size = {"height": 480, "width": 480}
    keep_aspect_ratio = True
    ensure_multiple_of = 32
    model_input_names = ["pixel_values"]

    def __init__(
        self,
        id2label: dict | None = None,
        label_input_ids: list[list[int]] | None = None,
        label_attention_mask: list[list[int]] | None = None,
        **kwargs,
    ):
        kwargs.setdefault("do_convert_rgb", True)
        super().__init__(**kwargs)
        self.id2label = {int(k): str(v) for k, v in id2label.items()} if id2label else None
        self.label_input_ids = label_input_ids
        self.label_attention_mask = label_attention_mask
        if label_input_ids is not None and (self.id2label is None or len(label_input_ids) != len(self.id2label)):
            raise ValueError("label_input_ids needs an id2label with one name per tokenised label.")

    def preprocess(self, images, segmentation_maps=None, **kwargs) -> BatchFeature:
        """transformers' DPT pre-processing; a batch whose images resize to different sizes is refused with an error
        that names the sizes and what works (LSeg reads no pixel mask, so a batch is not padded to one size)."""
        if "padding" in kwargs:
            raise ValueError(
                "LSeg's processor does not pad a batch to one size (the model reads no pixel mask, so padding would "
                "change its answers). Process images of different sizes one at a time, or use "
                "pipeline('image-segmentation', model=..., batch_size=n), which batches images of one size together."
            )
        size = kwargs.get("size", self.size)
        if size is not None and not isinstance(size, int):
            fields = dict(size) if isinstance(size, dict) else {key: value for key, value in vars(size).items()
                                                                 if value is not None}
            if fields.get("height") is None or fields.get("width") is None:
                # DPT's resize fails on other keys with "'SizeDict' object has no attribute 'keys'"
                raise ValueError(
                    f"LSeg resizes towards a height and a width, keeping the aspect ratio with sides multiples of 32: "
                    f"give size={{'height': h, 'width': w}} (or one int for both), got size={fields}."
                )
        return_tensors = kwargs.pop("return_tensors", None)
        outputs = super().preprocess(images, segmentation_maps, return_tensors=None, **kwargs)
        sizes = [tuple(values.shape[-2:]) for values in outputs["pixel_values"]]
        if return_tensors is not None and len(set(sizes)) > 1:
            raise ValueError(
                f"The images resize to different sizes {sizes} (height, width), which cannot be stacked into one "
                "tensor: LSeg reads no pixel mask, so a batch is not padded to one size. Process them one at a time, "
                "use pipeline('image-segmentation', model=..., batch_size=n) (it batches images of one size "
                "together), or pass return_tensors=None for a list of arrays."
            )
        outputs = BatchFeature(dict(outputs), tensor_type=return_tensors)
        if self.label_input_ids is not None:
            labels = {"input_ids": self.label_input_ids, "attention_mask": self.label_attention_mask}
            outputs.update(BatchFeature(labels, tensor_type=return_tensors))
        return outputs

    def post_process_semantic_segmentation(self, outputs, target_sizes=None, return_segmentation_scores: bool = False):
        """Per-pixel label ids `(height, width)` per image (transformers' DPT rule: bilinear resize of the logits
        to each target size, then the best label); `target_sizes` are checked, one positive (height, width) per
        image."""
        outputs = model_outputs(outputs)
        check_sizes(target_sizes, len(outputs.logits))
        # the logits have the aspect ratio of the image as read, up to the rounding of its sides to multiples of 32
        check_orientation(target_sizes, [logits.shape[-2:] for logits in outputs.logits],
                          slack=self.ensure_multiple_of or 1)
        if target_sizes is not None:
            target_sizes = [tuple(int(v) for v in size) for size in target_sizes]
        if return_segmentation_scores:
            return super().post_process_semantic_segmentation(outputs, target_sizes, return_segmentation_scores)
        # The same rule without resizing every label's logits at full size and taking a strided argmax over them
        # (most of a batched pipeline's time on small models): `seem_hf.postprocessing.resized_argmax`.
        return [
            resized_argmax(logits, target_sizes[index] if target_sizes is not None else logits.shape[-2:])
            for index, logits in enumerate(outputs.logits)
        ]


LSegImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["LSegImageProcessor"]

"""Image processor for DETR-panoptic: transformers' DETR pre-processing on the PIL backend (no torchvision),
with strict input checks, the label vocabulary, and seem_hf's vectorised post-processing."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from transformers.models.detr.image_processing_pil_detr import (
    DetrImageProcessorPil,
    convert_segmentation_to_rle,
    get_image_size_for_max_height_width,
    get_size_with_aspect_ratio,
)

from seem_hf.image_utils import CheckedImagesMixin
from seem_hf.postprocessing import (
    MASKFORMER_MASK_THRESHOLD,
    MASKFORMER_OVERLAP_THRESHOLD,
    MASKFORMER_SCORE_THRESHOLD,
    UnusedThresholdWarning,
    check_orientation,
    check_sizes,
    detr_panoptic_segmentation,
    instance_segmentation,
    model_outputs,
    panoptic_segmentation,
    semantic_segmentation,
)
from seem_hf.remote_code import RemoteCodeMixin

PANOPTIC_RULES = ("maskformer", "detr")
MASK_STRIDE = 4  # pred_masks are at the stride of the backbone's first feature map: ceil(side / 4) per side


class DetrPanopticImageProcessor(CheckedImagesMixin, RemoteCodeMixin, DetrImageProcessorPil):
    r"""
    Pre- and post-processing for [`DetrPanopticForSegmentation`].

    Pre-processing is transformers' DETR pipeline on the PIL backend: resize so that the shortest side is 800
    and the longest at most 1333, rescale to [0, 1], normalise with the ImageNet mean and std, pad the batch to
    a common size and return `pixel_values` with a `pixel_mask` (1 on real pixels). It accepts PIL images,
    numpy arrays (H, W), (H, W, C) or (C, H, W) and torch tensors (C, H, W); grayscale and RGBA are turned into
    RGB, and anything else (wrong rank, no pixels, NaN, an unknown type) raises a `ValueError` that says which.

    Args:
        id2label (`dict[int, str]`, *optional*): label names, as in the model config.
        thing_label_ids (`list[int]`, *optional*): the labels that are countable things; every other label is
            stuff, and its segments are fused by default in panoptic post-processing.
        label_colors (`dict[int, list[int]]`, *optional*): an RGB colour per label, for visualisation.
        panoptic_rule (`str`, *optional*, defaults to `"maskformer"`): the default rule of
            `post_process_panoptic_segmentation`: `"maskformer"` (transformers' rule, its results unchanged) or
            `"detr"` (the original DETR `PostProcessPanoptic`, with which the published PQ was measured).
        Other arguments: those of transformers' `DetrImageProcessorPil`.
    """

    model_input_names = ["pixel_values", "pixel_mask"]

    def __init__(
        self,
        id2label: dict | None = None,
        thing_label_ids: Iterable[int] | None = None,
        label_colors: dict | None = None,
        panoptic_rule: str = "maskformer",
        **kwargs,
    ) -> None:
        kwargs.setdefault("do_convert_rgb", True)
        super().__init__(**kwargs)
        if panoptic_rule not in PANOPTIC_RULES:
            raise ValueError(f"panoptic_rule must be one of {PANOPTIC_RULES}, got {panoptic_rule!r}.")
        self.id2label = {int(k): str(v) for k, v in id2label.items()} if id2label else None
        self.thing_label_ids = sorted(int(i) for i in thing_label_ids) if thing_label_ids is not None else None
        self.label_colors = {int(k): [int(c) for c in v] for k, v in label_colors.items()} if label_colors else None
        self.panoptic_rule = panoptic_rule

    # ---------------------------------------------------------------------------------------- label vocabulary
    @property
    def stuff_label_ids(self) -> list[int] | None:
        """Labels that are stuff (all labels of `id2label` not in `thing_label_ids`), or None when unknown."""
        if self.id2label is None or self.thing_label_ids is None:
            return None
        things = set(self.thing_label_ids)
        return [label for label in sorted(self.id2label) if label not in things]

    def processed_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) to which this processor resizes an image of `height` x `width` (before padding)."""
        size = self.size
        if not self.do_resize or height <= 0 or width <= 0:  # sizes are checked, with a clear error, later
            return (int(height), int(width))
        if size.shortest_edge and size.longest_edge:
            return tuple(get_size_with_aspect_ratio((height, width), size.shortest_edge, size.longest_edge))
        if size.max_height and size.max_width:
            return tuple(get_image_size_for_max_height_width((height, width), size.max_height, size.max_width))
        return (size.height, size.width)

    # --------------------------------------------------------------------------------------- post-processing
    def post_process_semantic_segmentation(
        self, outputs, target_sizes: list[tuple[int, int]] | None = None, return_segmentation_scores: bool = False
    ):
        """Per-pixel label ids, one (height, width) tensor per image; see `seem_hf.postprocessing`.
        Same signature and results as transformers' DETR processor."""
        return self._each_image(model_outputs(outputs), target_sizes, semantic_segmentation,
                                return_segmentation_scores=return_segmentation_scores)

    def post_process_instance_segmentation(
        self,
        outputs,
        threshold: float | None = MASKFORMER_SCORE_THRESHOLD,
        mask_threshold: float | None = MASKFORMER_MASK_THRESHOLD,
        overlap_mask_area_threshold: float | None = MASKFORMER_OVERLAP_THRESHOLD,
        target_sizes: list[tuple[int, int]] | None = None,
        return_coco_annotation: bool = False,
    ) -> list[dict]:
        """Instance segments per image (`segmentation` ids and `segments_info`), transformers' format and
        results; with `return_coco_annotation`, the segmentation is run-length encoded. A threshold given as None
        is the default."""
        results = self._each_image(
            model_outputs(outputs), target_sizes, instance_segmentation, threshold=threshold,
            mask_threshold=mask_threshold, overlap_mask_area_threshold=overlap_mask_area_threshold,
        )
        if return_coco_annotation:
            for result in results:
                result["segmentation"] = convert_segmentation_to_rle(result["segmentation"])
        return results

    def post_process_panoptic_segmentation(
        self,
        outputs,
        threshold: float | None = None,
        mask_threshold: float | None = None,
        overlap_mask_area_threshold: float | None = None,
        label_ids_to_fuse: Iterable[int] | None = None,
        target_sizes: list[tuple[int, int]] | None = None,
        rule: str | None = None,
        processed_sizes: list[tuple[int, int]] | None = None,
    ) -> list[dict]:
        """Panoptic segments per image, in transformers' format.

        `rule` (default: the processor's `panoptic_rule`) picks the algorithm: `"maskformer"` is transformers'
        (score `threshold` default 0.5, `mask_threshold` 0.5, `overlap_mask_area_threshold` 0.8), `"detr"` the
        original DETR `PostProcessPanoptic` (score `threshold` default 0.85, segments of at most 4 pixels dropped; it
        has no mask or overlap threshold, and one given is named in an `UnusedThresholdWarning`; see
        `seem_hf.postprocessing.detr_panoptic_segmentation`).
        `label_ids_to_fuse` defaults to the stuff labels of the vocabulary when it is known.

        The DETR rule takes the per-pixel argmax at `processed_sizes`, the size of each image as the model saw it
        (this processor's resize, before padding), then resizes the segment map to `target_sizes` with nearest
        neighbour, as the original. When `processed_sizes` is not given and `target_sizes` are, the target sizes
        are taken to be the original image sizes and `processed_sizes` the sizes this processor resizes them to
        (the original's evaluation); with neither, both are the mask size.
        """
        outputs = model_outputs(outputs)
        rule = rule or self.panoptic_rule
        if rule not in PANOPTIC_RULES:
            raise ValueError(f"rule must be one of {PANOPTIC_RULES}, got {rule!r}.")
        if label_ids_to_fuse is None:
            label_ids_to_fuse = self.stuff_label_ids or ()
        if rule == "detr":
            if unused := [name for name, value in (("mask_threshold", mask_threshold),
                                                   ("overlap_mask_area_threshold", overlap_mask_area_threshold))
                          if value is not None]:
                warnings.warn(
                    f"{' and '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used: DETR's own panoptic rule "
                    "(rule='detr', the processor's panoptic_rule) has no mask or overlap threshold. Pass "
                    "rule='maskformer' for transformers' rule, which reads them.",
                    UnusedThresholdWarning,
                    stacklevel=2,
                )
            if processed_sizes is None and target_sizes is not None:
                check_sizes(target_sizes, len(outputs.logits))
                processed_sizes = [self.processed_size(*(int(v) for v in size)) for size in target_sizes]
            return self._each_image(
                outputs,
                target_sizes,
                detr_panoptic_segmentation,
                threshold=threshold,
                label_ids_to_fuse=label_ids_to_fuse,
                processed_sizes=processed_sizes,
            )
        return self._each_image(
            outputs,
            target_sizes,
            panoptic_segmentation,
            threshold=threshold,
            mask_threshold=mask_threshold,
            overlap_mask_area_threshold=overlap_mask_area_threshold,
            label_ids_to_fuse=label_ids_to_fuse,
        )

    @staticmethod
    def _each_image(outputs, target_sizes, function, processed_sizes=None, **kwargs) -> list:
        """`function(logits, pred_masks, target_sizes=..., **kwargs)` with each image's `pred_masks` cropped to the
        image's own extent in the padded batch (`outputs.image_sizes`, reported by the model from `pixel_mask`), so
        that an image gets the same segments in a batch of larger images as alone. `target_sizes` are checked
        against the sizes the model read (a transposed size is refused, see `check_orientation`)."""
        logits, masks = outputs.logits, outputs.pred_masks
        check_sizes(target_sizes, len(logits))
        image_sizes = getattr(outputs, "image_sizes", None)
        check_orientation(target_sizes, image_sizes)
        crops = None if image_sizes is None or masks is None else [
            (min(-(-int(height) // MASK_STRIDE), masks.shape[-2]), min(-(-int(width) // MASK_STRIDE), masks.shape[-1]))
            for height, width in image_sizes
        ]
        if crops is None or all(crop == tuple(masks.shape[-2:]) for crop in crops):
            extra = {} if processed_sizes is None else {"processed_sizes": processed_sizes}
            return function(logits, masks, target_sizes=target_sizes, **kwargs, **extra)
        results = []
        for index, (rows, columns) in enumerate(crops):
            extra = {} if processed_sizes is None else {"processed_sizes": [processed_sizes[index]]}
            results += function(
                logits[index : index + 1], masks[index : index + 1, :, :rows, :columns],
                target_sizes=None if target_sizes is None else [target_sizes[index]], **kwargs, **extra,
            )
        return results


DetrPanopticImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["DetrPanopticImageProcessor"]

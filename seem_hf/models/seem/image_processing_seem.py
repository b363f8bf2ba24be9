"""Image processor for SEEM: detectron2's test-time resize on transformers' DETR PIL backend, padding to a multiple
of 32, and SEEM's post-processing."""

from __future__ import annotations

import weakref

import numpy as np
import torch
from torch.nn import functional as F
from transformers import BatchFeature
from transformers.image_processing_outputs import SemanticSegmentationPostProcessorOutput
from transformers.models.detr.image_processing_pil_detr import DetrImageProcessorPil, convert_segmentation_to_rle

from seem_hf.image_utils import CheckedImagesMixin
from seem_hf.postprocessing import (
    check_label_ids,
    check_orientation,
    check_outputs,
    check_sizes,
    check_threshold,
    check_top_k,
    crop_and_resize_masks,
    keep_confident_queries,
    model_outputs,
    panoptic_segments_at_full_size,
    semantic_segmentation_at_full_size,
)
from seem_hf.processing_utils import CONTEXT_LENGTH
from seem_hf.remote_code import RemoteCodeMixin

SEEM_SCORE_THRESHOLD = 0.8  # MODEL.DECODER.TEST.OBJECT_MASK_THRESHOLD
SEEM_OVERLAP_THRESHOLD = 0.8  # MODEL.DECODER.TEST.OVERLAP_THRESHOLD
SEEM_MASK_THRESHOLD = 0.5  # a mask is its pixels of probability above one half
SIZE_DIVISIBILITY = 32
# the default label set's tokens as a tensor, built once per processor (10,854 prompts for COCO's labels)
_LABEL_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class SeemImageProcessor(CheckedImagesMixin, RemoteCodeMixin, DetrImageProcessorPil):
    r"""
    Pre- and post-processing for [`SeemForUniversalSegmentation`].

    Pre-processing: shortest side 800, longest at most 1333 (SEEM's COCO test resize), ImageNet mean and std
    (SEEM's 0-255 values divided by 255), and zero padding at the bottom and right to a common size that is a
    multiple of 32; `pixel_mask` marks the real pixels. Inputs are checked as every seem_hf processor checks them.

    Post-processing follows SEEM: mask logits are upsampled to the padded input, cropped to the image, resized
    bicubically (antialiased) to the target size; panoptic segments use the Mask2Former rule with SEEM's
    thresholds (class score 0.8, mask overlap 0.8), stuff labels fused; semantic maps are
    `argmax_c sum_q softmax(class_q)[c] * sigmoid(mask_q)` over the real labels.

    The processor can carry its default label set tokenised (`label_input_ids`, filled by `SeemProcessor` when it
    is saved), so that a plain `image_processor(images)` gives the model everything it needs: transformers' own
    image-segmentation pipeline, where seem_hf is not installed, calls nothing else. They are returned as
    `input_ids` `(num_labels + 1, templates, 77)` with the pixels.

    Args:
        id2label (`dict[int, str]`, *optional*): the default label set (class names), used when no text is given.
        thing_label_ids (`list[int]`, *optional*): labels that are countable things; the others are stuff.
        label_input_ids (`list[list[list[int]]]`, *optional*): the default label set's prompt tokens, per label
            ("background" last) and template, without their trailing padding (see `set_default_label_ids`).
        label_pad_token_id (`int`, *optional*): the token that pads `label_input_ids` back to 77.
        Other arguments: those of transformers' `DetrImageProcessorPil`.
    """

    model_input_names = ["pixel_values", "pixel_mask"]

    def __init__(
        self,
        id2label: dict | None = None,
        thing_label_ids: list[int] | None = None,
        label_input_ids: list | None = None,
        label_pad_token_id: int | None = None,
        **kwargs,
    ):
        kwargs.setdefault("do_convert_rgb", True)
        super().__init__(**kwargs)
        self.id2label = {int(k): str(v) for k, v in id2label.items()} if id2label else None
        self.thing_label_ids = sorted(int(i) for i in thing_label_ids) if thing_label_ids is not None else None
        self.label_input_ids = label_input_ids
        self.label_pad_token_id = label_pad_token_id
        if label_input_ids is not None and (
            self.id2label is None or len(label_input_ids) != len(self.id2label) + 1 or label_pad_token_id is None
        ):
            raise ValueError(
                "label_input_ids needs an id2label with one name per tokenised label (plus the background row) and "
                "a label_pad_token_id."
            )

    def set_default_label_ids(self, input_ids: torch.Tensor, pad_token_id: int) -> None:
        """Store the default label set's tokens `(num_labels + 1, templates, 77)` (from
        `SeemProcessor.tokenize_labels`), each prompt without its trailing padding, to be saved with the processor."""
        if self.id2label is None or len(input_ids) != len(self.id2label) + 1:
            raise ValueError("set_default_label_ids needs the tokens of id2label's labels plus the background row.")
        rows = []
        for label in input_ids.tolist():
            prompts = []
            for prompt in label:
                end = len(prompt)
                while end > 0 and prompt[end - 1] == pad_token_id:
                    end -= 1
                prompts.append(prompt[:end])
            rows.append(prompts)
        self.label_input_ids, self.label_pad_token_id = rows, int(pad_token_id)

    def default_label_ids(self) -> torch.Tensor | None:
        """The stored default label set's tokens `(num_labels + 1, templates, 77)`, or None."""
        if self.label_input_ids is None:
            return None
        cached = _LABEL_IDS.get(self)
        if cached is not None and cached[0] is self.label_input_ids and cached[1] == self.label_pad_token_id:
            return cached[2]
        templates = max(len(label) for label in self.label_input_ids)
        ids = np.full((len(self.label_input_ids), templates, CONTEXT_LENGTH), self.label_pad_token_id, dtype=np.int64)
        for label, prompts in enumerate(self.label_input_ids):
            for template, prompt in enumerate(prompts):
                ids[label, template, : len(prompt)] = prompt[:CONTEXT_LENGTH]
        _LABEL_IDS[self] = (self.label_input_ids, self.label_pad_token_id, torch.from_numpy(ids))
        return _LABEL_IDS[self][2]

    def preprocess(self, images, *args, **kwargs) -> BatchFeature:
        outputs = super().preprocess(images, *args, **kwargs)
        labels = self.default_label_ids()
        if labels is not None:
            tensors = kwargs.get("return_tensors")
            outputs["input_ids"] = labels if tensors == "pt" else labels.numpy() if tensors == "np" else labels.tolist()
        pixel_values, pixel_mask = outputs["pixel_values"], outputs["pixel_mask"]
        tensors = isinstance(pixel_values, torch.Tensor)
        values = pixel_values if tensors else torch.as_tensor(pixel_values)
        mask = pixel_mask if tensors else torch.as_tensor(pixel_mask)
        height, width = values.shape[-2:]
        bottom, right = -height % SIZE_DIVISIBILITY, -width % SIZE_DIVISIBILITY
        if bottom or right:
            values, mask = F.pad(values, (0, right, 0, bottom)), F.pad(mask, (0, right, 0, bottom))
        outputs["pixel_values"] = values if tensors else values.numpy()
        outputs["pixel_mask"] = mask if tensors else mask.numpy()
        return outputs

    # -------------------------------------------------------------------------------------------- post-processing
    def _resized_masks(self, outputs, index: int, target_size, mask_logits=None, mode="bicubic") -> torch.Tensor:
        mask_logits = outputs.masks_queries_logits[index] if mask_logits is None else mask_logits
        padded = tuple(4 * size for size in mask_logits.shape[-2:])
        image_sizes = getattr(outputs, "image_sizes", None)
        image_size = tuple(image_sizes[index]) if image_sizes is not None else padded
        target_size = tuple(int(v) for v in (target_size if target_size is not None else image_size))
        if image_sizes is not None:
            check_orientation([target_size], [image_size], first_index=index)
        return crop_and_resize_masks(mask_logits, padded, image_size, target_size, mode)

    def post_process_referring_segmentation(
        self, outputs, target_sizes=None, top_k: int = 1, mask_threshold: float | None = None
    ) -> list[list[dict]]:
        """Per image, per real sentence: `masks` `(matches, height, width)` bool, `scores` `(matches,)` and
        `query_indices`. The grounding queries are ranked by their similarity with the sentence (SEEM answers with
        the best one, `top_k=1`; a larger `top_k` returns the next-best queries too, e.g. every car for "cars");
        `scores` are the softmax over queries. A query whose mask has no pixel above `mask_threshold` (default
        0.5) is not a match: `matches` is at most `top_k`, and 0 when even the best query's mask is empty."""
        outputs = model_outputs(outputs)
        if getattr(outputs, "grounding_logits", None) is None:
            raise ValueError("These outputs have no referring results: call the model with grounding_input_ids.")
        top_k = check_top_k(top_k)
        mask_threshold = check_threshold("mask_threshold", mask_threshold, default=SEEM_MASK_THRESHOLD)
        check_sizes(target_sizes, len(outputs.grounding_logits))
        results = []
        for index, (logits, real) in enumerate(zip(outputs.grounding_logits, outputs.grounding_sentence_mask)):
            target = target_sizes[index] if target_sizes is not None else None
            image_results = []
            for sentence in torch.nonzero(real).flatten().tolist():
                probabilities = logits[:, sentence].softmax(0)
                scores, queries = probabilities.topk(min(top_k, len(probabilities)))
                masks = self._resized_masks(outputs, index, target, outputs.grounding_masks_logits[index, queries])
                masks = masks.sigmoid() > mask_threshold
                found = masks.flatten(1).any(1)
                image_results.append({"sentence_index": sentence, "masks": masks[found], "scores": scores[found],
                                      "query_indices": queries[found]})
            results.append(image_results)
        return results

    def post_process_interactive_segmentation(
        self, outputs, target_sizes=None, mask_threshold: float | None = None
    ) -> list[dict]:
        """Per image: `masks` `(num_prompts, height, width)` bool, one per visual prompt given for that image
        (bilinear resize, then sigmoid > `mask_threshold`, default 0.5, as SEEM), and, when the model was given a
        label set, each mask's `labels` and `scores` (its query's class probability, background excluded).

        In a batch whose images have different numbers of prompts, the prompt slots an image does not use (empty
        prompt masks: the outputs' `spatial_prompt_mask` is False there) are left out, so each image gets exactly
        its own prompts' answers, in the order given."""
        outputs = model_outputs(outputs)
        if getattr(outputs, "interactive_masks_logits", None) is None:
            raise ValueError("These outputs have no interactive results: call the model with spatial prompts.")
        mask_threshold = check_threshold("mask_threshold", mask_threshold, default=SEEM_MASK_THRESHOLD)
        check_sizes(target_sizes, len(outputs.interactive_masks_logits))
        prompt_mask = getattr(outputs, "spatial_prompt_mask", None)
        results = []
        for index, mask_logits in enumerate(outputs.interactive_masks_logits):
            target = target_sizes[index] if target_sizes is not None else None
            given = torch.ones(len(mask_logits), dtype=torch.bool, device=mask_logits.device)
            if prompt_mask is not None:
                given = prompt_mask[index].to(mask_logits.device)
            masks = self._resized_masks(outputs, index, target, mask_logits[given], mode="bilinear")
            result = {"masks": masks.sigmoid() > mask_threshold}
            class_logits = getattr(outputs, "interactive_class_logits", None)
            if class_logits is not None:
                result["scores"], result["labels"] = class_logits[index][given].softmax(-1)[:, :-1].max(-1)
            results.append(result)
        return results

    @staticmethod
    def _class_logits(outputs) -> torch.Tensor:
        """The outputs' class scores per query, or an error saying how to get them."""
        class_logits = getattr(outputs, "class_queries_logits", None)
        if class_logits is None:
            raise ValueError(
                "These outputs have no class scores, so they have no panoptic, instance or semantic result: the "
                "model was called without a label set. Give one: processor(images=..., text=[\"label\", ...]) "
                "(or input_ids / class_embeddings to the model)."
            )
        return class_logits

    @staticmethod
    def _thresholds(threshold, mask_threshold, overlap_mask_area_threshold) -> tuple[float, float, float]:
        """The panoptic and instance rules' thresholds, checked; one given as None is SEEM's value."""
        return (
            check_threshold("threshold", threshold, default=SEEM_SCORE_THRESHOLD),
            check_threshold("mask_threshold", mask_threshold, default=SEEM_MASK_THRESHOLD),
            check_threshold("overlap_mask_area_threshold", overlap_mask_area_threshold, default=SEEM_OVERLAP_THRESHOLD),
        )

    def post_process_semantic_segmentation(
        self, outputs, target_sizes=None, return_segmentation_scores: bool = False
    ) -> list[torch.Tensor] | list[SemanticSegmentationPostProcessorOutput]:
        """Per-pixel label ids `(height, width)` per image. With `return_segmentation_scores=True` (transformers'
        Mask2Former and DETR argument), each image's result is a `SemanticSegmentationPostProcessorOutput` with the
        `segmentation` and its `segmentation_scores`, `(num_labels, height, width)`: label c's score at a pixel is
        `sum_q p(c | q) sigmoid(m_q)`, the score the label ids are the argmax of."""
        outputs = model_outputs(outputs)
        all_class_logits = self._class_logits(outputs)
        check_sizes(target_sizes, len(all_class_logits))
        results = []
        for index, class_logits in enumerate(all_class_logits):
            masks = self._resized_masks(outputs, index, target_sizes[index] if target_sizes is not None else None)
            if return_segmentation_scores:
                probabilities = class_logits.softmax(-1)[:, :-1].to(masks.dtype)
                scores = torch.einsum("qc,qhw->chw", probabilities, masks.sigmoid_())
                results.append(SemanticSegmentationPostProcessorOutput(
                    data={"segmentation": scores.argmax(0), "segmentation_scores": scores}))
                continue
            # sum_q p(c | q) sigmoid(m_q(x)) over the labels that can win somewhere, as a (pixels, Q) x (Q, C)
            # product, so that the argmax over labels runs along contiguous memory
            results.append(semantic_segmentation_at_full_size(masks, class_logits.softmax(-1)[:, :-1]))
        return results

    def post_process_panoptic_segmentation(
        self,
        outputs,
        threshold: float | None = None,
        mask_threshold: float | None = None,
        overlap_mask_area_threshold: float | None = None,
        label_ids_to_fuse=None,
        target_sizes=None,
    ) -> list[dict]:
        """Panoptic segments per image in transformers' format (`segmentation` ids, -1 where nothing is kept,
        and `segments_info`), by the Mask2Former rule with SEEM's thresholds: class score `threshold` 0.8,
        `mask_threshold` 0.5, `overlap_mask_area_threshold` 0.8 (the defaults, also for one given as None). For the
        default label set, stuff labels (not in `thing_label_ids`) are fused unless `label_ids_to_fuse` says
        otherwise; for another label set, only the labels in `label_ids_to_fuse`."""
        threshold, mask_threshold, overlap_mask_area_threshold = self._thresholds(
            threshold, mask_threshold, overlap_mask_area_threshold)
        outputs = model_outputs(outputs)
        all_class_logits = self._class_logits(outputs)
        check_sizes(target_sizes, len(all_class_logits))
        num_labels = all_class_logits.shape[-1] - 1
        # The thing/stuff split describes the default label set; another set's labels are not fused unless asked.
        if label_ids_to_fuse is None and self.thing_label_ids is not None and len(self.id2label or ()) == num_labels:
            label_ids_to_fuse = [label for label in range(num_labels) if label not in self.thing_label_ids]
        label_ids_to_fuse = check_label_ids(label_ids_to_fuse, num_labels)
        results = []
        for index, class_logits in enumerate(all_class_logits):
            check_outputs(class_logits[None], outputs.masks_queries_logits[index, None], None)
            # Only queries that pass the score rule can become segments, and each mask is resized on its own, so
            # resizing just those and running the rule on them at full size gives the same segments.
            scores, labels, keep = keep_confident_queries(class_logits, threshold)
            kept = torch.nonzero(keep).flatten()
            masks = self._resized_masks(outputs, index, target_sizes[index] if target_sizes is not None else None,
                                        outputs.masks_queries_logits[index, kept])
            results.append(panoptic_segments_at_full_size(
                scores[kept], labels[kept], masks, mask_threshold, overlap_mask_area_threshold, label_ids_to_fuse))
        return results

    def post_process_instance_segmentation(
        self,
        outputs,
        threshold: float | None = None,
        mask_threshold: float | None = None,
        overlap_mask_area_threshold: float | None = None,
        target_sizes=None,
        return_coco_annotation: bool = False,
        return_binary_maps: bool = False,
        top_k: int = 100,
    ) -> list[dict]:
        """Instance segments per image; thresholds not given (or None) are the panoptic rule's (score 0.8, mask
        0.5, overlap 0.8).

        By default the panoptic rule with no label fused (transformers' format, one id per pixel, as the pipeline
        needs); with `return_coco_annotation=True`, that `segmentation` run-length encoded as transformers'
        Mask2Former does it (one RLE per id of the map, in increasing order, -1 for pixels of no segment first
        when there are any). With `return_binary_maps=True`, SEEM's own rule for mask AP: the `top_k` best
        (query, label) pairs by class probability (thing labels only, for the default label set when its things are
        known), each mask its logits > 0, each score the class probability times the mean mask probability inside
        the mask; `segmentation` is then `(num_instances, height, width)` bool (masks may overlap), ordered by
        score, and pairs scoring at most `threshold` are left out (pass 0 to keep all, as for AP)."""
        if return_coco_annotation and return_binary_maps:
            raise ValueError("return_coco_annotation and return_binary_maps cannot both be True: the first encodes "
                             "the one-id-per-pixel map, the second gives SEEM's overlapping masks; pick one.")
        if not return_binary_maps:
            results = self.post_process_panoptic_segmentation(
                outputs, threshold, mask_threshold, overlap_mask_area_threshold, label_ids_to_fuse=(),
                target_sizes=target_sizes,
            )
            if return_coco_annotation:
                for result in results:
                    result["segmentation"] = convert_segmentation_to_rle(result["segmentation"])
            return results
        top_k = check_top_k(top_k)
        outputs = model_outputs(outputs)
        threshold = self._thresholds(threshold, mask_threshold, overlap_mask_area_threshold)[0]
        all_class_logits = self._class_logits(outputs)
        check_sizes(target_sizes, len(all_class_logits))
        num_labels = all_class_logits.shape[-1] - 1
        things = None
        if self.thing_label_ids is not None and len(self.id2label or ()) == num_labels:
            things = torch.tensor(self.thing_label_ids, dtype=torch.long)
        results = []
        for index, class_logits in enumerate(all_class_logits):
            probabilities = class_logits.softmax(-1)[:, :-1]
            scores, flat = probabilities.flatten().topk(min(top_k, probabilities.numel()))
            labels, queries = flat % num_labels, flat // num_labels
            keep = scores > threshold  # a mask's score is at most 1, so a pair at or below it cannot pass
            if things is not None:
                keep &= torch.isin(labels, things.to(labels.device))
            scores, labels, queries = scores[keep], labels[keep], queries[keep]
            # A query can rank with several labels: its mask is resized and scored once.
            unique, pair_mask = torch.unique(queries, return_inverse=True)
            masks = self._resized_masks(outputs, index, target_sizes[index] if target_sizes is not None else None,
                                        outputs.masks_queries_logits[index, unique])
            binary = masks > 0
            inside = binary.flatten(1).sum(1, dtype=torch.int32)
            mask_scores = masks.sigmoid_().mul_(binary).flatten(1).sum(1) / (inside + 1e-6)
            scores = scores * mask_scores[pair_mask]
            order = scores.argsort(descending=True)
            order = order[scores[order] > threshold]
            results.append({
                "segmentation": binary[pair_mask[order]],
                "segments_info": [
                    {"id": rank, "label_id": int(labels[i]), "was_fused": False, "score": float(scores[i])}
                    for rank, i in enumerate(order.tolist())
                ],
            })
        return results


SeemImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["SEEM_MASK_THRESHOLD", "SEEM_OVERLAP_THRESHOLD", "SEEM_SCORE_THRESHOLD", "SeemImageProcessor"]

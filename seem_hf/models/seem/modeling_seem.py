"""SEEM (Segment Everything Everywhere All at Once, v1) as a transformers model: the generic path.

pixels -> FocalNet (`SeemFocalNetBackbone`) -> transformer-encoder FPN (`SeemPixelDecoder`) -> masked-attention
decoder (`SeemDecoder`) -> per query a mask and a class embedding, scored against the text embeddings of the
label set given at call time (`SeemLanguageEncoder`), "background" last as the no-object class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from transformers.models.auto.modeling_auto import (
    MODEL_FOR_IMAGE_SEGMENTATION_MAPPING_NAMES,
    MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES,
)

from seem_hf.loss.matcher import HungarianMatcher
from seem_hf.loss.set_criterion import SetCriterion
from seem_hf.remote_code import RemoteCodeMixin

from .configuration_seem import SeemConfig
from .modeling_seem_decoder import SeemDecoder
from .modeling_seem_encoders import SeemFocalNetBackbone, SeemLanguageEncoder, SeemPixelDecoder

# Lets `pipeline("image-segmentation")` accept the model without logging "not supported" (it checks these tables).
MODEL_FOR_IMAGE_SEGMENTATION_MAPPING_NAMES.setdefault("seem", "SeemForUniversalSegmentation")
MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES.setdefault("seem", "SeemForUniversalSegmentation")


@dataclass
class SeemUniversalSegmentationOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor`, *optional*): the weighted set loss of every round, when labels are given.
    loss_dict (`dict`, *optional*): its terms (`loss_ce`, `loss_mask`, `loss_dice`, suffixed `_i` for round i).
    class_queries_logits (`torch.FloatTensor` of shape `(batch_size, num_queries, num_labels + 1)`): scaled
        cosine similarity of each query with each label and with "background" (last).
    masks_queries_logits (`torch.FloatTensor` of shape `(batch_size, num_queries, height / 4, width / 4)`).
    auxiliary_logits (`list[dict]`): the same two outputs for every earlier decoder round.
    class_embeddings (`torch.FloatTensor` of shape `(num_labels + 1, dim_proj)`): the normalised label
        embeddings used, to pass back as `class_embeddings`.
    image_sizes (`list[tuple[int, int]]`, *optional*): each image's size inside the padded batch, from
        `pixel_mask`, for post-processing.
    """

    loss: torch.FloatTensor | None = None
    loss_dict: dict | None = None
    class_queries_logits: torch.FloatTensor | None = None
    masks_queries_logits: torch.FloatTensor | None = None
    auxiliary_logits: list | None = None
    class_embeddings: torch.FloatTensor | None = None
    image_sizes: list | None = None


class SeemPreTrainedModel(PreTrainedModel):
    config_class = SeemConfig
    config: SeemConfig
    base_model_prefix = "seem"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")


class SeemForUniversalSegmentation(RemoteCodeMixin, SeemPreTrainedModel):
    """SEEM for generic (semantic, instance, panoptic) segmentation over a label set chosen at call time.

    `forward(pixel_values, input_ids)` with one tokenised prompt per label plus "background" last
    (`(num_labels + 1, length)`), or their `class_embeddings`, returns Mask2Former-style outputs. With
    `mask_labels` and `class_labels` (per image: binary masks `(N, H, W)` and label indices `(N,)`) it also
    returns the set loss: Hungarian matching on class, point-sampled BCE and dice costs, and those losses on every
    decoder round (SEEM's weights 2, 5, 5; background weight 0.1).
    """

    _extra_auto_classes = ("AutoModel", "AutoModelForImageSegmentation")
    # SEEM's fine-tuning recipe for `seem_hf.adapters`: bottlenecks after every cross-attention, self-attention
    # and FFN sub-layer of the decoder and one beside the mask-embedding MLP, the decoder's LayerNorms trainable;
    # the language encoder never trains.
    _adapter_targets = {
        "backbone": r"backbone",
        "frozen": r"language_encoder",
        "bottleneck": r"decoder\.transformer_(cross_attention|self_attention|ffn)_layers\.\d+",
        "parallel_bottleneck": r"decoder\.mask_embed",
    }

    def __init__(self, config: SeemConfig):
        super().__init__(config)
        self.backbone = SeemFocalNetBackbone(config)
        self.pixel_decoder = SeemPixelDecoder(config)
        self.decoder = SeemDecoder(config)
        self.language_encoder = SeemLanguageEncoder(config)
        self.post_init()

    def get_text_features(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Normalised label embeddings `(num_labels, dim_proj)`.

        `input_ids` is `(num_labels, length)`, one prompt per label, or `(num_labels, num_prompts, length)`,
        several prompts per label (SEEM's 81 templates at evaluation): each prompt's embedding is normalised,
        the label's are averaged, and the mean is normalised again.
        """
        if input_ids.ndim not in (2, 3) or input_ids.shape[0] == 0:
            raise ValueError(
                "input_ids must be (num_labels, length) or (num_labels, num_prompts, length) with at least one label, "
                f"got {tuple(input_ids.shape)}."
            )
        if input_ids.ndim == 2:
            return self.language_encoder.encode_text(input_ids)
        prompts = self.language_encoder.encode_text(input_ids.flatten(0, 1)).view(*input_ids.shape[:2], -1)
        return nn.functional.normalize(prompts.mean(1), dim=-1)

    def get_image_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The stride-4 mask features and the decoder's three levels, computed once per image (interactive rounds
        reuse them)."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"pixel_values must be (batch, 3, height, width), got {tuple(pixel_values.shape)}.")
        return self.pixel_decoder(self.backbone(pixel_values))

    def class_logits(self, class_embeddings: torch.Tensor, label_embeddings: torch.Tensor) -> torch.Tensor:
        """exp(logit_scale) x cosine similarity (SEEM does not clamp the scale here)."""
        scale = self.language_encoder.logit_scale.exp()
        return scale * nn.functional.normalize(class_embeddings, dim=-1) @ label_embeddings.t()

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        class_embeddings: torch.Tensor | None = None,
        pixel_mask: torch.Tensor | None = None,
        mask_labels: list[torch.Tensor] | None = None,
        class_labels: list[torch.Tensor] | None = None,
        labels: list[dict] | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SeemUniversalSegmentationOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`): normalised images.
        input_ids (`torch.LongTensor` of shape `(num_labels + 1, length)` or `(num_labels + 1, num_prompts, length)`):
            the label set's prompts, "background" last (see `get_text_features`).
        class_embeddings (`torch.FloatTensor` of shape `(num_labels + 1, dim_proj)`): instead of `input_ids`.
        pixel_mask (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*): 1 on real pixels; SEEM
            does not mask its attention with it (as the original), post-processing crops the padding with it.
        mask_labels, class_labels (`list[torch.Tensor]`, *optional*): targets per image, for the loss.
        labels (`list[dict]`, *optional*): the same targets as DETR-style dicts (`masks`, `class_labels`), as the
            package's collators and `SegmentationTrainer` give them.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if (input_ids is None) == (class_embeddings is None):
            raise ValueError("Give the label set either as input_ids (tokenised prompts) or as class_embeddings.")
        if (mask_labels is None) != (class_labels is None):
            raise ValueError("mask_labels and class_labels go together.")
        if labels is not None:
            if mask_labels is not None:
                raise ValueError("Give the targets either as labels or as mask_labels and class_labels.")
            mask_labels = [target["masks"] for target in labels]
            class_labels = [target["class_labels"] for target in labels]
        label_embeddings = self.get_text_features(input_ids) if class_embeddings is None else class_embeddings
        mask_features, multi_scale = self.get_image_features(pixel_values)
        rounds = self.decoder(multi_scale, mask_features)
        outputs = [
            {"class_logits": self.class_logits(r["class_embeddings"], label_embeddings), "mask_logits": r["mask_logits"]}
            for r in rounds
        ]
        loss = loss_dict = None
        if mask_labels is not None:
            targets = [
                {"masks": masks.to(pixel_values.dtype), "class_labels": labels.long()}
                for masks, labels in zip(mask_labels, class_labels)
            ]
            loss, loss_dict = self.criterion(
                outputs[-1]["class_logits"], targets, mask_logits=outputs[-1]["mask_logits"],
                auxiliary_outputs=outputs[:-1],
            )
        output = SeemUniversalSegmentationOutput(
            loss=loss,
            loss_dict=loss_dict,
            class_queries_logits=outputs[-1]["class_logits"],
            masks_queries_logits=outputs[-1]["mask_logits"],
            auxiliary_logits=[
                {"class_queries_logits": o["class_logits"], "masks_queries_logits": o["mask_logits"]}
                for o in outputs[:-1]
            ],
            class_embeddings=label_embeddings,
            image_sizes=None if pixel_mask is None else [
                (int(valid.any(1).sum()), int(valid.any(0).sum())) for valid in pixel_mask.bool()
            ],
        )
        return output if return_dict else output.to_tuple()

    @property
    def criterion(self) -> SetCriterion:
        """SEEM's generic set loss on the package's shared matcher and criterion."""
        config = self.config
        return SetCriterion(
            num_labels=None,
            matcher=HungarianMatcher(
                class_cost=config.class_weight, mask_cost=config.mask_weight, dice_cost=config.dice_weight,
                num_points=config.train_num_points,
            ),
            weights={"loss_ce": config.class_weight, "loss_mask": config.mask_weight, "loss_dice": config.dice_weight},
            eos_coefficient=config.no_object_weight,
            mask_loss="points",
            num_points=config.train_num_points,
            oversample_ratio=config.oversample_ratio,
            importance_sample_ratio=config.importance_sample_ratio,
        )


SeemForUniversalSegmentation.register_for_auto_class("AutoModelForUniversalSegmentation")

__all__ = ["SeemForUniversalSegmentation", "SeemPreTrainedModel", "SeemUniversalSegmentationOutput"]

"""DETR-panoptic: DETR with the attention-map mask head, as a transformers model.

Reused from transformers (numerically identical by construction, so no copy can drift): the convolutional
backbone wrapper with frozen batch norm, the DETR encoder-decoder (`DetrForObjectDetection`), the
multi-head attention map (`DetrMHAttentionMap`), the FPN mask head (`DetrMaskHeadSmallConv`), the weight
initialisation and the set-prediction loss (`ForSegmentation`: Hungarian matcher, focal + dice mask losses,
L1 + GIoU box losses). What this file adds is the panoptic model as its own model type, loading of the three
checkpoint layouts in circulation, and the forward that ties the parts together, with the option of running the
mask head (most of the model's cost) only on queries confident enough to survive post-processing.

Checkpoint layouts that load with `from_pretrained`:
- folders written by transformers' `DetrForSegmentation` (`model_type` "detr", legacy key names such as
  `mask_head.lay1` and `bbox_attention.q_linear`: renamed on load, exactly as transformers does for "detr");
- the same with a timm ResNet backbone (the public `detr-resnet-50-panoptic` layout): the timm names are
  mapped onto the native `ResNetBackbone`, so timm is not needed;
- folders written by this class.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

import torch
from safetensors import safe_open
from transformers import DetrForObjectDetection
from transformers.conversion_mapping import (
    get_checkpoint_conversion_mapping,
    register_checkpoint_conversion_mapping,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_SEGMENTATION_MAPPING_NAMES
from transformers.models.detr.modeling_detr import (
    DetrMaskHeadSmallConv,
    DetrMHAttentionMap,
    DetrPreTrainedModel,
    DetrSegmentationOutput,
)

from seem_hf.loss.matcher import HungarianMatcher
from seem_hf.loss.set_criterion import SetCriterion
from seem_hf.postprocessing import keep_confident_queries
from seem_hf.remote_code import RemoteCodeMixin

from .configuration_detr_panoptic import DetrPanopticConfig

_MODEL_TYPE = "detr_panoptic"
_CLASS_NAME = "DetrPanopticForSegmentation"
# Mask logit of a query the mask head skipped: sigmoid gives exactly 0 in float32.
SKIPPED_MASK_LOGIT = -1e4
MASK_HEAD_CHUNK = 8  # queries per mask-head pass at inference (peak memory ~ chunk x C x H/4 x W/4)

# transformers renames the legacy mask-head keys only for its own classes; a saved `DetrForSegmentation`
# folder would otherwise load into this class with its mask head silently left random.
if get_checkpoint_conversion_mapping(_CLASS_NAME) is None:
    register_checkpoint_conversion_mapping(_CLASS_NAME, get_checkpoint_conversion_mapping("DetrForSegmentation"))
# The image-segmentation pipeline checks the model class against these built-in names and logs an error for
# any other; registering the name here (also reached by remote code) lets the check pass.
MODEL_FOR_IMAGE_SEGMENTATION_MAPPING_NAMES.setdefault(_MODEL_TYPE, _CLASS_NAME)


def timm_resnet_key_mapping(prefix: str = r"backbone\.(?:conv_encoder\.)?model\.") -> dict[str, str]:
    """Regex renames from timm / torchvision ResNet parameter names to transformers' `ResNetBackbone` names.

    timm and torchvision share the layout `conv1`, `bn1`, `layer{s}.{i}.conv{j}`, `layer{s}.{i}.bn{j}`,
    `layer{s}.{i}.downsample.{0,1}`; the native backbone names the same tensors `embedder.embedder.*`,
    `encoder.stages.{s-1}.layers.{i}.layer.{j-1}.*` and `...shortcut.*`. `prefix` is the regex of what
    precedes the ResNet names in the checkpoint; the replacement always uses DETR's native prefix
    `backbone.model.`.
    """
    target = "backbone.model."
    mapping = {
        prefix + r"conv1\.": target + "embedder.embedder.convolution.",
        prefix + r"bn1\.": target + "embedder.embedder.normalization.",
    }
    for stage in range(1, 5):
        source_layer = prefix + rf"layer{stage}\.(\d+)\."
        target_layer = target + rf"encoder.stages.{stage - 1}.layers.\1."
        mapping[source_layer + r"downsample\.0\."] = target_layer + "shortcut.convolution."
        mapping[source_layer + r"downsample\.1\."] = target_layer + "shortcut.normalization."
        for conv in range(1, 4):
            mapping[source_layer + rf"conv{conv}\."] = target_layer + f"layer.{conv - 1}.convolution."
            mapping[source_layer + rf"bn{conv}\."] = target_layer + f"layer.{conv - 1}.normalization."
    return mapping


_TIMM_STEM_KEY = re.compile(r"(^|\.)backbone\.(conv_encoder\.)?model\.conv1\.weight$")


def _checkpoint_keys(folder: str) -> list[str] | None:
    """Parameter names of a local safetensors checkpoint (read from the file headers only)."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as handle:
            return list(json.load(handle)["weight_map"])
    single = os.path.join(folder, "model.safetensors")
    if os.path.isfile(single):
        with safe_open(single, framework="pt") as handle:
            return list(handle.keys())
    return None


def _has_timm_backbone(pretrained_model_name_or_path, **hub_kwargs) -> bool:
    """Whether a checkpoint's backbone weights carry timm / torchvision ResNet names: read off the weight names
    of a local safetensors folder, otherwise off the config (a `timm_backbone`, or DETR's timm default)."""
    if not isinstance(pretrained_model_name_or_path, (str, os.PathLike)):
        return False
    path = os.fspath(pretrained_model_name_or_path)
    keys = _checkpoint_keys(path) if os.path.isdir(path) else None
    if keys is not None:
        return any(_TIMM_STEM_KEY.search(key) for key in keys)
    try:
        config, _ = DetrPanopticConfig.get_config_dict(path, **hub_kwargs)
    except OSError:
        return False
    backbone = config.get("backbone_config")
    if isinstance(backbone, dict):
        return backbone.get("model_type") == "timm_backbone"
    return config.get("model_type") == "detr" and config.get("use_timm_backbone", True)


@dataclass
class DetrPanopticSegmentationOutput(DetrSegmentationOutput):
    r"""
    Output of [`DetrPanopticForSegmentation`]; the fields are those of transformers' DETR segmentation output.

    loss (`torch.FloatTensor`, *optional*): weighted sum of the set-prediction losses, when `labels` are given.
    loss_dict (`dict`, *optional*): the individual losses (`loss_ce`, `loss_bbox`, `loss_giou`, `loss_mask`,
        `loss_dice`, and their auxiliary-decoder copies).
    logits (`torch.FloatTensor` of shape `(batch_size, num_queries, num_labels + 1)`): class logits per query,
        the last class being "no object".
    pred_boxes (`torch.FloatTensor` of shape `(batch_size, num_queries, 4)`): boxes as normalised
        (center_x, center_y, width, height) in [0, 1], relative to the unpadded image.
    pred_masks (`torch.FloatTensor` of shape `(batch_size, num_queries, height / 4, width / 4)`): mask logits per
        query at stride 4 of the padded input.
    image_sizes (`list[tuple[int, int]]`, *optional*): each image's (height, width) inside the padded batch, from
        `pixel_mask`; post-processing crops `pred_masks` to it, so that an image gets the same segments in a batch
        of larger images as alone.
    """

    image_sizes: list | None = None


class DetrPanopticPreTrainedModel(DetrPreTrainedModel):
    """Base class: transformers' DETR weight initialisation, with the panoptic config."""

    config_class = DetrPanopticConfig
    # Its loss is a mean it normalises itself (seem_hf.loss.global_mean), not a sum over Trainer's
    # `num_items_in_batch`: without this, Trainer reads the forward's **kwargs as "consumes loss kwargs", multiplies
    # the loss by the number of processes and stops dividing it by the gradient-accumulation steps.
    accepts_loss_kwargs = False
    config: DetrPanopticConfig

    def save_pretrained(self, *args, save_original_format: bool = False, **kwargs):
        """`PreTrainedModel.save_pretrained`, writing the parameter names the model has. transformers' default
        (`save_original_format=True`) writes DETR's legacy names, which it renames only inside `from_pretrained`:
        `Trainer` resuming from such a checkpoint loads the state dict directly and would restore nothing."""
        return super().save_pretrained(*args, save_original_format=save_original_format, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, key_mapping=None, strict=True, **kwargs):
        """Load a checkpoint written by this class, by transformers' `DetrForSegmentation`, or by a timm-backed
        DETR; see the module docstring for the layouts.

        With `strict` (the default), a checkpoint whose weights do not match the model exactly raises a
        `ValueError` naming every missing and unexpected key, instead of leaving weights silently random;
        `strict=False` keeps transformers' behaviour (a warning). Other arguments are those of
        `PreTrainedModel.from_pretrained`.
        """
        hub_kwargs = {
            name: kwargs[name] for name in ("revision", "token", "cache_dir", "local_files_only") if name in kwargs
        }
        if key_mapping is None and _has_timm_backbone(pretrained_model_name_or_path, **hub_kwargs):
            key_mapping = timm_resnet_key_mapping()
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(
            pretrained_model_name_or_path, *model_args, key_mapping=key_mapping, output_loading_info=True, **kwargs
        )
        problems = {name: sorted(info.get(name) or ()) for name in ("missing_keys", "unexpected_keys")}
        if strict and any(problems.values()):
            raise ValueError(
                f"The checkpoint at {pretrained_model_name_or_path} does not match {cls.__name__}:\n"
                + "\n".join(f"{name} ({len(keys)}): {keys}" for name, keys in problems.items() if keys)
                + "\nPass strict=False to load it anyway."
            )
        return (model, info) if want_info else model


def dilate_last_stage(backbone: torch.nn.Module) -> None:
    """DETR's DC5 on transformers' `ResNetBackbone`: the last stage keeps the stride-16 resolution. Its first block
    loses its stride (the shortcut's and the strided convolution's) and the 3x3 convolutions of the blocks after it
    dilate by 2 (padding 2), as torchvision's `replace_stride_with_dilation=[False, False, True]` and timm's
    `output_stride=16` build the DC5 checkpoints; no weight changes shape."""
    for index, block in enumerate(backbone.encoder.stages[-1].layers):
        if hasattr(block.shortcut, "convolution"):  # an Identity where the block keeps its width
            block.shortcut.convolution.stride = (1, 1)
        for conv_layer in block.layer:
            conv = conv_layer.convolution
            conv.stride = (1, 1)
            if conv.kernel_size == (3, 3) and index > 0:
                conv.dilation, conv.padding = (2, 2), (2, 2)


def detr_panoptic_criterion(config: DetrPanopticConfig) -> SetCriterion:
    """DETR's panoptic set loss on the package's shared criterion: matching on class, L1 and GIoU box costs;
    cross-entropy, L1, GIoU, and mask losses (focal + dice at full resolution, or sampled-point BCE + dice, per
    `config.mask_loss`) on the last decoder round only (DETR skips the auxiliary rounds' masks, which would need
    the mask head per round)."""
    return SetCriterion(
        config.num_labels,
        HungarianMatcher(class_cost=config.class_cost, bbox_cost=config.bbox_cost, giou_cost=config.giou_cost),
        weights={
            "loss_ce": 1.0,
            "loss_bbox": config.bbox_loss_coefficient,
            "loss_giou": config.giou_loss_coefficient,
            "loss_mask": config.mask_loss_coefficient,
            "loss_dice": config.dice_loss_coefficient,
        },
        eos_coefficient=config.eos_coefficient,
        mask_loss=config.mask_loss,
        num_points=config.mask_loss_points,
        auxiliary_mask_losses=False,
    )


class DetrPanopticForSegmentation(RemoteCodeMixin, DetrPanopticPreTrainedModel):
    """DETR with a mask head: one class, one box and one mask per object query.

    `forward(pixel_values, pixel_mask)` returns class logits, boxes and stride-4 mask logits for every query;
    the image processor's `post_process_{panoptic,instance,semantic}_segmentation` turn them into segments.
    With `labels` (a list, one dict per image, with `class_labels`, normalised `boxes` and binary `masks`),
    the DETR set loss is returned as well.

    The module tree and parameter names are those of transformers' `DetrForSegmentation` (`detr.*`,
    `bbox_attention.*`, `mask_head.*`), so weights move between the two without any mapping.
    """

    _attention_free_sub_configs = ("backbone_config",)

    def __init__(self, config: DetrPanopticConfig):
        super().__init__(config)
        self.detr = DetrForObjectDetection(config)
        if config.dilation:
            dilate_last_stage(self.detr.model.backbone.model)
        hidden_size, num_heads = config.d_model, config.encoder_attention_heads
        backbone_channels = self.detr.model.backbone.intermediate_channel_sizes
        self.bbox_attention = DetrMHAttentionMap(hidden_size, num_heads, dropout=0.0)
        self.mask_head = DetrMaskHeadSmallConv(
            input_channels=hidden_size + num_heads,
            fpn_channels=backbone_channels[::-1][-3:],
            hidden_size=hidden_size,
            activation_function=config.activation_function,
        )
        self.post_init()
        # The original DETR draws its object queries from N(0, 1) (nn.Embedding's default); transformers' init
        # uses N(0, 0.02), which leaves the queries nearly identical and slows a model trained from scratch.
        # (Irrelevant when weights are loaded: they replace it.)
        torch.nn.init.normal_(self.detr.model.query_position_embeddings.weight)

    _extra_auto_classes = ("AutoModel", "AutoModelForUniversalSegmentation")
    # Where `seem_hf.adapters` puts adapters (regular expressions over module names): bottlenecks after every
    # attention and MLP block of the transformer, LoRA on the attention map's query and the mask head's convolutions;
    # the class and box predictors and the query embeddings train in full, since a new label set changes them.
    _adapter_targets = {
        "backbone": r"detr\.model\.backbone",
        "bottleneck": r"detr\.model\.(encoder|decoder)\.layers\.\d+\.(self_attn|encoder_attn|mlp)",
        # Not bbox_attention.k_proj: DetrMHAttentionMap applies its weight directly as a convolution, so a LoRA
        # wrapper around it would never run.
        "head_lora": r"detr\.model\.input_projection|bbox_attention\.q_proj|mask_head\..*(conv|fpn_adapter)",
        "head_trainable": r"detr\.(class_labels_classifier|bbox_predictor|model\.query_position_embeddings)",
    }

    @torch.no_grad()
    def set_label_set(self, id2label: dict[int, str]) -> str:
        """Make the classifier predict `id2label` (a fine-tuning data set's labels), keeping what it knows: the row
        of a label the model already has moves to the label's new index, a new label gets a freshly initialised
        row, "no object" stays last; `config.id2label`/`label2id`/`num_labels` follow. Returns one line saying what
        changed (empty when nothing did)."""
        id2label = {int(index): name for index, name in id2label.items()}
        if id2label == self.config.id2label:
            return ""
        old = self.detr.class_labels_classifier
        known = {name: index for index, name in self.config.id2label.items()}
        head = torch.nn.Linear(old.in_features, len(id2label) + 1).to(old.weight.device, old.weight.dtype)
        self._init_weights(head)
        kept = [index for index, name in id2label.items() if name in known]
        for index in kept:
            head.weight[index], head.bias[index] = old.weight[known[id2label[index]]], old.bias[known[id2label[index]]]
        head.weight[-1], head.bias[-1] = old.weight[-1], old.bias[-1]
        self.detr.class_labels_classifier = head
        self.config.id2label = dict(id2label)
        self.config.label2id = {name: index for index, name in id2label.items()}
        added = [id2label[index] for index in sorted(id2label) if index not in kept]
        dropped = sorted(set(known) - set(id2label.values()))
        return (f"Classification head set to the data's {len(id2label)} labels: {len(kept)} kept from the model, "
                f"new {added}, dropped {dropped}.")

    def get_image_features(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None = None):
        """Backbone feature maps (strides 4, 8, 16, 32) and their downsampled padding masks, as a list of
        `(feature_map, mask)` pairs. Floating `pixel_values` are cast to the model's dtype (the processor gives
        float32, a model may be loaded in bfloat16 or float16)."""
        pixel_values = pixel_values.to(self.dtype) if pixel_values.is_floating_point() else pixel_values
        if pixel_mask is None:
            pixel_mask = torch.ones(pixel_values.shape[:1] + pixel_values.shape[2:], device=pixel_values.device)
        return self.detr.model.backbone(pixel_values, pixel_mask)

    def forward(
        self,
        pixel_values: torch.Tensor,
        pixel_mask: torch.Tensor | None = None,
        labels: list[dict] | None = None,
        mask_score_threshold: float | None = None,
        boxes_only: bool = False,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> DetrPanopticSegmentationOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`): normalised, padded images.
        pixel_mask (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*): 1 on real pixels,
            0 on padding; all ones when omitted.
        labels (`list[dict]`, *optional*): per image, `class_labels` (N,), `boxes` (N, 4) normalised cxcywh and
            `masks` (N, H, W) binary, for the set-prediction loss.
        mask_score_threshold (`float`, *optional*): at inference, run the mask head only for queries whose best
            real class has probability above this value; the others get mask logits of -1e4. The mask head is
            most of DETR-panoptic's cost and treats queries independently, so panoptic and instance
            post-processing with a score threshold at least this high give the same result, for a fraction of
            the time. Ignored when `labels` are given.
        boxes_only (`bool`, *optional*): skip the attention map and the mask head (`pred_masks` is None) and the
            mask losses: DETR's first training stage, a detector trained on the boxes of every segment.
        """
        for name, value in (("pixel_values", pixel_values), ("pixel_mask", pixel_mask)):
            if value is not None and not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"{name} must be a torch tensor, got {type(value).__name__}: call the processor with "
                    'return_tensors="pt" (its default).'
                )
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values must have shape (batch, {self.config.num_channels}, height, width), "
                f"got {tuple(pixel_values.shape)}."
            )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        batch_size = pixel_values.shape[0]
        model = self.detr.model
        pixel_values = pixel_values.to(self.dtype) if pixel_values.is_floating_point() else pixel_values

        features = self.get_image_features(pixel_values, pixel_mask)
        feature_map, mask = features[-1]
        projected = model.input_projection(feature_map)
        position_embeddings = (
            model.position_embedding(
                shape=feature_map.shape, device=pixel_values.device, dtype=pixel_values.dtype, mask=mask
            )
            .flatten(2)
            .transpose(1, 2)
        )
        flat_mask = mask.flatten(1)
        attention_kwargs = {"output_attentions": output_attentions, "output_hidden_states": output_hidden_states}
        encoder_outputs = model.encoder(
            inputs_embeds=projected.flatten(2).transpose(1, 2),
            attention_mask=flat_mask,
            spatial_position_embeddings=position_embeddings,
            **attention_kwargs,
            **kwargs,
        )
        query_position_embeddings = model.query_position_embeddings.weight.unsqueeze(0).repeat(batch_size, 1, 1)
        decoder_outputs = model.decoder(
            inputs_embeds=torch.zeros_like(query_position_embeddings),
            spatial_position_embeddings=position_embeddings,
            object_queries_position_embeddings=query_position_embeddings,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=flat_mask,
            **attention_kwargs,
            **kwargs,
        )
        query_states = decoder_outputs.last_hidden_state
        logits = self.detr.class_labels_classifier(query_states)
        pred_boxes = self.detr.bbox_predictor(query_states).sigmoid()

        pred_masks = None
        if not boxes_only:
            pred_masks = self._mask_logits(
                logits, query_states, encoder_outputs.last_hidden_state, projected, mask, features,
                None if labels is not None else mask_score_threshold,
            )

        loss = loss_dict = auxiliary_outputs = None
        if labels is not None:
            if self.config.auxiliary_loss:
                intermediate = decoder_outputs.intermediate_hidden_states[:-1]
                auxiliary_outputs = [
                    {"logits": round_logits, "pred_boxes": round_boxes}
                    for round_logits, round_boxes in zip(
                        self.detr.class_labels_classifier(intermediate),
                        self.detr.bbox_predictor(intermediate).sigmoid(),
                    )
                ]
            loss, loss_dict = detr_panoptic_criterion(self.config)(
                logits,
                labels,
                mask_logits=pred_masks,
                pred_boxes=pred_boxes,
                auxiliary_outputs=[
                    {"class_logits": round_outputs["logits"], "pred_boxes": round_outputs["pred_boxes"]}
                    for round_outputs in auxiliary_outputs or ()
                ],
            )

        output = DetrPanopticSegmentationOutput(
            loss=loss,
            loss_dict=loss_dict,
            logits=logits,
            pred_boxes=pred_boxes,
            pred_masks=pred_masks,
            auxiliary_outputs=auxiliary_outputs,
            last_hidden_state=query_states,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
            image_sizes=None if pixel_mask is None else [
                (int(valid.any(1).sum()), int(valid.any(0).sum())) for valid in pixel_mask.bool()
            ],
        )
        return output if return_dict else output.to_tuple()

    def _mask_logits(self, logits, query_states, memory, projected, mask, features, mask_score_threshold):
        """Stride-4 mask logits of every query, or only of the confident ones when a threshold is given."""
        batch_size = logits.shape[0]
        height, width = projected.shape[-2:]
        memory = memory.transpose(1, 2).reshape(batch_size, -1, height, width)
        # Padding positions get the dtype's minimum so the attention map's softmax ignores them.
        padding_bias = torch.zeros(mask.shape, dtype=memory.dtype, device=memory.device)
        padding_bias = padding_bias.masked_fill(~mask, torch.finfo(memory.dtype).min)[:, None, None]
        attention_maps = self.bbox_attention(query_states, memory, attention_mask=padding_bias)
        fpn_features = [features[2][0], features[1][0], features[0][0]]
        if mask_score_threshold is None:
            mask_logits = self.mask_head(projected, attention_maps, fpn_features)
            return mask_logits.view(batch_size, -1, *mask_logits.shape[-2:])
        return self._masks_of_confident_queries(logits, projected, attention_maps, fpn_features, mask_score_threshold)

    def _masks_of_confident_queries(self, logits, projected, attention_maps, fpn_features, threshold):
        """Mask logits of the queries whose best real class scores above `threshold`; -1e4 elsewhere. The mask head
        treats each query on its own (its FPN runs on a per-query copy of the features, GroupNorm per copy), so
        running it on `MASK_HEAD_CHUNK` queries at a time gives the same masks with a bounded peak memory."""
        confident = keep_confident_queries(logits, threshold)[2]  # the rule post-processing applies
        height, width = fpn_features[-1].shape[-2:]
        pred_masks = projected.new_full((*logits.shape[:2], height, width), SKIPPED_MASK_LOGIT)
        for image in range(logits.shape[0]):
            for queries in confident[image].nonzero().flatten().split(MASK_HEAD_CHUNK):
                masks = self.mask_head(
                    projected[image : image + 1],
                    attention_maps[image : image + 1, queries],
                    [feature[image : image + 1] for feature in fpn_features],
                )
                pred_masks[image, queries] = masks[:, 0]
        return pred_masks


DetrPanopticForSegmentation.register_for_auto_class("AutoModelForImageSegmentation")

__all__ = [
    "DetrPanopticForSegmentation",
    "DetrPanopticPreTrainedModel",
    "DetrPanopticSegmentationOutput",
    "timm_resnet_key_mapping",
]

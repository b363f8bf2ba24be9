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
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_IMAGE_SEGMENTATION_MAPPING_NAMES,
    MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES,
)
from transformers.utils import ModelOutput

from seem_hf.label_embeddings import LabelEmbeddingsMixin
from seem_hf.loss.matcher import HungarianMatcher
from seem_hf.loss.set_criterion import SetCriterion
from seem_hf.remote_code import RemoteCodeMixin

from .configuration_seem import SeemConfig
from .loss_seem import SeemPromptCriterion
from .modeling_seem_decoder import SeemDecoder
from .modeling_seem_encoders import SeemFocalNetBackbone, SeemLanguageEncoder, SeemPixelDecoder
from .visual_sampler_seem import add_corrective_clicks

# Lets `pipeline("image-segmentation")` accept the model without logging "not supported" (it checks these tables).
MODEL_FOR_IMAGE_SEGMENTATION_MAPPING_NAMES.setdefault("seem", "SeemForUniversalSegmentation")
MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES.setdefault("seem", "SeemForUniversalSegmentation")


@dataclass
class SeemUniversalSegmentationOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor`, *optional*): the weighted loss of every round and every active task, when labels
        are given.
    loss_dict (`dict`, *optional*): its terms (`loss_ce`, `loss_mask`, `loss_dice`, `loss_grounding_*`,
        `loss_spatial_*`; suffixed `_i` for round i).
    class_queries_logits (`torch.FloatTensor` of shape `(batch_size, num_queries, num_labels + 1)`, *optional*):
        scaled cosine similarity of each object query with each label and with "background" (last); present when
        a label set is given.
    masks_queries_logits (`torch.FloatTensor` of shape `(batch_size, num_queries, height / 4, width / 4)`).
    auxiliary_logits (`list[dict]`): the outputs of every earlier decoder round, under the same names.
    class_embeddings (`torch.FloatTensor` of shape `(num_labels + 1, dim_proj)`): the normalised label
        embeddings used, to pass back as `class_embeddings`.
    image_sizes (`list[tuple[int, int]]`, *optional*): each image's size inside the padded batch, from
        `pixel_mask`, for post-processing.
    grounding_masks_logits (`(batch_size, num_queries, height / 4, width / 4)`, *optional*): masks of the
        grounding queries, when sentences are given.
    grounding_logits (`(batch_size, num_queries, num_sentences)`, *optional*): each grounding query's similarity
        with each sentence (exp(logit_scale) clamped at 100, times the cosine).
    grounding_sentence_mask (`(batch_size, num_sentences)`, *optional*): True for real (not padding) sentences.
    spatial_masks_logits (`(batch_size, queries_per_prompt * num_prompts, height / 4, width / 4)`, *optional*):
        masks of the spatial queries, when visual prompts are given; queries of prompt n are rows
        `n * queries_per_prompt ...` (`queries_per_prompt`: the config's `spatial_queries_per_prompt` in training
        or with a `generator`, `num_queries` in eval mode without one).
    spatial_logits (`(batch_size, queries_per_prompt * num_prompts, num_prompts)`, *optional*): each spatial
        query's mask embedding times each prompt's embedding (SEEM's selection score).
    interactive_masks_logits (`(batch_size, num_prompts, height / 4, width / 4)`, *optional*): the answer for
        each visual prompt, its best query's mask; pass it as `previous_masks` in the next round.
    interactive_class_logits (`(batch_size, num_prompts, num_labels + 1)`, *optional*): those queries' scores
        against the label set, when one is given.
    spatial_prompt_embeddings (`(batch_size, num_prompts, dim)`, *optional*): each prompt's mean mask feature
        (-1 for a prompt with no pixel).
    spatial_class_logits (`(batch_size, queries_per_prompt * num_prompts, num_labels + 1)`, *optional*): every
        spatial query's scores against the label set, when one is given (trained by `spatial_label_weight`).
    spatial_prompt_mask (`(batch_size, num_prompts)`, *optional*): True for the prompts given (a positive or
        negative pixel), False for the empty slots of an image with fewer prompts than another in its batch.
    """

    loss: torch.FloatTensor | None = None
    loss_dict: dict | None = None
    class_queries_logits: torch.FloatTensor | None = None
    masks_queries_logits: torch.FloatTensor | None = None
    auxiliary_logits: list | None = None
    class_embeddings: torch.FloatTensor | None = None
    image_sizes: list | None = None
    grounding_masks_logits: torch.FloatTensor | None = None
    grounding_logits: torch.FloatTensor | None = None
    grounding_sentence_mask: torch.BoolTensor | None = None
    spatial_masks_logits: torch.FloatTensor | None = None
    spatial_logits: torch.FloatTensor | None = None
    interactive_masks_logits: torch.FloatTensor | None = None
    interactive_class_logits: torch.FloatTensor | None = None
    spatial_prompt_embeddings: torch.FloatTensor | None = None
    spatial_class_logits: torch.FloatTensor | None = None
    spatial_prompt_mask: torch.BoolTensor | None = None


# Round outputs keyed as in `SeemUniversalSegmentationOutput` (the decoder's names on the left).
_ROUND_NAMES = {
    "class_logits": "class_queries_logits", "mask_logits": "masks_queries_logits",
    "grounding_mask_logits": "grounding_masks_logits", "grounding_logits": "grounding_logits",
    "grounding_sentence_mask": "grounding_sentence_mask", "spatial_mask_logits": "spatial_masks_logits",
    "spatial_logits": "spatial_logits", "interactive_mask_logits": "interactive_masks_logits",
    "interactive_class_logits": "interactive_class_logits", "spatial_class_logits": "spatial_class_logits",
}


class SeemPreTrainedModel(PreTrainedModel):
    config_class = SeemConfig
    config: SeemConfig
    base_model_prefix = "seem"
    # Its loss is a mean it normalises itself (seem_hf.loss.global_mean), not a sum over Trainer's
    # `num_items_in_batch`: without this, Trainer reads the forward's **kwargs as "consumes loss kwargs", multiplies
    # the loss by the number of processes and stops dividing it by the gradient-accumulation steps.
    accepts_loss_kwargs = False
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    _supports_sdpa = True  # the pixel decoder's DETR encoder, the decoder's self-attention, the CLIP text tower


class SeemForUniversalSegmentation(LabelEmbeddingsMixin, RemoteCodeMixin, SeemPreTrainedModel):
    """SEEM for generic (semantic, instance, panoptic) segmentation over a label set chosen at call time.

    `forward(pixel_values, input_ids)` with one tokenised prompt per label plus "background" last
    (`(num_labels + 1, length)`), or their `class_embeddings`, returns Mask2Former-style outputs. With
    `mask_labels` and `class_labels` (per image: binary masks `(N, H, W)` and label indices `(N,)`) it also
    returns the set loss: Hungarian matching on class, point-sampled BCE and dice costs, and those losses on every
    decoder round (SEEM's weights 2, 5, 5; background weight 0.1).
    """

    _attention_free_sub_configs = ("backbone_config",)
    _text_tower_modules = ("language_encoder.text_model", "language_encoder.lang_proj")
    _extra_auto_classes = ("AutoModel", "AutoModelForImageSegmentation")
    # SEEM's fine-tuning recipe for `seem_hf.adapters`: bottlenecks after every cross-attention, self-attention
    # and FFN sub-layer of the decoder and one beside the mask-embedding MLP, the decoder's LayerNorms trainable;
    # the language encoder never trains, and the pixel decoder keeps its pretrained weights (SOLVER.FIX_PARAM).
    _adapter_targets = {
        "backbone": r"backbone",
        "frozen": r"language_encoder",
        "pretrained_frozen": r"pixel_decoder",
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
        # In chunks: COCO's label set is ~10,000 prompts, whose activations at once would take gigabytes.
        prompts = torch.cat([self.language_encoder.encode_text(chunk) for chunk in input_ids.flatten(0, 1).split(1024)])
        prompts = prompts.view(*input_ids.shape[:2], -1)
        return nn.functional.normalize(prompts.mean(1), dim=-1)

    def get_image_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The stride-4 mask features and the decoder's three levels, computed once per image (interactive rounds
        reuse them). Floating `pixel_values` are cast to the model's dtype (the processor gives float32, a model
        may be loaded in bfloat16 or float16)."""
        pixel_values = pixel_values.to(self.dtype) if pixel_values.is_floating_point() else pixel_values
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"pixel_values must be (batch, 3, height, width), got {tuple(pixel_values.shape)}.")
        return self.pixel_decoder(self.backbone(pixel_values))

    def class_logits(self, class_embeddings: torch.Tensor, label_embeddings: torch.Tensor) -> torch.Tensor:
        """exp(logit_scale) x cosine similarity (SEEM does not clamp the scale here)."""
        scale = self.language_encoder.logit_scale.exp()
        return scale * nn.functional.normalize(class_embeddings, dim=-1) @ label_embeddings.t()

    def encode_sentences(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Referring sentences `(batch, num_sentences, length)` -> their tokens concatenated per image
        `(batch, tokens, dim_proj)` with a padding mask, each sentence's embedding `(batch, num_sentences, dim_proj)`
        and which sentences are real `(batch, num_sentences)` (a sentence whose attention mask is all zero is
        padding). Tokens are SOT..EOT of every real sentence, projected and not normalised, as SEEM feeds them."""
        if input_ids.ndim != 3 or attention_mask is None or attention_mask.shape != input_ids.shape:
            raise ValueError(
                "grounding_input_ids must be (batch, num_sentences, length) with a grounding_attention_mask of the "
                f"same shape, got {tuple(input_ids.shape)} and "
                f"{None if attention_mask is None else tuple(attention_mask.shape)}."
            )
        batch, num_sentences, length = input_ids.shape
        tokens, pooled = self.language_encoder.encode_tokens(input_ids.flatten(0, 1))
        attention_mask = attention_mask.bool()
        sentence_mask = attention_mask.any(-1)
        per_sentence = tokens.view(batch, num_sentences, length, -1)
        per_image = [per_sentence[image][attention_mask[image]] for image in range(batch)]
        width = max(1, max(len(t) for t in per_image))
        padded = tokens.new_zeros(batch, width, tokens.shape[-1])
        padding = torch.ones(batch, width, dtype=torch.bool, device=tokens.device)
        for image, image_tokens in enumerate(per_image):
            padded[image, : len(image_tokens)], padding[image, : len(image_tokens)] = image_tokens, False
        return padded, padding, pooled.view(batch, num_sentences, -1), sentence_mask

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        class_embeddings: torch.Tensor | None = None,
        pixel_mask: torch.Tensor | None = None,
        grounding_input_ids: torch.Tensor | None = None,
        grounding_attention_mask: torch.Tensor | None = None,
        spatial_positive_masks: torch.Tensor | None = None,
        spatial_negative_masks: torch.Tensor | None = None,
        previous_masks: torch.Tensor | None = None,
        image_features: tuple | None = None,
        generator: torch.Generator | None = None,
        click_rounds: int | None = None,
        generic: bool | None = None,
        mask_labels: list[torch.Tensor] | None = None,
        class_labels: list[torch.Tensor] | None = None,
        labels: list[dict] | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SeemUniversalSegmentationOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`): normalised images.
        input_ids (`torch.LongTensor` of shape `(num_labels + 1, length)` or `(num_labels + 1, num_prompts, length)`):
            the label set's prompts, "background" last (see `get_text_features`). Needed for generic segmentation.
        class_embeddings (`torch.FloatTensor` of shape `(num_labels + 1, dim_proj)`): instead of `input_ids`.
        pixel_mask (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*): 1 on real pixels; SEEM
            does not mask its attention with it (as the original), post-processing crops the padding with it.
        grounding_input_ids, grounding_attention_mask (`(batch_size, num_sentences, length)`, *optional*): referring
            sentences; each gets a mask from the grounding queries.
        spatial_positive_masks, spatial_negative_masks (`torch.BoolTensor` of shape `(batch_size, num_prompts,
            height, width)`, *optional*): visual prompts (clicks, boxes, scribbles, polygons, masks) rasterised at
            the padded input size, one channel per object (`SeemProcessor` makes them from image coordinates).
        previous_masks (`(batch_size, num_prompts, h, w)`, *optional*): the previous round's
            `interactive_masks_logits`, read by the memory slots.
        image_features (`tuple`, *optional*): `get_image_features(pixel_values)` computed once and reused, so an
            interactive round or a new label set does not run the backbone and pixel decoder again.
        generator (`torch.Generator`, *optional*): drives SEEM v1's random draws (each prompt's spatial queries are
            `spatial_queries_per_prompt` random copies of object queries; prompt pixels and memory slots are
            sampled). Not needed for repeatable results: in eval mode without it every object query is copied for
            every prompt (as SEEM's demo decoder does) and the sampling draws come from a fixed seed, so the same
            image and prompts give the same masks on every call; in training mode the draws come from torch's
            global generator, as SEEM trains.
        click_rounds (`int`, *optional*): SEEM's training-time click simulation: with `spatial_masks` in `labels`,
            first run this many interactive rounds without gradient, each adding a corrective click per prompt
            (`simulate_clicks`), then the training pass with the clicks and the last round's masks as memory.
        generic (`bool`, *optional*): whether to run the object queries (generic segmentation). By default they run
            when a label set or generic targets are given. `generic=False` skips them in a prompted pass (a follow-up
            click, a sentence): the referring and interactive outputs are the same, since no query group sees
            another, and the pass is several times cheaper; `class_queries_logits` and `masks_queries_logits` are
            then None.
        mask_labels, class_labels (`list[torch.Tensor]`, *optional*): generic targets per image, for the loss.
        labels (`list[dict]`, *optional*): per image `masks` and `class_labels` (generic), and optionally
            `grounding_masks` `(num_sentences, H, W)` and `spatial_masks` `(num_prompts, H, W)` for the referring
            and interactive losses.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if input_ids is not None and class_embeddings is not None:
            raise ValueError("Give the label set either as input_ids (tokenised prompts) or as class_embeddings.")
        prompted = grounding_input_ids is not None or spatial_positive_masks is not None
        if input_ids is None and class_embeddings is None and not prompted:
            raise ValueError("Give the label set either as input_ids (tokenised prompts) or as class_embeddings, "
                             "or prompt the model with sentences or visual prompts.")
        if (mask_labels is None) != (class_labels is None):
            raise ValueError("mask_labels and class_labels go together.")
        if labels is not None:
            if mask_labels is not None:
                raise ValueError("Give the targets either as labels or as mask_labels and class_labels.")
            if all("masks" in target for target in labels):
                mask_labels = [target["masks"] for target in labels]
                class_labels = [target["class_labels"] for target in labels]
        if image_features is None:
            if pixel_values is None:
                raise ValueError("Give pixel_values, or image_features from get_image_features.")
            image_features = self.get_image_features(pixel_values)
        mask_features, multi_scale = image_features
        padded_size = tuple(4 * side for side in mask_features.shape[-2:])
        label_embeddings = class_embeddings
        if input_ids is not None:
            label_embeddings = self.get_label_embeddings(input_ids)  # computed once per label set and weights

        grounding = {}
        if grounding_input_ids is not None:
            tokens, padding, sentences, sentence_mask = self.encode_sentences(grounding_input_ids,
                                                                              grounding_attention_mask)
            grounding = {"grounding_tokens": tokens, "grounding_padding": padding}
        if spatial_positive_masks is not None:
            self._check_visual_prompts(spatial_positive_masks, spatial_negative_masks, previous_masks,
                                       mask_features.shape[0], padded_size)
            spatial_positive_masks = spatial_positive_masks.bool()
            given_prompts = spatial_positive_masks.flatten(2).any(-1)
            if spatial_negative_masks is not None:
                spatial_negative_masks = spatial_negative_masks.bool()
                given_prompts |= spatial_negative_masks.flatten(2).any(-1)
            if click_rounds:
                if labels is None or not all("spatial_masks" in target for target in labels):
                    raise ValueError("click_rounds simulates corrective clicks from the targets: give spatial_masks "
                                     "in labels.")
                spatial_positive_masks, spatial_negative_masks, previous_masks = self.simulate_clicks(
                    image_features, spatial_positive_masks, spatial_negative_masks,
                    [target["spatial_masks"] for target in labels], click_rounds, generator,
                )
        if generic is None:
            generic = label_embeddings is not None or mask_labels is not None or not prompted
        if not generic and mask_labels is not None:
            raise ValueError("Generic targets (masks and class_labels) need the object queries: generic=True.")
        decoded = self.decoder(
            multi_scale, mask_features, **grounding, positive_prompts=spatial_positive_masks,
            negative_prompts=spatial_negative_masks, previous_masks=previous_masks, generator=generator,
            object_queries=generic,
        )
        prompt_embeddings = decoded["prompt_embeddings"]
        outputs = []
        for decoded_round in decoded["rounds"]:
            round_outputs = {}
            if generic:
                round_outputs["mask_logits"] = decoded_round["mask_logits"]
                if label_embeddings is not None:
                    round_outputs["class_logits"] = self.class_logits(decoded_round["class_embeddings"],
                                                                      label_embeddings)
            if grounding:
                round_outputs["grounding_mask_logits"] = decoded_round["grounding_mask_logits"]
                round_outputs["grounding_logits"] = self.grounding_logits(
                    decoded_round["grounding_class_embeddings"], sentences
                )
                round_outputs["grounding_sentence_mask"] = sentence_mask
            if prompt_embeddings is not None:
                round_outputs.update(self._interactive_outputs(decoded_round, prompt_embeddings, label_embeddings))
            outputs.append(round_outputs)

        loss = loss_dict = None
        if mask_labels is not None or labels is not None:
            loss, loss_dict = self._loss(outputs, mask_labels, class_labels, labels, pixel_values)
        final = {_ROUND_NAMES[name]: value for name, value in outputs[-1].items()}
        output = SeemUniversalSegmentationOutput(
            loss=loss,
            loss_dict=loss_dict,
            auxiliary_logits=[{_ROUND_NAMES[name]: value for name, value in o.items()} for o in outputs[:-1]],
            class_embeddings=label_embeddings,
            image_sizes=None if pixel_mask is None else [
                (int(valid.any(1).sum()), int(valid.any(0).sum())) for valid in pixel_mask.bool()
            ],
            spatial_prompt_embeddings=prompt_embeddings,
            spatial_prompt_mask=None if spatial_positive_masks is None else given_prompts,
            **final,
        )
        return output if return_dict else output.to_tuple()

    @torch.no_grad()
    def simulate_clicks(self, image_features, positive, negative, target_masks, rounds: int, generator=None,
                        stop_iou: float = 0.925):
        """Runs `rounds` interactive rounds and after each adds one corrective click per prompt (`next_click`: on
        the larger error region, where it is farthest from its border), as SEEM's training and NoC evaluation do.
        A prompt whose mask already reaches `stop_iou` gets no more clicks. `target_masks`: per image
        `(N_b, H, W)` at the padded input size. Returns the grown `(positive, negative)` prompt masks and the last
        round's `interactive_masks_logits` (the memory for the next pass)."""
        positive = positive.clone()
        negative = torch.zeros_like(positive) if negative is None else negative.clone()
        previous = None
        for _ in range(rounds):
            # The class's forward, not self(...): under --bf16/--fp16 accelerate replaces self.forward by one autocast
            # object, which is not re-entrant: re-entered from inside the forward, it left autocast on after training.
            outputs = type(self).forward(self, image_features=image_features, spatial_positive_masks=positive,
                                         spatial_negative_masks=negative, previous_masks=previous, generator=generator)
            previous = outputs.interactive_masks_logits
            predictions = nn.functional.interpolate(previous, size=positive.shape[-2:], mode="bilinear",
                                                    align_corners=False) > 0
            for image, targets in enumerate(target_masks):  # the views below are grown in place
                count = len(targets)
                add_corrective_clicks(predictions[image, :count], targets, positive[image, :count],
                                      negative[image, :count], stop_iou)
        return positive, negative, previous

    def grounding_logits(self, query_embeddings: torch.Tensor, sentence_embeddings: torch.Tensor) -> torch.Tensor:
        """SEEM's `vl_similarity`: min(exp(logit_scale), 100) x cosine, `(batch, queries, sentences)`."""
        scale = self.language_encoder.logit_scale.exp().clamp(max=100)
        return scale * nn.functional.normalize(query_embeddings, dim=-1) @ nn.functional.normalize(
            sentence_embeddings, dim=-1
        ).transpose(1, 2)

    def _interactive_outputs(self, decoded_round, prompt_embeddings, label_embeddings) -> dict:
        """Scores each spatial query against each prompt and answers each prompt with its best own query."""
        logits = decoded_round["spatial_mask_embeddings"] @ prompt_embeddings.transpose(1, 2)
        batch, num_queries, num_prompts = logits.shape
        k = num_queries // num_prompts  # spatial queries per prompt (all object queries in eval mode)
        own = torch.arange(num_queries, device=logits.device)[:, None] // k == torch.arange(
            num_prompts, device=logits.device
        )
        chosen = logits.masked_fill(~own, float("-inf")).argmax(1)  # (batch, prompts)
        rows = torch.arange(batch, device=logits.device)[:, None]
        outputs = {
            "spatial_mask_logits": decoded_round["spatial_mask_logits"],
            "spatial_logits": logits,
            "interactive_mask_logits": decoded_round["spatial_mask_logits"][rows, chosen],
        }
        if label_embeddings is not None:
            class_logits = self.class_logits(decoded_round["spatial_class_embeddings"], label_embeddings)
            outputs["spatial_class_logits"] = class_logits
            outputs["interactive_class_logits"] = class_logits[rows, chosen]
        return outputs

    def _check_visual_prompts(self, positive, negative, previous_masks, batch, padded_size):
        if positive.ndim != 4 or positive.shape[0] != batch or tuple(positive.shape[-2:]) != padded_size:
            raise ValueError(
                f"spatial_positive_masks must be (batch={batch}, num_prompts, {padded_size[0]}, {padded_size[1]}) "
                f"(the padded input size), got {tuple(positive.shape)}."
            )
        if negative is not None and negative.shape != positive.shape:
            raise ValueError(f"spatial_negative_masks {tuple(negative.shape)} must match spatial_positive_masks "
                             f"{tuple(positive.shape)}.")
        if previous_masks is not None and tuple(previous_masks.shape[:2]) != tuple(positive.shape[:2]):
            raise ValueError(f"previous_masks {tuple(previous_masks.shape)} must have one mask per prompt "
                             f"({tuple(positive.shape[:2])}).")

    def _loss(self, outputs, mask_labels, class_labels, labels, pixel_values):
        loss, loss_dict = 0, {}
        if mask_labels is not None:
            if "class_logits" not in outputs[-1]:
                raise ValueError("Generic targets (masks and class_labels) need the label set (input_ids).")
            dtype = outputs[-1]["mask_logits"].dtype
            targets = [
                {"masks": masks.to(dtype), "class_labels": labels.long()}
                for masks, labels in zip(mask_labels, class_labels)
            ]
            rounds = [{"class_logits": o["class_logits"], "mask_logits": o["mask_logits"]} for o in outputs]
            loss, loss_dict = self.criterion(
                rounds[-1]["class_logits"], targets, mask_logits=rounds[-1]["mask_logits"],
                auxiliary_outputs=rounds[:-1],
            )
            loss_dict = dict(loss_dict)
        if labels is not None and any("grounding_masks" in t or "spatial_masks" in t for t in labels):
            prompt_loss, prompt_terms = SeemPromptCriterion(self.config)(outputs, labels)
            loss, loss_dict = loss + prompt_loss, {**loss_dict, **prompt_terms}
        return loss, loss_dict

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

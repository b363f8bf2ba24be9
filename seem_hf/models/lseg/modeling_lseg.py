"""LSeg: language-driven semantic segmentation (Li et al., ICLR 2022), as a transformers model.

A DPT dense encoder turns the image into one 512-d embedding per pixel (at half resolution); CLIP's text tower
turns each label of a label set chosen at call time into a 512-d embedding; the logits are their cosine
similarities divided by a fixed temperature, upsampled x2 to the input size. Reused from transformers:
`DPTModel` and `DPTNeck` (the ViT with resizable position embeddings, reassembly and fusion blocks are the
same modules as LSeg's, see the converter) and `CLIPTextModelWithProjection`. What is LSeg's own is small: the
1x1 head into the joint space, the similarity, the optional spatial regularisation blocks and the upsampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import CLIPTextModelWithProjection, DPTModel, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES
from transformers.models.dpt.modeling_dpt import DPTNeck
from transformers.utils import ModelOutput

from seem_hf.label_embeddings import LabelEmbeddingsMixin
from seem_hf.loss.global_mean import global_mean_denominator
from seem_hf.remote_code import RemoteCodeMixin
from seem_hf.text_utils import trim_after_end_of_text

from .configuration_lseg import LSegConfig

# Lets `pipeline("image-segmentation")` accept the model without logging "not supported" (it checks this table).
MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES.setdefault("lseg", "LSegForSemanticSegmentation")


@dataclass
class LSegSemanticSegmentationOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor`, *optional*): per-pixel cross-entropy over the label set, when `labels` are given.
    logits (`torch.FloatTensor` of shape `(batch_size, num_labels, height, width)`): scaled cosine similarities
        between each pixel and each label of the set, at the input resolution.
    class_embeddings (`torch.FloatTensor` of shape `(num_labels, embedding_dim)`): the label set's text
        embeddings (before normalisation); pass them back as `class_embeddings` to reuse them.
    pixel_embeddings (`torch.FloatTensor` of shape `(batch_size, embedding_dim, height / 2, width / 2)`): the
        image's embeddings (before normalisation).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    class_embeddings: torch.FloatTensor | None = None
    pixel_embeddings: torch.FloatTensor | None = None


class LSegSpatialRegularizationBlock(nn.Module):
    """LSeg's optional block on the label-channel logits: one 3x3 convolution shared by every label channel
    (so it works for any number of labels), plus the maximum over channels for the bottleneck variant."""

    def __init__(self, with_maximum: bool, activation: str):
        super().__init__()
        self.with_maximum = with_maximum
        self.depthwise = nn.Conv2d(1, 1, kernel_size=3, padding=1)
        self.activation = {"relu": nn.ReLU(), "lrelu": nn.LeakyReLU(), "tanh": nn.Tanh()}[activation]

    def forward(self, logits: torch.Tensor, activate: bool = True) -> torch.Tensor:
        batch_size, num_labels, height, width = logits.shape
        output = self.depthwise(logits.reshape(-1, 1, height, width)).view(batch_size, num_labels, height, width)
        if self.with_maximum:
            output = output + logits.max(dim=1, keepdim=True).values
        return self.activation(output) if activate else output


class LSegPreTrainedModel(PreTrainedModel):
    config_class = LSegConfig
    config: LSegConfig
    base_model_prefix = "lseg"
    # Its loss is a mean it normalises itself (seem_hf.loss.global_mean), not a sum over Trainer's
    # `num_items_in_batch`: without this, Trainer reads the forward's **kwargs as "consumes loss kwargs", multiplies
    # the loss by the number of processes and stops dividing it by the gradient-accumulation steps.
    accepts_loss_kwargs = False
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    _no_split_modules = ["DPTViTLayer", "CLIPEncoderLayer"]
    _supports_sdpa = True  # its attention is transformers' ViT (DPT) and CLIP text layers, which have both

    def _init_weights(self, module):
        # transformers' own initialisation for the DPT and CLIP parts; LSeg's head keeps PyTorch's default.
        if module is getattr(self, "head", None):
            return
        super()._init_weights(module)


class LSegForSemanticSegmentation(LabelEmbeddingsMixin, RemoteCodeMixin, LSegPreTrainedModel):
    """LSeg: per-pixel scores for any label set given at run time.

    `forward(pixel_values, input_ids, attention_mask)` with the label set tokenised as `(num_labels, 77)` ids
    (`LSegProcessor(text=[...])` does it) returns `logits` `(batch, num_labels, height, width)`; every image of
    the batch is scored against the same label set, whose text embeddings are computed once. Pass
    `class_embeddings` (from `get_text_features` or a previous output) instead of text to reuse them. Image
    sides must be multiples of 32.
    """

    _extra_auto_classes = ("AutoModel", "AutoModelForSemanticSegmentation", "AutoModelForImageSegmentation")
    # Where `seem_hf.adapters` puts adapters: the ViT is the backbone (LoRA on its projections when adapted);
    # the DPT neck is adapted with LoRA on its projections and convolutions, its batch norms and LSeg's head train
    # in full; the text tower never trains.
    _adapter_targets = {
        "backbone": r"dpt",
        "frozen": r"text_encoder",
        "head_lora": r"neck\.(convs\.\d+|reassemble_stage\.(layers\.\d+\.(projection|resize)|readout_projects\.\d+\.0)"
        r"|fusion_stage\.layers\.\d+\.(projection|residual_layer\d\.convolution\d))",
        "head_trainable": r"head|spatial_block",
    }
    _text_tower_modules = ("text_encoder",)

    def __init__(self, config: LSegConfig):
        super().__init__(config)
        self.dpt = DPTModel(config.vision_config, add_pooling_layer=False)
        self.neck = DPTNeck(config.vision_config)
        self.head = nn.Conv2d(config.vision_config.fusion_hidden_size, config.embedding_dim, kernel_size=1)
        self.spatial_block = (
            LSegSpatialRegularizationBlock(config.arch_option == 1, config.activation) if config.arch_option else None
        )
        self.text_encoder = CLIPTextModelWithProjection(config.text_config)
        self.post_init()
        self._freeze_text_encoder()

    def _freeze_text_encoder(self) -> None:
        if self.config.freeze_text_encoder:
            self.text_encoder.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # Loading re-creates the parameters (meta device to real tensors), which drops requires_grad=False.
        loaded = super().from_pretrained(*args, **kwargs)
        (loaded[0] if isinstance(loaded, tuple) else loaded)._freeze_text_encoder()
        return loaded

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Text embeddings `(num_labels, embedding_dim)` of a tokenised label set `(num_labels, length)`."""
        if input_ids.ndim != 2:
            raise ValueError(
                f"input_ids must be (num_labels, sequence_length), one row per label shared by the whole batch; "
                f"got shape {tuple(input_ids.shape)}."
            )
        if len(input_ids) == 0:
            raise ValueError("The label set is empty: give at least one label.")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze_text_encoder):
            input_ids, attention_mask = trim_after_end_of_text(
                input_ids, self.text_encoder.config.eos_token_id, attention_mask
            )
            return self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).text_embeds

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixel embeddings `(batch, embedding_dim, height / 2, width / 2)`. Floating `pixel_values` are cast to
        the model's dtype (the processor gives float32, a model may be loaded in bfloat16 or float16)."""
        pixel_values = pixel_values.to(self.dtype) if pixel_values.is_floating_point() else pixel_values
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.vision_config.num_channels:
            raise ValueError(f"pixel_values must be (batch, 3, height, width), got {tuple(pixel_values.shape)}.")
        height, width = pixel_values.shape[-2:]
        if height % 32 or width % 32:
            raise ValueError(
                f"LSeg needs image sides that are multiples of 32, got {height}x{width}; LSegImageProcessor resizes "
                "to such sizes."
            )
        patch_size = self.config.vision_config.patch_size
        outputs = self.dpt(pixel_values, output_hidden_states=True)
        # hidden_states[0] is the embedding output; LSeg hooks the output of blocks `backbone_out_indices`.
        hooked = [outputs.hidden_states[index + 1] for index in self.config.vision_config.backbone_out_indices]
        fused = self.neck(hooked, height // patch_size, width // patch_size)
        return self.head(fused[-1])

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        class_embeddings: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pixel_embeddings: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> LSegSemanticSegmentationOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`): sides multiples of 32.
        input_ids (`torch.LongTensor` of shape `(num_labels, sequence_length)`): the label set, tokenised.
        attention_mask (`torch.LongTensor` of shape `(num_labels, sequence_length)`, *optional*).
        class_embeddings (`torch.FloatTensor` of shape `(num_labels, embedding_dim)`, *optional*): the label set's
            text embeddings, instead of `input_ids`.
        labels (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*): the index of each pixel's
            label in the set; `config.ignore_index` where there is none.
        pixel_embeddings (`torch.FloatTensor` of shape `(batch_size, embedding_dim, height / 2, width / 2)`,
            *optional*): an earlier output's `pixel_embeddings` (or `get_image_features`), instead of `pixel_values`:
            a new label set on the same image then costs no image encoding.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if (input_ids is None) == (class_embeddings is None):
            raise ValueError("Give the label set either as input_ids (tokenised text) or as class_embeddings.")
        if class_embeddings is None:
            class_embeddings = self.get_text_features(input_ids, attention_mask)
        if class_embeddings.ndim != 2 or class_embeddings.shape[-1] != self.config.embedding_dim:
            raise ValueError(
                f"class_embeddings must be (num_labels, {self.config.embedding_dim}), got "
                f"{tuple(class_embeddings.shape)}."
            )
        if (pixel_values is None) == (pixel_embeddings is None):
            raise ValueError("Give the image either as pixel_values or as pixel_embeddings (cached).")
        if pixel_embeddings is None:
            pixel_embeddings = self.get_image_features(pixel_values)

        pixels = nn.functional.normalize(pixel_embeddings, dim=1)
        texts = nn.functional.normalize(class_embeddings.to(pixels.dtype), dim=-1)
        # The temperature is fixed, as in the original (a constant there too): not a parameter, not saved. (A
        # non-persistent buffer would be left uninitialised by from_pretrained's meta-device loading.)
        logits = torch.einsum("bchw,kc->bkhw", pixels, texts) / self.config.temperature
        if self.spatial_block is not None:
            for _ in range(self.config.block_depth - 1):
                logits = self.spatial_block(logits)
            logits = self.spatial_block(logits, activate=False)
        logits = nn.functional.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=True)

        loss = None
        if labels is not None:
            expected = (logits.shape[0], *logits.shape[-2:])
            if labels.shape != expected:
                raise ValueError(f"labels must be (batch, height, width) = {expected}, got {tuple(labels.shape)}.")
            # The mean over labelled pixels, of the global batch under several processes (seem_hf.loss.global_mean).
            labels = labels.long()
            labelled = int((labels != self.config.ignore_index).sum())
            loss = nn.functional.cross_entropy(
                logits, labels, ignore_index=self.config.ignore_index, reduction="sum"
            ) / global_mean_denominator(labelled, logits.device)

        output = LSegSemanticSegmentationOutput(
            loss=loss, logits=logits, class_embeddings=class_embeddings, pixel_embeddings=pixel_embeddings
        )
        return output if return_dict else output.to_tuple()


LSegForSemanticSegmentation.register_for_auto_class("AutoModelForSemanticSegmentation")

__all__ = ["LSegForSemanticSegmentation", "LSegPreTrainedModel", "LSegSemanticSegmentationOutput"]

"""SEEM's encoders: the FocalNet backbone, the CLIP-style language encoder and the transformer-encoder FPN pixel
decoder. All three reuse transformers' modules (FocalNet, CLIP text, DETR encoder and sine positions), which
compute exactly what SEEM's own code computes; what is added here is only what SEEM adds around them."""

from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPTextModel, DetrConfig, FocalNetModel
from transformers.models.detr.modeling_detr import DetrEncoder, DetrSinePositionEmbedding

from .text_utils import trim_after_end_of_text

from .configuration_seem import SeemConfig


class SeemFocalNetBackbone(nn.Module):
    """FocalNet returning SEEM's four maps `res2..res5` (strides 4, 8, 16, 32; 192..1536 channels for Focal-L).

    transformers' `FocalNetBackbone` returns each stage's map after its downsampling and without SEEM's output
    norms, so it cannot be used as is. Here transformers' FocalNet submodules run in a short loop: each stage's
    output is taken before downsampling and normalised by its own LayerNorm (`hidden_states_norms`, SEEM's
    `norm0..2`; the last stage uses FocalNet's final `layernorm`, SEEM's `norm3`). The blocks themselves are
    transformers' and equal SEEM's to the last bit.
    """

    def __init__(self, config: SeemConfig):
        super().__init__()
        backbone = config.backbone_config
        self.focalnet = FocalNetModel(backbone, add_pooling_layer=False)
        self.hidden_states_norms = nn.ModuleList(
            nn.LayerNorm(channels, eps=backbone.layer_norm_eps) for channels in config.backbone_channels[:-1]
        )

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        hidden_states, dimensions = self.focalnet.embeddings(pixel_values)
        feature_maps = []
        for index, stage in enumerate(self.focalnet.encoder.stages):
            height, width = dimensions[:2]
            hidden_states, before_downsampling, dimensions = stage(hidden_states, (height, width))
            norm = self.hidden_states_norms[index] if index < 3 else self.focalnet.layernorm
            normed = norm(before_downsampling)
            feature_maps.append(normed.transpose(1, 2).reshape(normed.shape[0], -1, height, width).contiguous())
        return feature_maps


class SeemLanguageEncoder(nn.Module):
    """SEEM's language encoder: a CLIP text transformer (transformers' `CLIPTextModel`, LayerNorm eps 1e-12),
    the projection `lang_proj` into the joint space and the class-logit temperature `logit_scale`.

    `encode_text` pools each sentence at its first end-of-text token and projects it (L2-normalised on request);
    `encode_tokens` projects every token, for grounding.
    """

    def __init__(self, config: SeemConfig):
        super().__init__()
        self.text_model = CLIPTextModel(config.text_config)
        self.lang_proj = nn.Linear(config.text_config.hidden_size, config.dim_proj, bias=False)
        self.logit_scale = nn.Parameter(torch.ones([]))

    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """(projected token embeddings (batch, length, dim_proj), pooled sentence embedding (batch, dim_proj))."""
        # The original attends causally with no padding mask; with a causal mask, padding after the end-of-text
        # token cannot change the tokens before it, so giving no mask reproduces it exactly.
        outputs = self.text_model(input_ids=input_ids)
        tokens = self.lang_proj(outputs.last_hidden_state)
        return tokens, self.lang_proj(outputs.pooler_output)

    def encode_text(self, input_ids: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        input_ids, _ = trim_after_end_of_text(input_ids, self.text_model.config.eos_token_id)
        pooled = self.encode_tokens(input_ids)[1]
        return nn.functional.normalize(pooled, dim=-1, eps=1e-7) if normalize else pooled


class SeemConvNorm(nn.Sequential):
    """Convolution without bias, GroupNorm and an optional ReLU (detectron2's `Conv2d(norm=GN, activation)`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, groups: int, activation: bool):
        layers = [
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.GroupNorm(groups, out_channels),
        ]
        super().__init__(*layers, *([nn.ReLU()] if activation else []))


class SeemPixelDecoder(nn.Module):
    """The transformer-encoder FPN (MaskFormer's `TransformerEncoderPixelDecoder`, as SEEM v1 configures it).

    res5 is projected to `conv_dim`, refined by a post-norm transformer encoder with sine positions (transformers'
    `DetrEncoder`, the same layer: q = k = x + pos, v = x, ReLU FFN), then an FPN adds the lateral res4, res3,
    res2 (1x1 conv + GN) to the nearest-upsampled coarser map, each followed by a 3x3 conv + GN + ReLU. Returns
    the stride-4 `mask_features` and the three coarser maps ordered low to high resolution (strides 32, 16, 8),
    which the decoder layers attend to in turn.
    """

    def __init__(self, config: SeemConfig):
        super().__init__()
        channels, width, groups = config.backbone_channels, config.conv_dim, config.norm_groups
        self.input_proj = nn.Conv2d(channels[3], width, kernel_size=1)
        self.position_embedding = DetrSinePositionEmbedding(num_position_features=width // 2, normalize=True)
        encoder_config = DetrConfig(
            d_model=width, encoder_layers=config.pixel_decoder_layers, encoder_attention_heads=config.num_heads,
            encoder_ffn_dim=config.dim_feedforward, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
            activation_function="relu", use_timm_backbone=False,
        )
        encoder_config._attn_implementation = config._attn_implementation
        self.transformer = DetrEncoder(encoder_config)
        self.layer_4 = SeemConvNorm(width, width, 3, groups, activation=True)
        self.adapters = nn.ModuleList(SeemConvNorm(c, width, 1, groups, activation=False) for c in channels[:3])
        self.layers = nn.ModuleList(SeemConvNorm(width, width, 3, groups, activation=True) for _ in range(3))
        self.mask_features = nn.Conv2d(width, config.mask_dim, kernel_size=3, padding=1)

    def forward(self, feature_maps: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        res5 = self.input_proj(feature_maps[3])
        batch_size, width, height, columns = res5.shape
        position = self.position_embedding(res5.shape, res5.device, res5.dtype).flatten(2).transpose(1, 2)
        encoded = self.transformer(
            inputs_embeds=res5.flatten(2).transpose(1, 2), spatial_position_embeddings=position
        ).last_hidden_state
        output = self.layer_4(encoded.transpose(1, 2).reshape(batch_size, width, height, columns))
        multi_scale = [output]
        for level in (2, 1, 0):  # res4, res3, res2
            lateral = self.adapters[level](feature_maps[level])
            output = self.layers[level](lateral + nn.functional.interpolate(output, size=lateral.shape[-2:]))
            multi_scale.append(output)
        return self.mask_features(output), multi_scale[:3]


__all__ = ["SeemConvNorm", "SeemFocalNetBackbone", "SeemLanguageEncoder", "SeemPixelDecoder"]

"""SEEM configuration: FocalNet backbone, transformer-encoder FPN pixel decoder, SEEM decoder, CLIP text tower."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import CLIPTextConfig, FocalNetConfig, PreTrainedConfig

# FocalNet-L as SEEM v1 configures it (focall_unicl_lang_v1.yaml, MODEL.BACKBONE.FOCAL): conv stem and
# downsampling, post-LayerNorm blocks with layer scale, 4 focal levels of kernel 3..9, a scaled modulator.
FOCAL_L = dict(
    embed_dim=192, depths=[2, 2, 18, 2], hidden_sizes=[192, 384, 768, 1536], focal_levels=[4, 4, 4, 4],
    focal_windows=[3, 3, 3, 3], use_conv_embed=True, use_post_layernorm=True, use_post_layernorm_in_modulation=False,
    normalize_modulator=True, use_layerscale=True, layerscale_value=1e-4, mlp_ratio=4.0, hidden_act="gelu",
    hidden_dropout_prob=0.0, drop_path_rate=0.3, layer_norm_eps=1e-5, patch_size=4,
    out_features=["stage1", "stage2", "stage3", "stage4"],
)
# SEEM's CLIP-style language encoder (MODEL.TEXT): 12 layers of width 512, causal, TF-style LayerNorm eps 1e-12.
SEEM_TEXT = dict(
    vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-12, attention_dropout=0.0,
    projection_dim=512, pad_token_id=49407, bos_token_id=49406, eos_token_id=49407,
)


@strict
class SeemConfig(PreTrainedConfig):
    r"""
    Configuration of SEEM (Segment Everything Everywhere All at Once, v1). The defaults describe the released
    Focal-L model (`seem_focall_v1.pt`).

    Args:
        backbone_config (`FocalNetConfig` or `dict`, *optional*): the image backbone (FocalNet-L).
        text_config (`CLIPTextConfig` or `dict`, *optional*): the language encoder (CLIP-style, 12 x 512).
        conv_dim (`int`, defaults to 512): width of the pixel decoder's FPN.
        mask_dim (`int`, defaults to 512): width of the mask features (stride 4).
        pixel_decoder_layers (`int`, defaults to 6): transformer-encoder layers on the stride-32 map.
        norm_groups (`int`, defaults to 32): GroupNorm groups in the FPN.
        hidden_dim (`int`, defaults to 512): decoder width; equals `dim_proj`, since text tokens join the queries.
        num_queries (`int`, defaults to 101): object queries.
        num_heads (`int`, defaults to 8), dim_feedforward (`int`, defaults to 2048): decoder (and pixel decoder)
            attention heads and FFN width.
        decoder_layers (`int`, defaults to 9): masked-attention decoder layers (predictions are made 10 times).
        num_feature_levels (`int`, defaults to 3): pixel-decoder levels the decoder layers cycle through.
        dim_proj (`int`, defaults to 512): the joint vision-language space.
        spatial_memories (`int`, defaults to 32): memory prompts carried across interactive rounds.
        spatial_queries_per_prompt (`int`, defaults to 3): spatial queries per visual prompt.
        max_spatial_tokens (`int`, defaults to 512): visual-prompt points sampled per level.
        class_weight, mask_weight, dice_weight (`float`, defaults to 2.0, 5.0, 5.0): generic losses and matching
            costs; no_object_weight (`float`, defaults to 0.1).
        grounding_class_weight, grounding_mask_weight, grounding_dice_weight (defaults 0.4, 1.0, 1.0) and the
            same for spatial prompts: the referring and interactive losses.
        spatial_label_weight (`float`, defaults to 0.0): cross-entropy of each visual prompt's matched spatial
            query against the prompted segment's label. Not in SEEM's recipe (0), which leaves the label of an
            interactive answer to the class head the object queries train; a small model trained from scratch
            labels its answers better with it (the shapes default was trained on with 1.0).
        train_num_points (`int`, defaults to 12544), oversample_ratio (3.0), importance_sample_ratio (0.75): point
            sampling of the mask losses.
        object_mask_threshold (`float`, defaults to 0.8), overlap_threshold (`float`, defaults to 0.8):
            post-processing.
    """

    model_type = "seem"
    sub_configs = {"backbone_config": FocalNetConfig, "text_config": CLIPTextConfig}

    backbone_config: dict | FocalNetConfig | None = None
    text_config: dict | CLIPTextConfig | None = None
    conv_dim: int = 512
    mask_dim: int = 512
    pixel_decoder_layers: int = 6
    norm_groups: int = 32
    hidden_dim: int = 512
    num_queries: int = 101
    num_heads: int = 8
    dim_feedforward: int = 2048
    decoder_layers: int = 9
    num_feature_levels: int = 3
    dim_proj: int = 512
    spatial_memories: int = 32
    spatial_queries_per_prompt: int = 3
    max_spatial_tokens: int = 512
    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    grounding_class_weight: float = 0.4
    grounding_mask_weight: float = 1.0
    grounding_dice_weight: float = 1.0
    spatial_class_weight: float = 0.4
    spatial_mask_weight: float = 1.0
    spatial_dice_weight: float = 1.0
    spatial_label_weight: float = 0.0
    train_num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    object_mask_threshold: float = 0.8
    overlap_threshold: float = 0.8

    def __post_init__(self, **kwargs):
        if self.backbone_config is None:
            self.backbone_config = FocalNetConfig(**FOCAL_L)
        elif isinstance(self.backbone_config, dict):
            self.backbone_config = FocalNetConfig(
                **{k: v for k, v in self.backbone_config.items() if k != "model_type"}
            )
        if self.text_config is None:
            self.text_config = CLIPTextConfig(**SEEM_TEXT)
        elif isinstance(self.text_config, dict):
            self.text_config = CLIPTextConfig(**{k: v for k, v in self.text_config.items() if k != "model_type"})
        if len(self.backbone_config.depths) != 4:
            raise ValueError("SEEM's pixel decoder reads four backbone stages (strides 4, 8, 16, 32).")
        if self.hidden_dim != self.dim_proj:
            raise ValueError(f"hidden_dim ({self.hidden_dim}) must equal dim_proj ({self.dim_proj}): text tokens "
                             "join the decoder's queries.")
        if self.mask_dim != self.hidden_dim or self.conv_dim != self.hidden_dim:
            raise ValueError("SEEM v1 uses one width for the pixel decoder, the mask features and the decoder "
                             f"(conv_dim {self.conv_dim}, mask_dim {self.mask_dim}, hidden_dim {self.hidden_dim}).")
        if self.spatial_label_weight < 0:
            raise ValueError(f"spatial_label_weight is a loss weight (>= 0), got {self.spatial_label_weight}.")
        if self.conv_dim % self.norm_groups:
            raise ValueError(f"conv_dim ({self.conv_dim}) must be divisible by norm_groups ({self.norm_groups}).")
        super().__post_init__(**kwargs)

    @property
    def backbone_channels(self) -> list[int]:
        """Channels of the backbone's four output maps (strides 4, 8, 16, 32)."""
        return [self.backbone_config.embed_dim * 2**stage for stage in range(4)]


SeemConfig.register_for_auto_class()

__all__ = ["FOCAL_L", "SEEM_TEXT", "SeemConfig"]

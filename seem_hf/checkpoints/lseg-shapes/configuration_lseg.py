"""LSeg configuration: a DPT dense image encoder and a CLIP text tower in one 512-d embedding space."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import CLIPTextConfig, DPTConfig, PreTrainedConfig

# DPT settings of LSeg's image encoders (lang-seg `lseg_vit.py` / `lseg_blocks.py`): a timm ViT at 384 px with
# hooks after four blocks, "project" readout, reassembly to strides 4, 8, 16, 32, fusion of width 256 with
# batch norm in the residual units (LSegNet forces `use_bn=True`), LayerNorm eps 1e-6 as timm's ViT.
VIT_L16 = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, patch_size=16,
    image_size=384, backbone_out_indices=[5, 11, 17, 23], reassemble_factors=[4, 2, 1, 0.5],
    neck_hidden_sizes=[256, 512, 1024, 1024],
)
VIT_B32 = dict(
    hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, patch_size=32,
    image_size=384, backbone_out_indices=[2, 5, 8, 11], reassemble_factors=[8, 4, 2, 1],
    neck_hidden_sizes=[96, 192, 384, 768],
)
_DPT_COMMON = dict(
    readout_type="project", fusion_hidden_size=256, use_batch_norm_in_fusion_residual=True, layer_norm_eps=1e-6,
    hidden_act="gelu", qkv_bias=True, is_hybrid=False, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
)
# OpenAI CLIP ViT-B/32's text tower (LSeg uses it for both image encoders): 12 layers of width 512, context 77.
CLIP_B32_TEXT = dict(
    vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=512,
    pad_token_id=49407, bos_token_id=49406, eos_token_id=49407,
)
ACTIVATIONS = ("relu", "lrelu", "tanh")


def lseg_vision_config(variant: str = "vit_l16", **overrides) -> DPTConfig:
    """The DPT config of LSeg's `clip_vitl16_384` (`"vit_l16"`, the released demo model) or `clip_vitb32_384`
    (`"vit_b32"`) image encoder."""
    variants = {"vit_l16": VIT_L16, "vit_b32": VIT_B32}
    if variant not in variants:
        raise ValueError(f"Unknown LSeg image encoder {variant!r}; expected one of {sorted(variants)}.")
    return DPTConfig(**{**_DPT_COMMON, **variants[variant], **overrides})


@strict
class LSegConfig(PreTrainedConfig):
    r"""
    Configuration of [`LSegForSemanticSegmentation`]. The defaults describe the released LSeg demo model
    (`demo_e200.ckpt`): a DPT-Large image encoder (timm ViT-L/16 at 384 px) and OpenAI CLIP ViT-B/32's text
    tower, meeting in a 512-d space.

    Args:
        vision_config (`DPTConfig` or `dict`, *optional*): the dense image encoder; `lseg_vision_config("vit_b32")`
            gives the ViT-B/32 variant.
        text_config (`CLIPTextConfig` or `dict`, *optional*): the text tower, with `projection_dim` equal to
            `embedding_dim`.
        embedding_dim (`int`, *optional*, defaults to 512): width of the joint space (LSeg's `out_c`).
        temperature (`float`, *optional*, defaults to 0.07): logits are cosine similarities divided by it. The
            original fixes it (its `logit_scale` is a constant, not a learned or saved parameter).
        arch_option (`int`, *optional*, defaults to 0): spatial regularisation after the logits: 0 none,
            1 bottleneck blocks (a 3x3 convolution shared by all label channels plus their maximum), 2 depthwise
            blocks (the shared convolution alone).
        block_depth (`int`, *optional*, defaults to 0): number of regularisation blocks (the last one without
            activation).
        activation (`str`, *optional*, defaults to `"lrelu"`): the blocks' activation, `relu`, `lrelu` or `tanh`.
        freeze_text_encoder (`bool`, *optional*, defaults to `True`): LSeg never trains its text tower.
        ignore_index (`int`, *optional*, defaults to 255): label value left out of the loss (the bundled
            dataset's semantic maps mark crowd and unlabelled pixels with 255).
        id2label (`dict`, *optional*): the default label set, used when no text is given (the pipeline).

    Example:

    ```python
    >>> from seem_hf import LSegConfig, LSegForSemanticSegmentation

    >>> configuration = LSegConfig()  # the released ViT-L/16 demo architecture
    >>> model = LSegForSemanticSegmentation(configuration)  # random weights
    ```
    """

    model_type = "lseg"
    sub_configs = {"vision_config": DPTConfig, "text_config": CLIPTextConfig}

    vision_config: dict | DPTConfig | None = None
    text_config: dict | CLIPTextConfig | None = None
    embedding_dim: int = 512
    temperature: float = 0.07
    arch_option: int = 0
    block_depth: int = 0
    activation: str = "lrelu"
    freeze_text_encoder: bool = True
    ignore_index: int = 255

    def __post_init__(self, **kwargs):
        if self.vision_config is None:
            self.vision_config = lseg_vision_config("vit_l16")
        elif isinstance(self.vision_config, dict):
            self.vision_config = DPTConfig(**{k: v for k, v in self.vision_config.items() if k != "model_type"})
        if self.text_config is None:
            self.text_config = CLIPTextConfig(**CLIP_B32_TEXT)
        elif isinstance(self.text_config, dict):
            self.text_config = CLIPTextConfig(**{k: v for k, v in self.text_config.items() if k != "model_type"})
        if self.text_config.projection_dim != self.embedding_dim:
            raise ValueError(
                f"text_config.projection_dim ({self.text_config.projection_dim}) must equal embedding_dim "
                f"({self.embedding_dim}): text and pixel embeddings share one space."
            )
        if self.vision_config.is_hybrid or self.vision_config.readout_type != "project":
            raise ValueError("LSeg's image encoder is a plain ViT with the 'project' readout.")
        if self.arch_option not in (0, 1, 2):
            raise ValueError(f"arch_option must be 0, 1 or 2, got {self.arch_option}.")
        if self.arch_option and self.block_depth < 1:
            raise ValueError(f"arch_option {self.arch_option} needs block_depth >= 1.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}.")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}.")
        super().__post_init__(**kwargs)


LSegConfig.register_for_auto_class()

__all__ = ["CLIP_B32_TEXT", "LSegConfig", "lseg_vision_config"]

"""Tiny configurations for tests, fixtures and the demo (transformers' tester sizes: hidden 32, 1-2 layers,
12 queries, a toy ResNet), and the script-made tiny checkpoints shipped under `tests/fixtures/`."""

from __future__ import annotations

from pathlib import Path

from transformers import CLIPTextConfig, ResNetConfig

from seem_hf.data.shapes import SHAPES_VOCABULARY
from seem_hf.models.detr_panoptic import DetrPanopticConfig
from seem_hf.models.lseg import LSegConfig, lseg_vision_config
from seem_hf.models.lseg.configuration_lseg import CLIP_B32_TEXT

# The tiny checkpoints speak the bundled dataset's vocabulary, so they can be fine-tuned on it as they are.
TINY_LABELS = SHAPES_VOCABULARY.id2label
TINY_THINGS = SHAPES_VOCABULARY.thing_label_ids
TINY_COLORS = SHAPES_VOCABULARY.label_colors
TINY_IMAGE_SIZE = {"shortest_edge": 96, "longest_edge": 128}

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def tiny_resnet_config() -> ResNetConfig:
    """The toy ResNet of transformers' DETR tests, with all four stages as outputs."""
    return ResNetConfig(
        hidden_sizes=[10, 20, 30, 40],
        depths=[1, 1, 2, 1],
        embedding_size=10,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )


def tiny_detr_arguments() -> dict:
    """DETR sizes shared by the tiny DETR-panoptic config and the transformers DETR it is compared with."""
    return dict(
        backbone_config=tiny_resnet_config(),
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=8,
        decoder_attention_heads=8,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        num_queries=12,
    )


def tiny_detr_panoptic_config(**overrides) -> DetrPanopticConfig:
    """A DETR-panoptic config small enough for a forward in milliseconds on CPU."""
    arguments = dict(tiny_detr_arguments(), id2label=dict(TINY_LABELS))
    arguments.update(overrides)
    return DetrPanopticConfig(**arguments)


def tiny_lseg_config(**overrides) -> LSegConfig:
    """An LSeg config with a 4-layer ViT of width 32 (patch 16) and a 2-layer CLIP text tower of width 16 with
    CLIP's real vocabulary (so the real tokenizer drives it), meeting in a 24-d space."""
    vision = lseg_vision_config(
        "vit_l16", hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37, image_size=64,
        backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[16, 32, 64, 64], fusion_hidden_size=32,
    )
    text = CLIPTextConfig(
        **{**CLIP_B32_TEXT, "hidden_size": 16, "intermediate_size": 37, "num_hidden_layers": 2,
           "num_attention_heads": 4, "projection_dim": 24}
    )
    arguments = dict(vision_config=vision, text_config=text, embedding_dim=24, id2label=dict(TINY_LABELS))
    arguments.update(overrides)
    return LSegConfig(**arguments)


def tiny_seem_config(**overrides):
    """A SEEM config with a 4-stage FocalNet of width 16 (one block per stage), a 2-layer text tower of width 16
    with CLIP's real vocabulary, and a pixel decoder and decoder of width 32 (1 encoder layer, 2 decoder layers,
    8 queries, 4 memories)."""
    from seem_hf.models.seem.configuration_seem import FOCAL_L, SEEM_TEXT, SeemConfig

    backbone = dict(FOCAL_L, embed_dim=16, depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 64, 128], focal_levels=[2] * 4,
                    drop_path_rate=0.0)
    text = dict(SEEM_TEXT, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
                projection_dim=32)
    arguments = dict(
        backbone_config=backbone, text_config=text, conv_dim=32, mask_dim=32, hidden_dim=32, dim_proj=32,
        pixel_decoder_layers=1, norm_groups=8, num_queries=8, num_heads=4, dim_feedforward=64, decoder_layers=2,
        spatial_memories=4, max_spatial_tokens=16, train_num_points=64,
    )
    arguments.update(overrides)
    return SeemConfig(**arguments)


__all__ = [
    "FIXTURES",
    "TINY_COLORS",
    "TINY_IMAGE_SIZE",
    "TINY_LABELS",
    "TINY_THINGS",
    "tiny_detr_arguments",
    "tiny_detr_panoptic_config",
    "tiny_lseg_config",
    "tiny_seem_config",
    "tiny_resnet_config",
]

"""Convert an original LSeg checkpoint (isl-org/lang-seg, e.g. `demo_e200.ckpt`) to a seem_hf folder.

    python -m seem_hf.models.lseg.convert_lseg_original_to_hf --checkpoint demo_e200.ckpt \
        --output-dir lseg-vit-l16 [--labels "dog,grass,other"] [--arch-option 1 --block-depth 2 --activation lrelu]

The checkpoint is a PyTorch Lightning file (weights under `state_dict`, every key prefixed `net.`) or a plain
state dict. Mapping (original -> [`LSegForSemanticSegmentation`]):
- `clip_pretrained.*` text side -> `text_encoder.*` (transformers' CLIP text model): fused `in_proj` attention
  split into q, k, v; `ln_1/ln_2/c_fc/c_proj/ln_final` renamed; `text_projection` (applied as `x @ P`)
  transposed into a Linear. The CLIP image tower, its `logit_scale` and `visual.*` are dropped (LSeg never
  uses them); the fp16 CLIP weights become fp32.
- `pretrained.model.*` (timm ViT) -> `dpt.*`: fused `qkv` split, blocks renamed; its classifier `head.*` is
  dropped (unused).
- `pretrained.act_postprocess{i}` -> `neck.reassemble_stage` (readout projection, 1x1 projection, resize).
- `scratch.layer{i}_rn` -> `neck.convs.{i-1}`; `scratch.refinenet{i}` -> `neck.fusion_stage.layers.{4-i}`
  (transformers fuses from the deepest level first); `scratch.head1` -> `head`;
  `scratch.head_block.depthwise.depthwise` -> `spatial_block.depthwise`.
Loading is strict: a key left over, missing or of the wrong shape is an error naming it. Not imported by the
model; kept beside it, as transformers does.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from seem_hf.conversion import (
    CLIP_TEXT_LAYER_RENAMES,
    check_checkpoint_keys,
    load_state_dict_strictly,
    read_checkpoint,
    unwrap_state_dict,
    write_converted,
)

from .configuration_lseg import LSegConfig, lseg_vision_config
from .image_processing_lseg import LSegImageProcessor
from .modeling_lseg import LSegForSemanticSegmentation
from .processing_lseg import LSegProcessor

DROPPED = re.compile(r"^clip_pretrained\.(visual\..*|logit_scale)$|^pretrained\.model\.head\.(weight|bias)$")

_RENAMES = [
    # CLIP text tower
    (r"^clip_pretrained\.token_embedding\.", "text_encoder.text_model.embeddings.token_embedding."),
    (r"^clip_pretrained\.positional_embedding$", "text_encoder.text_model.embeddings.position_embedding.weight"),
    (r"^clip_pretrained\.ln_final\.", "text_encoder.text_model.final_layer_norm."),
    (r"^clip_pretrained\.transformer\.resblocks\.(\d+)\.", r"text_encoder.text_model.encoder.layers.\1."),
    *CLIP_TEXT_LAYER_RENAMES,
    # timm ViT
    (r"^pretrained\.model\.cls_token$", "dpt.embeddings.cls_token"),
    (r"^pretrained\.model\.pos_embed$", "dpt.embeddings.position_embeddings"),
    (r"^pretrained\.model\.patch_embed\.proj\.", "dpt.embeddings.patch_embeddings.projection."),
    (r"^pretrained\.model\.norm\.", "dpt.layernorm."),
    (r"^pretrained\.model\.blocks\.(\d+)\.", r"dpt.encoder.layer.\1."),
    (r"(dpt\.encoder\.layer\.\d+)\.norm1\.", r"\1.layernorm_before."),
    (r"(dpt\.encoder\.layer\.\d+)\.norm2\.", r"\1.layernorm_after."),
    (r"(dpt\.encoder\.layer\.\d+)\.attn\.proj\.", r"\1.attention.output.dense."),
    (r"(dpt\.encoder\.layer\.\d+)\.mlp\.fc1\.", r"\1.intermediate.dense."),
    (r"(dpt\.encoder\.layer\.\d+)\.mlp\.fc2\.", r"\1.output.dense."),
    # DPT reassembly and fusion
    (r"^pretrained\.act_postprocess(\d)\.0\.project\.0\.", lambda m: f"neck.reassemble_stage.readout_projects.{int(m[1]) - 1}.0."),
    (r"^pretrained\.act_postprocess(\d)\.3\.", lambda m: f"neck.reassemble_stage.layers.{int(m[1]) - 1}.projection."),
    (r"^pretrained\.act_postprocess(\d)\.4\.", lambda m: f"neck.reassemble_stage.layers.{int(m[1]) - 1}.resize."),
    (r"^scratch\.layer(\d)_rn\.", lambda m: f"neck.convs.{int(m[1]) - 1}."),
    (r"^scratch\.refinenet(\d)\.", lambda m: f"neck.fusion_stage.layers.{4 - int(m[1])}."),
    (r"(fusion_stage\.layers\.\d)\.out_conv\.", r"\1.projection."),
    (r"(fusion_stage\.layers\.\d)\.resConfUnit(\d)\.conv(\d)\.", r"\1.residual_layer\2.convolution\3."),
    (r"(fusion_stage\.layers\.\d)\.resConfUnit(\d)\.bn(\d)\.", r"\1.residual_layer\2.batch_norm\3."),
    # LSeg head
    (r"^scratch\.head1\.", "head."),
    (r"^scratch\.head_block\.depthwise\.depthwise\.", "spatial_block.depthwise."),
]
_FUSED = re.compile(r"^(.*)\.(?:attn\.qkv|self_attn\.in_proj_)\.?(weight|bias)$")


def _split_fused(prefix: str, kind: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """[query; key; value] stacked on dim 0 -> three tensors under transformers' names."""
    if prefix.startswith("dpt."):
        names = [f"{prefix}.attention.attention.{name}.{kind}" for name in ("query", "key", "value")]
    else:
        names = [f"{prefix}.self_attn.{name}_proj.{kind}" for name in ("q", "k", "v")]
    return {name: part.clone() for name, part in zip(names, tensor.chunk(3, dim=0))}


def convert_original_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an original LSeg state dict (without the `net.` prefix) to [`LSegForSemanticSegmentation`]'s
    names, in fp32, dropping the unused CLIP image tower and ViT classifier."""
    converted = {}
    for key, tensor in state_dict.items():
        if DROPPED.match(key):
            continue
        tensor = tensor.float() if tensor.is_floating_point() else tensor
        new_key = key
        for pattern, replacement in _RENAMES:
            new_key = re.sub(pattern, replacement, new_key)
        if new_key == "clip_pretrained.text_projection":
            converted["text_encoder.text_projection.weight"] = tensor.t().contiguous()
        elif fused := _FUSED.match(new_key):
            converted.update(_split_fused(fused[1], fused[2], tensor))
        else:
            converted[new_key] = tensor
    return converted


def load_original_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an LSeg checkpoint safely (`weights_only=True`; `.safetensors` too): the Lightning `state_dict` with
    its `net.` prefix removed, or a plain state dict, as `seem_hf.conversion.unwrap_state_dict` finds it."""
    return unwrap_state_dict(read_checkpoint(path, EXPECTED, entry="state_dict"), path, EXPECTED)


EXPECTED = "an original LSeg checkpoint (isl-org/lang-seg, e.g. demo_e200.ckpt: LSegNet's state dict)"
REQUIRED_KEYS = ["pretrained.model.patch_embed.proj.weight", "clip_pretrained.text_projection"]


def config_from_original_state_dict(state_dict: dict[str, torch.Tensor], **overrides) -> LSegConfig:
    """The [`LSegConfig`] whose model has the shapes of an original state dict (ViT-L/16 or ViT-B/32)."""
    check_checkpoint_keys(state_dict, REQUIRED_KEYS, EXPECTED)
    patch = state_dict["pretrained.model.patch_embed.proj.weight"]
    variant = {(1024, 16): "vit_l16", (768, 32): "vit_b32"}.get((patch.shape[0], patch.shape[-1]))
    if variant is None:
        raise ValueError(
            f"Unrecognised LSeg image encoder: width {patch.shape[0]}, patch {patch.shape[-1]} (the released ViT-L/16 "
            "has 1024 and 16, ViT-B/32 768 and 32); give its architecture as an LSegConfig JSON (--config, "
            "config=)."
        )
    if "scratch.head_block.depthwise.depthwise.weight" in state_dict and "arch_option" not in overrides:
        raise ValueError(
            "This checkpoint has spatial regularisation blocks; pass --arch-option (arch_option=: 1 bottleneck, "
            "2 depthwise), --block-depth and --activation as it was trained with (they leave no trace in the "
            "weights)."
        )
    return LSegConfig(vision_config=lseg_vision_config(variant), **overrides)


def convert(
    checkpoint: str | Path,
    output_dir: str | Path,
    labels: list[str] | None = None,
    config: LSegConfig | None = None,
    **config_overrides,
) -> Path:
    """Convert `checkpoint` and write a complete folder (config, safetensors weights, processor with CLIP's
    tokenizer and the default `labels`, code). The architecture is read off the weights unless `config` is
    given."""
    from seem_hf.clip_tokenizer import clip_tokenizer
    from seem_hf.processing_utils import check_label_set
    from seem_hf.text_utils import clean_text

    labels = check_label_set(["other"] if labels is None else labels, clean_text, name="labels")
    state_dict = load_original_checkpoint(checkpoint)
    check_checkpoint_keys(state_dict, REQUIRED_KEYS, EXPECTED)
    if config is None:
        config = config_from_original_state_dict(state_dict, **config_overrides)
    elif differing := {name: (value, getattr(config, name, None)) for name, value in config_overrides.items()
                       if getattr(config, name, None) != value}:
        raise ValueError(
            "Both a config and settings that disagree with it were given: "
            + ", ".join(f"{name}={given!r} (the config has {held!r})" for name, (given, held) in differing.items())
            + ". Set them in the config JSON, or leave --config out to read the architecture off the weights."
        )
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: index for index, label in enumerate(labels)}
    model = LSegForSemanticSegmentation(config).eval()
    load_state_dict_strictly(model, convert_original_state_dict(state_dict))
    processor = LSegProcessor(LSegImageProcessor(), clip_tokenizer())
    processor.set_default_labels(labels)
    return write_converted(output_dir, model, processor)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="LSeg .ckpt (Lightning) or a state-dict .pt")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--labels", default="dog,grass,other", help="comma-separated default label set")
    parser.add_argument("--arch-option", type=int, help="spatial regularisation used in training (1 or 2)")
    parser.add_argument("--block-depth", type=int)
    parser.add_argument("--activation", choices=["relu", "lrelu", "tanh"])
    parser.add_argument("--config", help="an LSegConfig JSON, instead of reading the architecture off the weights")
    arguments = parser.parse_args(argv)
    overrides = {
        name: value
        for name, value in (("arch_option", arguments.arch_option), ("block_depth", arguments.block_depth),
                            ("activation", arguments.activation))
        if value is not None
    }
    labels = [label.strip() for label in arguments.labels.split(",")]
    config = LSegConfig.from_json_file(arguments.config) if arguments.config else None
    print(f"Wrote {convert(arguments.checkpoint, arguments.output_dir, labels, config, **overrides)}")


if __name__ == "__main__":
    main()

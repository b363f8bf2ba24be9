"""Convert an original facebookresearch/detr panoptic checkpoint (`detr-r50-panoptic-*.pth`) to a seem_hf folder.

    python -m seem_hf.models.detr_panoptic.convert_detr_panoptic_original_to_hf \
        --checkpoint detr-r50-panoptic-00ce5173.pth --output-dir detr-r50-panoptic \
        [--categories panoptic_coco_categories.json] [--dilation]

The original `DETRsegm` module names (`detr.backbone.0.body.*` torchvision ResNet, `detr.transformer.*` with
fused `in_proj` attention weights, `detr.class_embed`, `detr.bbox_embed`, `detr.query_embed`,
`detr.input_proj`, `bbox_attention.{q,k}_linear`, `mask_head.{lay1..5,gn1..5,adapter1..3,out_lay}`) are mapped
onto [`DetrPanopticForSegmentation`]; the architecture (backbone depth, widths, layer and query counts, label
count) is read off the tensor shapes. Loading is strict: a key left over or missing is an error that names it.
The weights cannot tell a DC5 model (`detr-r50-dc5-panoptic-*.pth`, last stage dilated) from a plain one, so
`dilation` comes from the checkpoint's own training arguments where it pickles them, else from `--dilation`; a
file named `*dc5*` with neither is refused, since it would convert into a model whose outputs are silently wrong.
Not imported by the model; kept beside it, as transformers does.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch
from transformers.conversion_mapping import get_checkpoint_conversion_mapping

from seem_hf.conversion import (
    check_checkpoint_keys,
    load_state_dict_strictly,
    read_categories,
    read_checkpoint,
    unwrap_state_dict,
    write_converted,
)

from .configuration_detr_panoptic import DetrPanopticConfig, native_resnet_config
from .image_processing_detr_panoptic import DetrPanopticImageProcessor
from .modeling_detr_panoptic import DetrPanopticForSegmentation, timm_resnet_key_mapping
from .processing_detr_panoptic import DetrPanopticProcessor

# Original transformer names -> transformers' DETR names (applied in order, each a regex substitution).
_TRANSFORMER_RENAMES = [
    (r"^detr\.backbone\.0\.body\.", "detr.model.backbone.model."),
    (r"^detr\.input_proj\.", "detr.model.input_projection."),
    (r"^detr\.query_embed\.", "detr.model.query_position_embeddings."),
    (r"^detr\.class_embed\.", "detr.class_labels_classifier."),
    (r"^detr\.bbox_embed\.", "detr.bbox_predictor."),
    (r"^detr\.transformer\.decoder\.norm\.", "detr.model.decoder.layernorm."),
    (r"^detr\.transformer\.", "detr.model."),
    (r"\.multihead_attn\.", ".encoder_attn."),
    (r"\.out_proj\.", ".o_proj."),
    (r"\.linear1\.", ".mlp.fc1."),
    (r"\.linear2\.", ".mlp.fc2."),
    (r"(encoder\.layers\.\d+)\.norm1\.", r"\1.self_attn_layer_norm."),
    (r"(encoder\.layers\.\d+)\.norm2\.", r"\1.final_layer_norm."),
    (r"(decoder\.layers\.\d+)\.norm1\.", r"\1.self_attn_layer_norm."),
    (r"(decoder\.layers\.\d+)\.norm2\.", r"\1.encoder_attn_layer_norm."),
    (r"(decoder\.layers\.\d+)\.norm3\.", r"\1.final_layer_norm."),
]
_FUSED_ATTENTION = re.compile(r"^(.*)\.in_proj_(weight|bias)$")


def _mask_head_renames() -> list[tuple[str, str]]:
    """transformers' own renames of the legacy mask-head names (`mask_head.lay1` -> `mask_head.conv1.conv`...)."""
    renames = []
    for transform in get_checkpoint_conversion_mapping("DetrForSegmentation"):
        for source, target in zip(transform.source_patterns, transform.target_patterns):
            renames.append((r"^" + re.escape(source) + r"\.", target + "."))
    return renames


def convert_original_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an original DETR-panoptic state dict to [`DetrPanopticForSegmentation`]'s names, splitting the fused
    attention projections (`in_proj_weight` = [query; key; value]) into `q_proj`, `k_proj`, `v_proj`."""
    renames = (
        _TRANSFORMER_RENAMES
        + list(timm_resnet_key_mapping(prefix=r"backbone\.model\.").items())
        + _mask_head_renames()
    )
    converted = {}
    for key, tensor in state_dict.items():
        new_key = key
        for pattern, replacement in renames:
            new_key = re.sub(pattern, replacement, new_key)
        fused = _FUSED_ATTENTION.match(new_key)
        if fused:
            prefix, kind = fused.groups()
            for name, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0)):
                converted[f"{prefix}.{name}.{kind}"] = part.clone()
        else:
            converted[new_key] = tensor
    return converted


EXPECTED = "an original DETR-panoptic checkpoint (facebookresearch/detr detr-r50-panoptic-*.pth: DETRsegm's state dict)"
REQUIRED_KEYS = [
    "detr.query_embed.weight", "detr.class_embed.weight", "mask_head.lay1.weight",
    "detr.transformer.encoder.layers.0.linear1.weight", "detr.transformer.decoder.layers.0.linear1.weight",
]


def config_from_original_state_dict(state_dict: dict[str, torch.Tensor], **overrides) -> DetrPanopticConfig:
    """The [`DetrPanopticConfig`] whose model has the shapes of an original DETR-panoptic state dict."""
    check_checkpoint_keys(state_dict, REQUIRED_KEYS, EXPECTED)

    def count(pattern: str) -> int:
        return len({match.group(1) for key in state_dict if (match := re.match(pattern, key))})

    blocks_in_layer3 = count(r"^detr\.backbone\.0\.body\.layer3\.(\d+)\.")
    backbone_name = {6: "resnet50", 23: "resnet101"}.get(blocks_in_layer3)
    if backbone_name is None:
        raise ValueError(f"Unrecognised backbone: layer3 has {blocks_in_layer3} blocks (ResNet-50 has 6, -101 has 23); "
                         "give its architecture as a DetrPanopticConfig JSON (--config, config=).")
    d_model = state_dict["detr.query_embed.weight"].shape[1]
    # The mask head reads the projected features concatenated with one attention map per head.
    heads = state_dict["mask_head.lay1.weight"].shape[1] - d_model
    arguments = dict(
        backbone_config=native_resnet_config(backbone_name),
        num_labels=state_dict["detr.class_embed.weight"].shape[0] - 1,
        num_queries=state_dict["detr.query_embed.weight"].shape[0],
        d_model=d_model,
        encoder_layers=count(r"^detr\.transformer\.encoder\.layers\.(\d+)\."),
        decoder_layers=count(r"^detr\.transformer\.decoder\.layers\.(\d+)\."),
        encoder_ffn_dim=state_dict["detr.transformer.encoder.layers.0.linear1.weight"].shape[0],
        decoder_ffn_dim=state_dict["detr.transformer.decoder.layers.0.linear1.weight"].shape[0],
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
    )
    arguments.update(overrides)
    return DetrPanopticConfig(**arguments)


def load_original_checkpoint(path: str | Path, with_arguments: bool = False):
    """Read an original `.pth` safely (`weights_only=True`); returns its `model` state dict, and with
    `with_arguments` also the `argparse.Namespace` of training arguments that DETR's training checkpoints pickle
    (None where the file has none)."""
    checkpoint = read_checkpoint(path, EXPECTED, safe_globals=[argparse.Namespace])
    state_dict = unwrap_state_dict(checkpoint, path, EXPECTED)
    if not with_arguments:
        return state_dict
    arguments = checkpoint.get("args") if isinstance(checkpoint, dict) else None
    return state_dict, arguments if isinstance(arguments, argparse.Namespace) else None


def checkpoint_dilation(path: str | Path, arguments: argparse.Namespace | None, dilation: bool | None) -> bool:
    """Whether the checkpoint at `path` is DC5: its training arguments' `dilation` where it has them (a `dilation`
    given as well must agree), else `dilation`; refused when neither says and the file is named `*dc5*`."""
    recorded = getattr(arguments, "dilation", None)
    if recorded is not None:
        if dilation is not None and bool(dilation) != bool(recorded):
            raise ValueError(f"{path} was trained with dilation={recorded} (its pickled arguments), but "
                             f"dilation={dilation} was given: leave --dilation out, the checkpoint says it.")
        return bool(recorded)
    if dilation is None and "dc5" in Path(path).name.lower():
        raise ValueError(f"{Path(path).name} is named as a DC5 model, whose weights look like a plain one's: pass "
                         "--dilation (dilation=True) to convert it dilated, or rename the file if it is not DC5.")
    return bool(dilation)


def load_converted(model: DetrPanopticForSegmentation, state_dict: dict[str, torch.Tensor]) -> None:
    """Load converted weights strictly (see `seem_hf.conversion.load_state_dict_strictly`)."""
    load_state_dict_strictly(model, state_dict)


def vocabulary(num_labels: int, categories: list[dict] | None = None) -> dict:
    """Label names, thing ids and colours. From COCO-panoptic `categories` (id, name, isthing, color) when
    given; otherwise the original DETR's rule: ids up to 90 are things, names are `LABEL_<id>`."""
    if categories:
        by_id = {int(c["id"]): c for c in categories}
        unknown = [i for i in by_id if not 0 <= i < num_labels]
        if unknown:
            raise ValueError(f"Category ids {unknown} are outside the model's {num_labels} labels (ids 0 to "
                             f"{num_labels - 1}: the checkpoint's classifier rows, DETR's COCO ids, not renumbered).")
        id2label = {i: by_id[i]["name"] if i in by_id else f"LABEL_{i}" for i in range(num_labels)}
        things = [i for i, c in by_id.items() if c.get("isthing")]
        colors = {i: list(c["color"]) for i, c in by_id.items() if c.get("color") is not None}
        return {"id2label": id2label, "thing_label_ids": things, "label_colors": colors or None}
    return {
        "id2label": {i: f"LABEL_{i}" for i in range(num_labels)},
        "thing_label_ids": list(range(min(num_labels, 91))),
        "label_colors": None,
    }


def convert(
    checkpoint: str | Path,
    output_dir: str | Path,
    categories: str | Path | None = None,
    config: DetrPanopticConfig | None = None,
    dilation: bool | None = None,
) -> Path:
    """Convert `checkpoint` and write a complete folder (config, safetensors weights, processor, code). The
    architecture is read off the weights unless `config` is given (for backbones other than ResNet-50/101);
    `dilation` (DC5) as `checkpoint_dilation` decides, unless `config` is given."""
    state_dict, arguments = load_original_checkpoint(checkpoint, with_arguments=True)
    check_checkpoint_keys(state_dict, REQUIRED_KEYS, EXPECTED)
    if config is None:
        dilation = checkpoint_dilation(checkpoint, arguments, dilation)
        config = config_from_original_state_dict(state_dict, dilation=dilation)
    elif dilation is not None and bool(dilation) != config.dilation:
        raise ValueError(f"dilation={dilation} was given, but the given config has dilation={config.dilation}.")
    category_list = read_categories(categories) if categories else None
    labels = vocabulary(config.num_labels, category_list)
    config.id2label = labels["id2label"]
    config.label2id = {name: i for i, name in labels["id2label"].items()}
    model = DetrPanopticForSegmentation(config).eval()
    load_converted(model, convert_original_state_dict(state_dict))
    processor = DetrPanopticProcessor(DetrPanopticImageProcessor(panoptic_rule="detr", **labels))
    return write_converted(output_dir, model, processor)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="original DETR panoptic .pth")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--categories", help="COCO-panoptic JSON whose 'categories' name the labels")
    parser.add_argument("--config", help="a DetrPanopticConfig JSON, instead of reading the architecture off the weights")
    parser.add_argument("--dilation", action="store_true", default=None,
                        help="the checkpoint is DC5 (detr-r50-dc5-panoptic); needed where it does not pickle its arguments")
    arguments = parser.parse_args(argv)
    config = DetrPanopticConfig.from_json_file(arguments.config) if arguments.config else None
    folder = convert(arguments.checkpoint, arguments.output_dir, arguments.categories, config, arguments.dilation)
    print(f"Wrote {folder}")


if __name__ == "__main__":
    main()

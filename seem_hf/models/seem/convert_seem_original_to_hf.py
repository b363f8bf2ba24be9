"""Convert the released SEEM checkpoint (`seem_focall_v1.pt`, UX-Decoder/Segment-Everything-Everywhere-All-At-Once
v1.0) to a seem_hf folder.

    python -m seem_hf.models.seem.convert_seem_original_to_hf --checkpoint seem_focall_v1.pt \
        --output-dir seem-focall-v1 [--categories panoptic_coco_categories.json | --labels "dog,grass"]

The checkpoint is a flat state dict of `GeneralizedSEEM` (933 keys for Focal-L). Mapping (original ->
[`SeemForUniversalSegmentation`]):
- `backbone.*` -> transformers' FocalNet under `backbone.focalnet.*`: `patch_embed` -> `embeddings`,
  `layers.{s}.blocks.{b}` -> `encoder.stages.{s}.layers.{b}`, modulation `f/h/proj` ->
  `projection_in/projection_context/projection_out`; the per-stage output norms `norm0..2` ->
  `backbone.hidden_states_norms.{i}` and `norm3` -> FocalNet's final `layernorm`.
- `sem_seg_head.pixel_decoder.*` -> `pixel_decoder.*`: the transformer encoder's fused attention split into
  transformers' DETR encoder q/k/v; `adapter_{i}`/`layer_{i}` (detectron2 conv with a `.norm` child) ->
  `adapters.{i-1}`/`layers.{i-1}` (conv `.0`, GroupNorm `.1`), `layer_4` -> `layer_4`.
- `sem_seg_head.predictor.*` -> `decoder.*`: the post-norms nested in each sub-layer (`...layers.{i}.norm`) ->
  the sibling `cross_attention_norms`/`self_attention_norms`/`ffn_norms.{i}`; the raw `x @ W` parameters
  `class_embed` and `mask_sptial_embed.{l}` -> transposed Linear weights (`mask_spatial_embed`, typo mended).
- `sem_seg_head.predictor.lang_encoder.*` -> `language_encoder.*`: the CLIP-style tower -> transformers'
  `CLIPTextModel` (fused attention split, `ln_1/ln_2/c_fc/c_proj/ln_final` renamed), `lang_proj` transposed.
- Dropped, knowingly: `criterion.empty_weight` (the loss's class weights, rebuilt from the config) and
  `dilation_kernel` (a constant 3 x 3 of ones for dilating clicks; checked to be that).
Checkpoints of the fine-tuning fork (msdkarimi/...) carry `adopter_layer` and `*_adapters` keys; their adapters
(biased bottlenecks with dropout, LayerNorm in/out and a scale; convolutional backbone adapters) have no
counterpart here, so they are refused by name rather than dropped. Loading is strict: a key left over, missing or
of the wrong shape is an error naming it. Not imported by the model; kept beside it, as transformers does.
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

from .configuration_seem import FOCAL_L, SEEM_TEXT, SeemConfig
from .image_processing_seem import SeemImageProcessor
from .modeling_seem import SeemForUniversalSegmentation
from .processing_seem import SeemProcessor

DROPPED = {"criterion.empty_weight", "dilation_kernel"}
FORK_ADAPTERS = re.compile(r"\.adopter_layer\.|_adapters\.")

TEXT_PREFIX = "sem_seg_head.predictor.lang_encoder.lang_encoder."
_DECODER = r"^sem_seg_head\.predictor\."
_TEXT = "^" + re.escape(TEXT_PREFIX)
EXPECTED = "an original SEEM checkpoint (seem_focall_v1.pt: GeneralizedSEEM's state dict)"
REQUIRED_KEYS = [
    "backbone.patch_embed.proj.weight", "backbone.layers.0.blocks.0.modulation.focal_layers.0.0.weight",
    TEXT_PREFIX + "ln_final.weight", TEXT_PREFIX + "resblocks.0.mlp.c_fc.weight",
    "sem_seg_head.predictor.query_feat.weight", "sem_seg_head.predictor.class_embed",
    "sem_seg_head.predictor.transformer_ffn_layers.0.linear1.weight", "sem_seg_head.predictor.spatial_embed.weight",
]
_RENAMES = [
    # FocalNet
    (r"^backbone\.patch_embed\.proj\.", "backbone.focalnet.embeddings.patch_embeddings.projection."),
    (r"^backbone\.patch_embed\.norm\.", "backbone.focalnet.embeddings.norm."),
    (r"^backbone\.layers\.(\d+)\.blocks\.(\d+)\.", r"backbone.focalnet.encoder.stages.\1.layers.\2."),
    (r"^backbone\.layers\.(\d+)\.downsample\.proj\.", r"backbone.focalnet.encoder.stages.\1.downsample.projection."),
    (r"^backbone\.layers\.(\d+)\.downsample\.norm\.", r"backbone.focalnet.encoder.stages.\1.downsample.norm."),
    (r"\.modulation\.f\.", ".modulation.projection_in."),
    (r"\.modulation\.h\.", ".modulation.projection_context."),
    (r"\.modulation\.proj\.", ".modulation.projection_out."),
    (r"^backbone\.norm([012])\.", r"backbone.hidden_states_norms.\1."),
    (r"^backbone\.norm3\.", "backbone.focalnet.layernorm."),
    # transformer-encoder FPN
    (r"^sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.", r"pixel_decoder.transformer.layers.\1."),
    (r"(pixel_decoder\.transformer\.layers\.\d+)\.self_attn\.out_proj\.", r"\1.self_attn.o_proj."),
    (r"(pixel_decoder\.transformer\.layers\.\d+)\.linear1\.", r"\1.mlp.fc1."),
    (r"(pixel_decoder\.transformer\.layers\.\d+)\.linear2\.", r"\1.mlp.fc2."),
    (r"(pixel_decoder\.transformer\.layers\.\d+)\.norm1\.", r"\1.self_attn_layer_norm."),
    (r"(pixel_decoder\.transformer\.layers\.\d+)\.norm2\.", r"\1.final_layer_norm."),
    (r"^sem_seg_head\.pixel_decoder\.(adapter|layer)_([123])\.norm\.", lambda m: f"pixel_decoder.{m[1]}s.{int(m[2]) - 1}.1."),
    (r"^sem_seg_head\.pixel_decoder\.(adapter|layer)_([123])\.weight$", lambda m: f"pixel_decoder.{m[1]}s.{int(m[2]) - 1}.0.weight"),
    (r"^sem_seg_head\.pixel_decoder\.layer_4\.norm\.", "pixel_decoder.layer_4.1."),
    (r"^sem_seg_head\.pixel_decoder\.layer_4\.weight$", "pixel_decoder.layer_4.0.weight"),
    (r"^sem_seg_head\.pixel_decoder\.", "pixel_decoder."),
    # language encoder
    (_TEXT + r"token_embedding\.", "language_encoder.text_model.embeddings.token_embedding."),
    (_TEXT + r"positional_embedding$", "language_encoder.text_model.embeddings.position_embedding.weight"),
    (_TEXT + r"ln_final\.", "language_encoder.text_model.final_layer_norm."),
    (_TEXT + r"resblocks\.(\d+)\.", r"language_encoder.text_model.encoder.layers.\1."),
    *CLIP_TEXT_LAYER_RENAMES,
    (_DECODER + r"lang_encoder\.", "language_encoder."),
    # decoder
    (_DECODER + r"transformer_cross_attention_layers\.(\d+)\.norm\.", r"decoder.cross_attention_norms.\1."),
    (_DECODER + r"transformer_self_attention_layers\.(\d+)\.norm\.", r"decoder.self_attention_norms.\1."),
    (_DECODER + r"transformer_ffn_layers\.(\d+)\.norm\.", r"decoder.ffn_norms.\1."),
    (_DECODER + r"mask_sptial_embed\.(\d)$", r"decoder.mask_spatial_embed.\1.weight"),
    (_DECODER + r"class_embed$", "decoder.class_embed.weight"),
    (_DECODER, "decoder."),
]
_TRANSPOSED = re.compile(r"^(decoder\.class_embed|decoder\.mask_spatial_embed\.\d|language_encoder\.lang_proj)")
_FUSED = re.compile(r"^((?:pixel_decoder\.transformer|language_encoder\.text_model\.encoder)\.layers\.\d+\.self_attn)"
                    r"\.in_proj_(weight|bias)$")


def convert_original_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an original SEEM state dict to [`SeemForUniversalSegmentation`]'s names (fp32), splitting fused
    attention and transposing `x @ W` parameters; raises on the fine-tuning fork's adapter keys."""
    if fork := sorted(key for key in state_dict if FORK_ADAPTERS.search(key)):
        raise ValueError(
            f"This checkpoint holds {len(fork)} adapter tensors of the fine-tuning fork (e.g. {fork[:3]}); their "
            "adapters have no seem_hf counterpart. Convert the base checkpoint, then fine-tune with seem_hf.adapters."
        )
    converted = {}
    for key, tensor in state_dict.items():
        if key in DROPPED:
            if key == "dilation_kernel" and not torch.equal(tensor, torch.ones_like(tensor)):
                raise ValueError("dilation_kernel is expected to be all ones (SEEM's 3 x 3 click dilation).")
            continue
        tensor = tensor.float() if tensor.is_floating_point() else tensor
        new_key = key
        for pattern, replacement in _RENAMES:
            new_key = re.sub(pattern, replacement, new_key)
        if _TRANSPOSED.match(new_key):
            new_key = new_key if new_key.endswith(".weight") else new_key + ".weight"
            converted[new_key] = tensor.t().contiguous()
        elif fused := _FUSED.match(new_key):
            names = [f"{fused[1]}.{name}_proj.{fused[2]}" for name in ("q", "k", "v")]
            converted.update({name: part.clone() for name, part in zip(names, tensor.chunk(3, dim=0))})
        else:
            converted[new_key] = tensor
    return converted


def config_from_original_state_dict(state_dict: dict[str, torch.Tensor], **overrides) -> SeemConfig:
    """The [`SeemConfig`] whose model has the shapes of an original state dict (Focal-L or Focal-T v1, any query
    and layer counts); attention-head counts leave no trace in weights and keep SEEM's (8; text width / 64)."""
    def count(pattern):
        return len({m[1] for key in state_dict if (m := re.match(pattern, key))})

    check_checkpoint_keys(state_dict, REQUIRED_KEYS, EXPECTED)
    embed_dim = state_dict["backbone.patch_embed.proj.weight"].shape[0]
    depths = [count(rf"^backbone\.layers\.{stage}\.blocks\.(\d+)\.") for stage in range(4)]
    levels = count(r"^backbone\.layers\.0\.blocks\.0\.modulation\.focal_layers\.(\d+)\.")
    window = state_dict["backbone.layers.0.blocks.0.modulation.focal_layers.0.0.weight"].shape[-1]
    backbone = dict(FOCAL_L, embed_dim=embed_dim, depths=depths, hidden_sizes=[embed_dim * 2**i for i in range(4)],
                    focal_levels=[levels] * 4, focal_windows=[window] * 4)
    text_width = state_dict[TEXT_PREFIX + "ln_final.weight"].shape[0]
    text = dict(SEEM_TEXT, hidden_size=text_width, num_attention_heads=max(1, text_width // 64),
                intermediate_size=state_dict[TEXT_PREFIX + "resblocks.0.mlp.c_fc.weight"].shape[0],
                num_hidden_layers=count(_TEXT + r"resblocks\.(\d+)\."))
    query_feat = state_dict["sem_seg_head.predictor.query_feat.weight"]
    width = query_feat.shape[1]
    arguments = dict(
        backbone_config=backbone, text_config=text, conv_dim=width, mask_dim=width, hidden_dim=width,
        dim_proj=state_dict["sem_seg_head.predictor.class_embed"].shape[1], num_queries=query_feat.shape[0],
        decoder_layers=count(_DECODER + r"transformer_ffn_layers\.(\d+)\."),
        pixel_decoder_layers=count(r"^sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\."),
        dim_feedforward=state_dict["sem_seg_head.predictor.transformer_ffn_layers.0.linear1.weight"].shape[0],
        spatial_memories=state_dict["sem_seg_head.predictor.spatial_embed.weight"].shape[0],
    )
    arguments.update(overrides)
    return SeemConfig(**arguments)


def load_original_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a SEEM checkpoint safely (`weights_only=True`; `.safetensors` too): a flat state dict, or one under
    `model` or `state_dict`, as `seem_hf.conversion.unwrap_state_dict` finds it."""
    return unwrap_state_dict(read_checkpoint(path, EXPECTED), path, EXPECTED)


def convert(checkpoint: str | Path, output_dir: str | Path, labels: list[str] | None = None,
            thing_label_ids: list[int] | None = None, config: SeemConfig | None = None) -> Path:
    """Convert `checkpoint` and write a complete folder (config, safetensors weights, processor with CLIP's
    tokenizer and the default label set, code)."""
    from seem_hf.clip_tokenizer import clip_tokenizer
    from seem_hf.processing_utils import check_label_set
    from seem_hf.text_utils import clean_text

    if labels is not None:
        labels = check_label_set(labels, clean_text, name="labels")
    if thing_label_ids is not None:
        if labels is None:
            raise ValueError("thing_label_ids were given without labels: they index the labels (--categories gives "
                             "both).")
        if outside := sorted({i for i in thing_label_ids if not 0 <= int(i) < len(labels)}):
            raise ValueError(f"thing_label_ids {outside} index no label: there are {len(labels)} labels "
                             f"(ids 0 to {len(labels) - 1}).")
    state_dict = load_original_checkpoint(checkpoint)
    check_checkpoint_keys(state_dict, REQUIRED_KEYS, EXPECTED)
    config = config or config_from_original_state_dict(state_dict)
    if labels:
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: index for index, label in enumerate(labels)}
    model = SeemForUniversalSegmentation(config).eval()
    load_state_dict_strictly(model, convert_original_state_dict(state_dict))
    image_processor = SeemImageProcessor(id2label=dict(enumerate(labels)) if labels else None,
                                         thing_label_ids=thing_label_ids)
    processor = SeemProcessor(image_processor, clip_tokenizer())
    return write_converted(output_dir, model, processor)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="seem_focall_v1.pt (or a .safetensors state dict)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--categories", help="a COCO-panoptic JSON whose 'categories' give the default label set "
                        "and which labels are things (e.g. COCO's 133)")
    parser.add_argument("--labels", help="comma-separated default label set (all stuff), instead of --categories")
    arguments = parser.parse_args(argv)
    labels = things = None
    if arguments.categories and arguments.labels:
        parser.error("give --categories or --labels, not both (--categories names the labels and their things)")
    if arguments.categories:
        from seem_hf.conversion import read_categories

        categories = sorted(read_categories(arguments.categories), key=lambda category: category["id"])
        labels = [category["name"] for category in categories]
        things = [index for index, category in enumerate(categories) if category["isthing"]]
    elif arguments.labels:
        labels = [label.strip() for label in arguments.labels.split(",")]
    print(f"Wrote {convert(arguments.checkpoint, arguments.output_dir, labels, things)}")
    if labels is None:
        print("It has no default label set (no --categories or --labels): give each call its labels, e.g. "
              "segmenter(image, labels=['cat', 'dog']), or convert again with --categories (COCO's 133 for the "
              "released model).")


if __name__ == "__main__":
    main()

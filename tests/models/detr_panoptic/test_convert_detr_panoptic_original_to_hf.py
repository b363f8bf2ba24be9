"""The converter from original facebookresearch/detr panoptic checkpoints: strict key map on the original
names and shapes, at full size (meta device) and end to end on a tiny checkpoint."""

from __future__ import annotations

import argparse
import json
import pickle

import pytest
import torch

from seem_hf import DetrPanopticConfig, DetrPanopticForSegmentation, DetrPanopticProcessor
from seem_hf.models.detr_panoptic import convert_detr_panoptic_original_to_hf as converter
from seem_hf.testing import tiny_detr_panoptic_config

from .test_modeling_detr_panoptic import BN, _native_to_timm


def original_state_dict(config: DetrPanopticConfig, backbone: dict[str, torch.Tensor], device="cpu"):
    """The state dict of the original `DETRsegm`, written from its module tree (models/detr.py, transformer.py,
    segmentation.py): `detr.backbone.0.body` is torchvision's ResNet, attention is `nn.MultiheadAttention`
    (fused `in_proj`), the mask head is `MaskHeadSmallConv(dim, fpn_dims, context_dim)`."""
    d, heads = config.d_model, config.encoder_attention_heads
    generator = torch.Generator(device="cpu").manual_seed(0)

    def tensor(*shape):
        if device == "meta":
            return torch.empty(shape, device="meta")
        return torch.randn(shape, generator=generator) * 0.1

    state = {f"detr.backbone.0.body.{name}": value for name, value in backbone.items()}

    def attention(prefix):
        state[f"{prefix}.in_proj_weight"] = tensor(3 * d, d)
        state[f"{prefix}.in_proj_bias"] = tensor(3 * d)
        state[f"{prefix}.out_proj.weight"] = tensor(d, d)
        state[f"{prefix}.out_proj.bias"] = tensor(d)

    def linear(prefix, out_features, in_features):
        state[f"{prefix}.weight"] = tensor(out_features, in_features)
        state[f"{prefix}.bias"] = tensor(out_features)

    def norm(prefix, size):
        state[f"{prefix}.weight"] = 1 + tensor(size)
        state[f"{prefix}.bias"] = tensor(size)

    for i in range(config.encoder_layers):
        layer = f"detr.transformer.encoder.layers.{i}"
        attention(f"{layer}.self_attn")
        linear(f"{layer}.linear1", config.encoder_ffn_dim, d)
        linear(f"{layer}.linear2", d, config.encoder_ffn_dim)
        norm(f"{layer}.norm1", d)
        norm(f"{layer}.norm2", d)
    for i in range(config.decoder_layers):
        layer = f"detr.transformer.decoder.layers.{i}"
        attention(f"{layer}.self_attn")
        attention(f"{layer}.multihead_attn")
        linear(f"{layer}.linear1", config.decoder_ffn_dim, d)
        linear(f"{layer}.linear2", d, config.decoder_ffn_dim)
        for n in (1, 2, 3):
            norm(f"{layer}.norm{n}", d)
    norm("detr.transformer.decoder.norm", d)
    linear("detr.class_embed", config.num_labels + 1, d)
    for i, (out_features, in_features) in enumerate([(d, d), (d, d), (4, d)]):
        linear(f"detr.bbox_embed.layers.{i}", out_features, in_features)
    state["detr.query_embed.weight"] = tensor(config.num_queries, d)
    channels = config.backbone_config.hidden_sizes
    state["detr.input_proj.weight"] = tensor(d, channels[-1], 1, 1)
    state["detr.input_proj.bias"] = tensor(d)
    linear("bbox_attention.q_linear", d, d)
    linear("bbox_attention.k_linear", d, d)
    dim = d + heads
    inter = [dim, d // 2, d // 4, d // 8, d // 16]
    conv_shapes = {1: (dim, dim), 2: (inter[1], dim), 3: (inter[2], inter[1]), 4: (inter[3], inter[2])}
    conv_shapes[5] = (inter[4], inter[3])
    for n, (out_channels, in_channels) in conv_shapes.items():
        state[f"mask_head.lay{n}.weight"] = tensor(out_channels, in_channels, 3, 3)
        state[f"mask_head.lay{n}.bias"] = tensor(out_channels)
        norm(f"mask_head.gn{n}", out_channels)
    state["mask_head.out_lay.weight"] = tensor(1, inter[4], 3, 3)
    state["mask_head.out_lay.bias"] = tensor(1)
    for n, (fpn, out_channels) in enumerate(zip(channels[:3][::-1], inter[1:4]), start=1):
        state[f"mask_head.adapter{n}.weight"] = tensor(out_channels, fpn, 1, 1)
        state[f"mask_head.adapter{n}.bias"] = tensor(out_channels)
    return state


def _torchvision_backbone(model: DetrPanopticForSegmentation, device="cpu"):
    """Backbone tensors under torchvision names (FrozenBatchNorm2d: no num_batches_tracked)."""
    prefix = "detr.model.backbone.model."
    backbone = {}
    for key, value in model.state_dict().items():
        if key.startswith(prefix):
            backbone[_native_to_timm(key[len(prefix) :])] = (
                torch.empty(value.shape, device="meta") if device == "meta" else torch.randn(value.shape) * 0.1
            )
    return backbone


def test_full_size_key_map_is_exact_on_meta():
    config = DetrPanopticConfig()
    with torch.device("meta"):
        model = DetrPanopticForSegmentation(config)
    original = original_state_dict(config, _torchvision_backbone(model, "meta"), device="meta")
    # Each fused attention (in_proj weight and bias) becomes three projections: four tensors more.
    attention_modules = config.encoder_layers + 2 * config.decoder_layers
    assert len(model.state_dict()) - len(original) == 4 * attention_modules
    inferred = converter.config_from_original_state_dict(original)
    for field in ("num_labels", "num_queries", "d_model", "encoder_layers", "decoder_layers", "encoder_ffn_dim"):
        assert getattr(inferred, field) == getattr(config, field), field
    assert inferred.encoder_attention_heads == 8 and list(inferred.backbone_config.depths) == [3, 4, 6, 3]
    converted = converter.convert_original_state_dict(original)
    expected = model.state_dict()
    assert set(converted) == set(expected)
    assert all(converted[key].shape == expected[key].shape for key in expected)


@pytest.fixture
def tiny_original():
    torch.manual_seed(0)
    config = tiny_detr_panoptic_config()
    model = DetrPanopticForSegmentation(config)
    return config, original_state_dict(config, _torchvision_backbone(model))


def test_tiny_conversion_puts_each_tensor_in_place(tiny_original):
    config, original = tiny_original
    model = DetrPanopticForSegmentation(config)
    converter.load_converted(model, converter.convert_original_state_dict(original))
    state = model.state_dict()
    fused = original["detr.transformer.decoder.layers.1.multihead_attn.in_proj_weight"]
    d = config.d_model
    for index, name in enumerate(("q_proj", "k_proj", "v_proj")):
        assert torch.equal(state[f"detr.model.decoder.layers.1.encoder_attn.{name}.weight"], fused[index * d : (index + 1) * d])
    pairs = {
        "detr.class_labels_classifier.weight": "detr.class_embed.weight",
        "detr.model.query_position_embeddings.weight": "detr.query_embed.weight",
        "detr.model.decoder.layernorm.weight": "detr.transformer.decoder.norm.weight",
        "detr.model.encoder.layers.0.final_layer_norm.bias": "detr.transformer.encoder.layers.0.norm2.bias",
        "detr.model.decoder.layers.0.encoder_attn_layer_norm.weight": "detr.transformer.decoder.layers.0.norm2.weight",
        "detr.model.decoder.layers.0.encoder_attn.o_proj.weight": "detr.transformer.decoder.layers.0.multihead_attn.out_proj.weight",
        "detr.model.encoder.layers.0.mlp.fc1.weight": "detr.transformer.encoder.layers.0.linear1.weight",
        "detr.model.backbone.model.encoder.stages.1.layers.0.shortcut.normalization.running_var": "detr.backbone.0.body.layer2.0.downsample.1.running_var",
        "detr.model.backbone.model.embedder.embedder.convolution.weight": "detr.backbone.0.body.conv1.weight",
        "bbox_attention.k_proj.weight": "bbox_attention.k_linear.weight",
        "mask_head.conv1.conv.weight": "mask_head.lay1.weight",
        "mask_head.fpn_stages.2.refine.norm.bias": "mask_head.gn5.bias",
        "mask_head.fpn_stages.0.fpn_adapter.weight": "mask_head.adapter1.weight",
        "mask_head.output_conv.weight": "mask_head.out_lay.weight",
    }
    for ours, theirs in pairs.items():
        assert torch.equal(state[ours], original[theirs]), ours


def test_strict_loading_names_every_bad_key(tiny_original):
    config, original = tiny_original
    converted = converter.convert_original_state_dict(original)
    converted["detr.extra.weight"] = torch.zeros(1)
    del converted["mask_head.output_conv.bias"]
    converted["bbox_attention.q_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError) as error:
        converter.load_converted(DetrPanopticForSegmentation(config), converted)
    message = str(error.value)
    assert "detr.extra.weight" in message and "mask_head.output_conv.bias" in message
    assert "bbox_attention.q_proj.weight: checkpoint (3, 3)" in message


def test_cli_converts_a_checkpoint_end_to_end(tiny_original, tmp_path):
    config, original = tiny_original
    checkpoint = tmp_path / "detr-tiny-panoptic.pth"
    torch.save({"model": original, "args": argparse.Namespace(lr=1e-4, masks=True), "epoch": 24}, checkpoint)
    categories = tmp_path / "categories.json"
    categories.write_text(
        json.dumps({"categories": [{"id": 2, "name": "circle", "isthing": 1, "color": [255, 0, 0]},
                                   {"id": 0, "name": "sky", "isthing": 0, "color": [0, 0, 255]}]})
    )
    config_file = tmp_path / "config.json"
    config.to_json_file(config_file)
    output = tmp_path / "converted"
    converter.main(["--checkpoint", str(checkpoint), "--output-dir", str(output), "--categories", str(categories),
                    "--config", str(config_file)])
    model = DetrPanopticForSegmentation.from_pretrained(output)
    assert torch.equal(model.state_dict()["mask_head.conv1.conv.weight"], original["mask_head.lay1.weight"])
    assert model.config.id2label[2] == "circle" and model.config.id2label[1] == "LABEL_1"
    processor = DetrPanopticProcessor.from_pretrained(output)
    assert processor.thing_label_ids == [2] and processor.label_colors[0] == [0, 0, 255]
    assert processor.image_processor.panoptic_rule == "detr"


def test_checkpoints_are_read_without_running_pickled_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must not run",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"model": Payload()}, handle)
    with pytest.raises(ValueError, match="not a PyTorch checkpoint .*but a Python pickle"):  # never unpickled
        converter.load_original_checkpoint(path)
    torch.save({"model": {"a": 1}}, tmp_path / "not_tensors.pth")
    with pytest.raises(ValueError, match="state dict"):
        converter.load_original_checkpoint(tmp_path / "not_tensors.pth")


def test_unknown_backbone_depth_is_an_error(tiny_original):
    _, original = tiny_original
    with pytest.raises(ValueError, match="layer3 has 2 blocks"):
        converter.config_from_original_state_dict(original)


def test_dc5_comes_from_the_checkpoints_arguments_or_the_flag(tiny_original, tmp_path):
    """A DC5 checkpoint's weights have the plain model's shapes: dilation is read from the pickled training
    arguments, else taken from --dilation, and a file named as DC5 with neither is refused (it would convert
    into a silently wrong model)."""
    _, original = tiny_original
    trained = tmp_path / "checkpoint0299.pth"
    torch.save({"model": original, "args": argparse.Namespace(dilation=True, masks=True)}, trained)
    state_dict, arguments = converter.load_original_checkpoint(trained, with_arguments=True)
    assert set(state_dict) == set(original)
    assert converter.checkpoint_dilation(trained, arguments, None) is True
    with pytest.raises(ValueError, match="leave --dilation out"):
        converter.checkpoint_dilation(trained, arguments, False)
    released = tmp_path / "detr-r50-dc5-panoptic-da08f1b1.pth"
    torch.save({"model": original}, released)
    _, arguments = converter.load_original_checkpoint(released, with_arguments=True)
    assert arguments is None
    with pytest.raises(ValueError, match="pass --dilation"):
        converter.checkpoint_dilation(released, arguments, None)
    assert converter.checkpoint_dilation(released, arguments, True) is True
    assert converter.checkpoint_dilation(tmp_path / "detr-r50-panoptic.pth", None, None) is False
    with torch.device("meta"):
        model = DetrPanopticForSegmentation(DetrPanopticConfig())
    full_size = original_state_dict(model.config, _torchvision_backbone(model, "meta"), device="meta")
    assert converter.config_from_original_state_dict(full_size, dilation=True).dilation

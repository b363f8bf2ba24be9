"""The LSeg converter on a state dict with the original lang-seg names and shapes: strict mapping, and the
converted model's outputs equal a direct computation of LSeg from that state dict (written here from the
original modules' definitions: timm ViT blocks, DPT readout/reassembly, FeatureFusionBlock_custom with
ResidualConvUnit_custom, CLIP's text transformer)."""

import math

import pytest
import torch
from torch.nn import functional as F

from seem_hf import LSegForSemanticSegmentation
from seem_hf.models.lseg.convert_lseg_original_to_hf import (
    config_from_original_state_dict,
    convert,
    convert_original_state_dict,
    load_original_checkpoint,
)
from seem_hf.conversion import load_state_dict_strictly
from seem_hf.testing import tiny_lseg_config

WIDTH, HEADS, MLP, PATCH, BLOCKS, GRID = 32, 4, 37, 16, 4, 4  # the tiny config's ViT (64 px -> 4x4 patches)
FEATURES, FUSION, EMBED = [16, 32, 64, 64], 32, 24
TEXT_WIDTH, TEXT_HEADS, TEXT_MLP, TEXT_LAYERS = 16, 4, 37, 2


def original_state_dict(seed=0) -> dict[str, torch.Tensor]:
    """Random tensors under lang-seg's names and shapes (LSegNet with clip_vitl16_384-style hooks, tiny)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {
        "pretrained.model.cls_token": (1, 1, WIDTH),
        "pretrained.model.pos_embed": (1, 1 + GRID * GRID, WIDTH),
        "pretrained.model.patch_embed.proj.weight": (WIDTH, 3, PATCH, PATCH),
        "pretrained.model.patch_embed.proj.bias": (WIDTH,),
        "pretrained.model.norm.weight": (WIDTH,), "pretrained.model.norm.bias": (WIDTH,),
        "pretrained.model.head.weight": (1000, WIDTH), "pretrained.model.head.bias": (1000,),
        "scratch.head1.weight": (EMBED, FUSION, 1, 1), "scratch.head1.bias": (EMBED,),
        "clip_pretrained.token_embedding.weight": (49408, TEXT_WIDTH),
        "clip_pretrained.positional_embedding": (77, TEXT_WIDTH),
        "clip_pretrained.ln_final.weight": (TEXT_WIDTH,), "clip_pretrained.ln_final.bias": (TEXT_WIDTH,),
        "clip_pretrained.text_projection": (TEXT_WIDTH, EMBED),
        "clip_pretrained.logit_scale": (),
        "clip_pretrained.visual.conv1.weight": (8, 3, 32, 32),  # stands for the unused image tower
    }
    for block in range(BLOCKS):
        prefix = f"pretrained.model.blocks.{block}."
        shapes.update({
            prefix + "norm1.weight": (WIDTH,), prefix + "norm1.bias": (WIDTH,),
            prefix + "attn.qkv.weight": (3 * WIDTH, WIDTH), prefix + "attn.qkv.bias": (3 * WIDTH,),
            prefix + "attn.proj.weight": (WIDTH, WIDTH), prefix + "attn.proj.bias": (WIDTH,),
            prefix + "norm2.weight": (WIDTH,), prefix + "norm2.bias": (WIDTH,),
            prefix + "mlp.fc1.weight": (MLP, WIDTH), prefix + "mlp.fc1.bias": (MLP,),
            prefix + "mlp.fc2.weight": (WIDTH, MLP), prefix + "mlp.fc2.bias": (WIDTH,),
        })
    resize = {1: ("t", 4), 2: ("t", 2), 4: ("c", 3)}  # ConvTranspose k4 s4, k2 s2, Conv 3x3 s2
    for level, features in enumerate(FEATURES, start=1):
        prefix = f"pretrained.act_postprocess{level}."
        shapes.update({
            prefix + "0.project.0.weight": (WIDTH, 2 * WIDTH), prefix + "0.project.0.bias": (WIDTH,),
            prefix + "3.weight": (features, WIDTH, 1, 1), prefix + "3.bias": (features,),
            f"scratch.layer{level}_rn.weight": (FUSION, features, 3, 3),
        })
        if level in resize:
            kernel = resize[level][1]
            shapes[prefix + "4.weight"] = (features, features, kernel, kernel)
            shapes[prefix + "4.bias"] = (features,)
        block = f"scratch.refinenet{level}."
        shapes.update({block + "out_conv.weight": (FUSION, FUSION, 1, 1), block + "out_conv.bias": (FUSION,)})
        for unit in (1, 2):
            for index in (1, 2):
                shapes[f"{block}resConfUnit{unit}.conv{index}.weight"] = (FUSION, FUSION, 3, 3)
                for stat in ("weight", "bias", "running_mean", "running_var"):
                    shapes[f"{block}resConfUnit{unit}.bn{index}.{stat}"] = (FUSION,)
    for layer in range(TEXT_LAYERS):
        prefix = f"clip_pretrained.transformer.resblocks.{layer}."
        shapes.update({
            prefix + "attn.in_proj_weight": (3 * TEXT_WIDTH, TEXT_WIDTH), prefix + "attn.in_proj_bias": (3 * TEXT_WIDTH,),
            prefix + "attn.out_proj.weight": (TEXT_WIDTH, TEXT_WIDTH), prefix + "attn.out_proj.bias": (TEXT_WIDTH,),
            prefix + "ln_1.weight": (TEXT_WIDTH,), prefix + "ln_1.bias": (TEXT_WIDTH,),
            prefix + "ln_2.weight": (TEXT_WIDTH,), prefix + "ln_2.bias": (TEXT_WIDTH,),
            prefix + "mlp.c_fc.weight": (TEXT_MLP, TEXT_WIDTH), prefix + "mlp.c_fc.bias": (TEXT_MLP,),
            prefix + "mlp.c_proj.weight": (TEXT_WIDTH, TEXT_MLP), prefix + "mlp.c_proj.bias": (TEXT_WIDTH,),
        })
    state = {}
    for name, shape in shapes.items():
        tensor = torch.randn(shape, generator=generator) * 0.2
        if name.endswith(("norm1.weight", "norm2.weight", "ln_1.weight", "ln_2.weight", "ln_final.weight", ".bn1.weight",
                          ".bn2.weight", "norm.weight")):
            tensor = 1 + tensor
        if name.endswith("running_var"):
            tensor = tensor.abs() + 0.5
        state[name] = tensor.half() if name.startswith("clip_pretrained") else tensor  # CLIP was loaded on CUDA: fp16
    for level in range(1, 5):
        for unit in (1, 2):
            for index in (1, 2):
                state[f"scratch.refinenet{level}.resConfUnit{unit}.bn{index}.num_batches_tracked"] = torch.tensor(7)
    return state


# ----------------------------------------------------------------- LSeg computed directly from the original names
def _layer_norm(x, state, prefix, eps):
    return F.layer_norm(x, x.shape[-1:], state[prefix + "weight"], state[prefix + "bias"], eps)


def _attention(x, weight, bias, out_weight, out_bias, heads, causal=False):
    batch, length, width = x.shape
    q, k, v = F.linear(x, weight, bias).reshape(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / math.sqrt(width // heads)
    if causal:
        scores = scores.masked_fill(torch.ones(length, length, dtype=torch.bool).triu(1), float("-inf"))
    return F.linear((scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, width), out_weight, out_bias)


def direct_text_features(state, input_ids):
    s = {k: v.float() for k, v in state.items() if k.startswith("clip_pretrained")}
    x = s["clip_pretrained.token_embedding.weight"][input_ids] + s["clip_pretrained.positional_embedding"]
    for layer in range(TEXT_LAYERS):
        p = f"clip_pretrained.transformer.resblocks.{layer}."
        x = x + _attention(_layer_norm(x, s, p + "ln_1.", 1e-5), s[p + "attn.in_proj_weight"], s[p + "attn.in_proj_bias"],
                           s[p + "attn.out_proj.weight"], s[p + "attn.out_proj.bias"], TEXT_HEADS, causal=True)
        hidden = F.linear(_layer_norm(x, s, p + "ln_2.", 1e-5), s[p + "mlp.c_fc.weight"], s[p + "mlp.c_fc.bias"])
        x = x + F.linear(hidden * torch.sigmoid(1.702 * hidden), s[p + "mlp.c_proj.weight"], s[p + "mlp.c_proj.bias"])
    x = _layer_norm(x, s, "clip_pretrained.ln_final.", 1e-5)
    return x[torch.arange(len(x)), input_ids.argmax(-1)] @ s["clip_pretrained.text_projection"]


def direct_logits(state, pixel_values, text_features):
    s = state
    tokens = F.conv2d(pixel_values, s["pretrained.model.patch_embed.proj.weight"], s["pretrained.model.patch_embed.proj.bias"],
                      stride=PATCH).flatten(2).transpose(1, 2)
    x = torch.cat([s["pretrained.model.cls_token"].expand(len(tokens), -1, -1), tokens], 1) + s["pretrained.model.pos_embed"]
    hooked = []
    for block in range(BLOCKS):
        p = f"pretrained.model.blocks.{block}."
        x = x + _attention(_layer_norm(x, s, p + "norm1.", 1e-6), s[p + "attn.qkv.weight"], s[p + "attn.qkv.bias"],
                           s[p + "attn.proj.weight"], s[p + "attn.proj.bias"], HEADS)
        hidden = F.gelu(F.linear(_layer_norm(x, s, p + "norm2.", 1e-6), s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"]))
        x = x + F.linear(hidden, s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"])
        hooked.append(x)
    levels = []
    for level, tokens in enumerate(hooked, start=1):
        p = f"pretrained.act_postprocess{level}."
        readout = torch.cat([tokens[:, 1:], tokens[:, :1].expand_as(tokens[:, 1:])], -1)
        grid = F.gelu(F.linear(readout, s[p + "0.project.0.weight"], s[p + "0.project.0.bias"]))
        grid = grid.transpose(1, 2).reshape(len(grid), WIDTH, GRID, GRID)
        grid = F.conv2d(grid, s[p + "3.weight"], s[p + "3.bias"])
        if level in (1, 2):
            stride = 4 if level == 1 else 2
            grid = F.conv_transpose2d(grid, s[p + "4.weight"], s[p + "4.bias"], stride=stride)
        elif level == 4:
            grid = F.conv2d(grid, s[p + "4.weight"], s[p + "4.bias"], stride=2, padding=1)
        levels.append(F.conv2d(grid, s[f"scratch.layer{level}_rn.weight"], padding=1))

    def unit(x, p):
        out = F.conv2d(F.relu(x), s[p + "conv1.weight"], padding=1)
        out = F.batch_norm(out, s[p + "bn1.running_mean"], s[p + "bn1.running_var"], s[p + "bn1.weight"], s[p + "bn1.bias"])
        out = F.conv2d(F.relu(out), s[p + "conv2.weight"], padding=1)
        out = F.batch_norm(out, s[p + "bn2.running_mean"], s[p + "bn2.running_var"], s[p + "bn2.weight"], s[p + "bn2.bias"])
        return out + x

    def refine(level, x, skip=None):
        p = f"scratch.refinenet{level}."
        if skip is not None:
            x = x + unit(skip, p + "resConfUnit1.")
        x = F.interpolate(unit(x, p + "resConfUnit2."), scale_factor=2, mode="bilinear", align_corners=True)
        return F.conv2d(x, s[p + "out_conv.weight"], s[p + "out_conv.bias"])

    path = refine(4, levels[3])
    for level in (3, 2, 1):
        path = refine(level, path, levels[level - 1])
    image = F.normalize(F.conv2d(path, s["scratch.head1.weight"], s["scratch.head1.bias"]), dim=1)
    logits = torch.einsum("bchw,kc->bkhw", image, F.normalize(text_features, dim=-1)) / 0.07
    return F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=True)


# ------------------------------------------------------------------------------------------------------ tests
def _converted_model(state):
    config = tiny_lseg_config()
    model = LSegForSemanticSegmentation(config).eval()
    load_state_dict_strictly(model, convert_original_state_dict(state))
    return model


def test_every_key_is_mapped_or_knowingly_dropped_and_outputs_equal_a_direct_computation():
    state = original_state_dict()
    converted = convert_original_state_dict(state)
    model = _converted_model(state)
    assert set(converted) == set(model.state_dict())
    assert all(tensor.dtype != torch.float16 for tensor in converted.values())
    input_ids = torch.tensor([[49406, 320, 1125, 49407] + [49407] * 73, [49406, 2368, 49407] + [49407] * 74])
    pixel_values = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        text = model.get_text_features(input_ids)
        expected_text = direct_text_features(state, input_ids)
        torch.testing.assert_close(text, expected_text, rtol=1e-4, atol=1e-4)
        logits = model(pixel_values=pixel_values, input_ids=input_ids).logits
        expected = direct_logits(state, pixel_values, expected_text)
    assert logits.shape == expected.shape == (2, 2, 64, 64)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)  # fp32 rounding of two implementations


def test_fusion_blocks_are_mapped_in_reverse_order():
    converted = convert_original_state_dict(original_state_dict())
    state = original_state_dict()
    assert torch.equal(converted["neck.fusion_stage.layers.0.projection.weight"], state["scratch.refinenet4.out_conv.weight"])
    assert torch.equal(converted["neck.fusion_stage.layers.3.projection.weight"], state["scratch.refinenet1.out_conv.weight"])
    assert torch.equal(converted["text_encoder.text_projection.weight"], state["clip_pretrained.text_projection"].float().t())


def test_a_changed_or_incomplete_checkpoint_is_an_error_naming_the_keys(tmp_path):
    state = original_state_dict()
    del state["scratch.refinenet2.out_conv.bias"]
    state["scratch.surprise.weight"] = torch.zeros(3)
    with pytest.raises(ValueError) as error:
        _converted_model(state)
    assert "neck.fusion_stage.layers.2.projection.bias" in str(error.value) and "scratch.surprise.weight" in str(error.value)


def test_lightning_checkpoint_converts_to_a_folder_the_auto_classes_load(tmp_path):
    from transformers import AutoModel, AutoProcessor

    state = original_state_dict()
    checkpoint = tmp_path / "demo.ckpt"
    torch.save({"state_dict": {"net." + key: value for key, value in state.items()}, "epoch": 3}, checkpoint)
    assert set(load_original_checkpoint(checkpoint)) == set(state)
    with pytest.raises(ValueError, match="Unrecognised LSeg image encoder"):
        config_from_original_state_dict(state)  # tiny widths are not a released variant
    config = tiny_lseg_config()
    config.to_json_file(tmp_path / "config.json")
    from seem_hf.models.lseg.convert_lseg_original_to_hf import main

    main(["--checkpoint", str(checkpoint), "--output-dir", str(tmp_path / "out"), "--labels", "dog, grass,other",
          "--config", str(tmp_path / "config.json")])
    model, processor = AutoModel.from_pretrained(tmp_path / "out"), AutoProcessor.from_pretrained(tmp_path / "out")
    assert model.config.id2label == {0: "dog", 1: "grass", 2: "other"} and processor.id2label == model.config.id2label
    inputs = processor(images=torch.rand(3, 64, 64), size={"height": 64, "width": 64}, return_tensors="pt")
    assert inputs["input_ids"].shape == (3, 77)
    with torch.no_grad():
        expected = direct_logits(state, inputs["pixel_values"], direct_text_features(state, inputs["input_ids"]))
        torch.testing.assert_close(model(**inputs).logits, expected, rtol=1e-4, atol=1e-4)


def test_unreadable_checkpoint_is_explained(tmp_path):
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": argparse_like()}, path)
    with pytest.raises(ValueError, match="pickles Python objects besides tensors"):
        load_original_checkpoint(path)


class _Opaque:
    pass


def argparse_like():
    return _Opaque()

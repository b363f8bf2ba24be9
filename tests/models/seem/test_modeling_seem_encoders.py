"""SEEM's encoders: the released model's part sizes, and each part against an independent computation (the stock
transformers modules run on their own, and the pixel decoder written out from its state dict)."""

import math

import torch
from torch.nn import functional as F
from transformers import CLIPTextModel, FocalNetModel

from seem_hf.models.seem.configuration_seem import SeemConfig
from seem_hf.models.seem.modeling_seem_encoders import SeemFocalNetBackbone, SeemLanguageEncoder, SeemPixelDecoder
from seem_hf.testing import tiny_seem_config


def _count(module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def test_released_part_sizes():
    """SEEM v1 Focal-L, from the shapes of `seem_focall_v1.pt`: backbone 205.75 M, language 63.43 M (CLIP text
    tower, lang_proj, logit_scale), pixel decoder 32.19 M."""
    config = SeemConfig()
    with torch.device("meta"):
        parts = SeemFocalNetBackbone(config), SeemLanguageEncoder(config), SeemPixelDecoder(config)
    assert [round(_count(part) / 1e6, 2) for part in parts] == [205.75, 63.43, 32.19]
    # The pixel decoder from the checkpoint's key shapes (input_proj, 6 encoder layers, adapters, layers, mask
    # features), exactly.
    width, ffn = 512, 2048
    encoder_layer = (3 * width * width + 3 * width) + (width * width + width) + (ffn * width + ffn)
    encoder_layer += (width * ffn + width) + 4 * width
    expected = (1536 * width + width) + 6 * encoder_layer + sum(c * width for c in (192, 384, 768)) + 3 * 2 * width
    expected += 4 * (width * width * 9 + 2 * width) + (width * width * 9 + width)
    assert _count(parts[2]) == expected


def test_backbone_maps_are_the_normed_pre_downsampling_stage_outputs():
    torch.manual_seed(0)
    config = tiny_seem_config()
    backbone = SeemFocalNetBackbone(config).eval()
    with torch.no_grad():
        for norm in backbone.hidden_states_norms:  # non-trivial affine parameters
            norm.weight.normal_(1, 0.2), norm.bias.normal_(0, 0.2)
    stock = FocalNetModel(config.backbone_config, add_pooling_layer=False).eval()
    stock.load_state_dict(backbone.focalnet.state_dict())
    captured = []
    for stage in stock.encoder.stages:
        stage.register_forward_hook(lambda module, inputs, output: captured.append((output[1], inputs[1])))
    pixel_values = torch.randn(2, 3, 97, 161)  # sides not divisible by 4 or 32
    with torch.no_grad():
        ours = backbone(pixel_values)
        last = stock(pixel_values).last_hidden_state
    norms = list(backbone.hidden_states_norms) + [stock.layernorm]
    for index, (feature, (tokens, (height, width))) in enumerate(zip(ours, captured)):
        expected = norms[index](tokens).transpose(1, 2).reshape(2, -1, height, width)
        assert feature.shape == (2, config.backbone_channels[index], height, width)
        assert torch.equal(feature, expected)
    assert torch.equal(ours[3].flatten(2).transpose(1, 2), last)  # the stock model's own final output
    assert [f.shape[-1] for f in ours] == [41, 21, 11, 6]


def test_language_encoder_pools_the_end_of_text_token():
    torch.manual_seed(0)
    config = tiny_seem_config()
    encoder = SeemLanguageEncoder(config).eval()
    ids = torch.tensor([[49406, 320, 1125, 49407] + [49407] * 73, [49406, 2368, 49407] + [49407] * 74])
    with torch.no_grad():
        tokens, pooled = encoder.encode_tokens(ids)
        stock = CLIPTextModel(config.text_config).eval()
        stock.load_state_dict(encoder.text_model.state_dict())
        hidden = stock(input_ids=ids).last_hidden_state
        expected = hidden[torch.arange(2), torch.tensor([3, 2])] @ encoder.lang_proj.weight.t()
        torch.testing.assert_close(pooled, expected)
        torch.testing.assert_close(encoder.encode_text(ids), F.normalize(expected, dim=-1))
        # causal attention: the padding after the end-of-text token does not change the tokens before it
        short = encoder.encode_tokens(ids[:, :10])[0]
        torch.testing.assert_close(short[0, :4], tokens[0, :4], rtol=1e-5, atol=1e-6)


def _direct_pixel_decoder(state, features, heads, layers):
    """MaskFormer's TransformerEncoderPixelDecoder, written from its definition over the state dict."""
    x = F.conv2d(features[3], state["input_proj.weight"], state["input_proj.bias"])
    batch, width, height, columns = x.shape
    # sine positions (256 per axis for SEEM), normalised, scale 2 pi, temperature 10000
    steps = width // 2
    y = torch.arange(1, height + 1, dtype=torch.float32)[:, None].expand(height, columns) / (height + 1e-6) * 2 * math.pi
    xx = torch.arange(1, columns + 1, dtype=torch.float32)[None, :].expand(height, columns) / (columns + 1e-6) * 2 * math.pi
    dim_t = 10000 ** (2 * (torch.arange(steps) // 2) / steps)
    pos_x, pos_y = xx[..., None] / dim_t, y[..., None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=3).flatten(2)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=3).flatten(2)
    pos = torch.cat((pos_y, pos_x), dim=2).flatten(0, 1)[None].expand(batch, -1, -1)
    src = x.flatten(2).transpose(1, 2)
    for layer in range(layers):
        p = f"transformer.layers.{layer}."
        q = F.linear(src + pos, state[p + "self_attn.q_proj.weight"], state[p + "self_attn.q_proj.bias"])
        k = F.linear(src + pos, state[p + "self_attn.k_proj.weight"], state[p + "self_attn.k_proj.bias"])
        v = F.linear(src, state[p + "self_attn.v_proj.weight"], state[p + "self_attn.v_proj.bias"])
        split = lambda t: t.reshape(batch, -1, heads, width // heads).transpose(1, 2)  # noqa: E731
        attended = (split(q) @ split(k).transpose(-1, -2) / math.sqrt(width // heads)).softmax(-1) @ split(v)
        attended = F.linear(attended.transpose(1, 2).reshape(batch, -1, width), state[p + "self_attn.o_proj.weight"],
                            state[p + "self_attn.o_proj.bias"])
        src = F.layer_norm(src + attended, (width,), state[p + "self_attn_layer_norm.weight"],
                           state[p + "self_attn_layer_norm.bias"])
        hidden = F.linear(F.relu(F.linear(src, state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"])),
                          state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"])
        src = F.layer_norm(src + hidden, (width,), state[p + "final_layer_norm.weight"], state[p + "final_layer_norm.bias"])

    def conv_norm(x, prefix, groups, relu):
        weight = state[prefix + "0.weight"]
        x = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
        x = F.group_norm(x, groups, state[prefix + "1.weight"], state[prefix + "1.bias"])
        return F.relu(x) if relu else x

    groups = 8
    out = conv_norm(src.transpose(1, 2).reshape(batch, width, height, columns), "layer_4.", groups, True)
    scales = [out]
    for level in (2, 1, 0):
        lateral = conv_norm(features[level], f"adapters.{level}.", groups, False)
        out = conv_norm(lateral + F.interpolate(out, size=lateral.shape[-2:], mode="nearest"), f"layers.{level}.",
                        groups, True)
        scales.append(out)
    return F.conv2d(out, state["mask_features.weight"], state["mask_features.bias"], padding=1), scales[:3]


def test_pixel_decoder_equals_a_direct_computation():
    torch.manual_seed(0)
    config = tiny_seem_config(pixel_decoder_layers=2)
    decoder = SeemPixelDecoder(config).eval()
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    features = [torch.randn(2, c, 64 // 2**i, 96 // 2**i) for i, c in enumerate(config.backbone_channels)]
    with torch.no_grad():
        mask_features, multi_scale = decoder(features)
        expected_mask, expected_scales = _direct_pixel_decoder(decoder.state_dict(), features, config.num_heads, 2)
    assert mask_features.shape == (2, 32, 64, 96)
    assert [tuple(s.shape[-2:]) for s in multi_scale] == [(8, 12), (16, 24), (32, 48)]
    torch.testing.assert_close(mask_features, expected_mask, rtol=1e-4, atol=1e-4)
    for ours, theirs in zip(multi_scale, expected_scales):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)

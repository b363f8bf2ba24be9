"""SEEM's encoders: the released model's part sizes, and the backbone and language encoder against the stock
transformers modules run on their own. (The pixel decoder, with the rest of the model, is checked against SEEM
written out from an original state dict in test_convert_seem.py.)"""

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
        # same operations in both models; a tolerance, since kernels may be picked differently per call and CPU
        torch.testing.assert_close(feature, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours[3].flatten(2).transpose(1, 2), last, rtol=1e-5, atol=1e-6)  # stock model's own
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

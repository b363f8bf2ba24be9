"""The converter from the released `seem_focall_v1.pt`: strict on the full-size key list (933 keys, every one mapped
or knowingly dropped), and on a tiny state dict with the original names the converted model equals SEEM written
out directly from that state dict (tests/models/seem/original_seem.py)."""

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel, AutoProcessor

from seem_hf.conversion import load_state_dict_strictly
from seem_hf.models.seem.configuration_seem import SeemConfig
from seem_hf.models.seem.convert_seem_original_to_hf import (
    config_from_original_state_dict,
    convert,
    convert_original_state_dict,
)
from seem_hf.models.seem.modeling_seem import SeemForUniversalSegmentation
from seem_hf.testing import tiny_seem_config

from .original_seem import P, generic_forward, original_shapes, random_original_state_dict


def test_every_released_key_is_mapped_or_knowingly_dropped():
    config = SeemConfig()
    shapes = original_shapes(config)
    assert len(shapes) == 933
    prefixes = {"backbone.": 504, "sem_seg_head.pixel_decoder.": 97, P + "lang_encoder.": 150}
    for prefix, count in prefixes.items():
        assert sum(key.startswith(prefix) for key in shapes) == count, prefix
    state = {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
    state["dilation_kernel"] = torch.ones(1, 1, 3, 3)
    converted = convert_original_state_dict(state)
    with torch.device("meta"):
        model = SeemForUniversalSegmentation(config_from_original_state_dict(state))
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert {key: tuple(value.shape) for key, value in converted.items()} == expected
    # the architecture read off the weights is the released default
    read = config_from_original_state_dict(state).to_dict()
    for key, value in SeemConfig().to_dict().items():
        if key not in ("transformers_version", "backbone_config", "text_config"):
            assert read[key] == value, key
    assert read["backbone_config"]["depths"] == [2, 2, 18, 2] and read["text_config"]["num_hidden_layers"] == 12


def test_converted_model_equals_a_direct_computation(tmp_path):
    config = tiny_seem_config(pixel_decoder_layers=2, decoder_layers=4)
    state = random_original_state_dict(config)
    path = tmp_path / "seem_tiny.pt"
    torch.save(state, path)
    folder = convert(path, tmp_path / "converted", labels=["circle", "square"], thing_label_ids=[0], config=config)
    model, processor = AutoModel.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)
    assert processor.default_labels == ["circle", "square"]
    pixels = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    ids = torch.full((3, 77), 49407)
    ids[:, 0], ids[:, 1], ids[:, 2] = 49406, torch.tensor([320, 1125, 2368]), 269
    ids[:, 3] = 49407
    with torch.no_grad():
        outputs = model(pixel_values=pixels, input_ids=ids)
        mask_features, scales = model.get_image_features(pixels)
        logits, masks, expected_features, expected_scales = generic_forward(state, config, pixels, ids)
    torch.testing.assert_close(mask_features, expected_features, rtol=1e-4, atol=1e-4)
    for ours, theirs in zip(scales, expected_scales):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(outputs.masks_queries_logits, masks, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(outputs.class_queries_logits, logits, rtol=1e-4, atol=1e-4)
    # the visual-prompt projections are x @ W in the original
    x = torch.randn(5, config.hidden_dim)
    for level in range(3):
        torch.testing.assert_close(model.decoder.mask_spatial_embed[level](x), x @ state[P + f"mask_sptial_embed.{level}"])


def test_conversion_errors_name_the_keys(tmp_path):
    config = tiny_seem_config()
    state = random_original_state_dict(config)
    truncated = {key: value for key, value in state.items() if not key.startswith("backbone.norm3")}
    truncated["sem_seg_head.predictor.extra_head.weight"] = torch.zeros(2)
    with pytest.raises(ValueError) as error:
        load_state_dict_strictly(SeemForUniversalSegmentation(config), convert_original_state_dict(truncated))
    assert "backbone.focalnet.layernorm.weight" in str(error.value) and "decoder.extra_head.weight" in str(error.value)
    fork = dict(state, **{P + "transformer_ffn_layers_adapters.0.fc1.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match="fine-tuning fork"):
        convert_original_state_dict(fork)
    save_file({key: value.contiguous() for key, value in state.items() if value.ndim}, tmp_path / "weights.safetensors")
    with pytest.raises(ValueError, match="logit_scale"):  # a 0-d tensor left out: named as missing
        convert(tmp_path / "weights.safetensors", tmp_path / "out", config=config)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        convert(tmp_path / "bad.pt", tmp_path / "out", config=config)

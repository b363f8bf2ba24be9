"""Checkpoints as people hold them, given to the three converters: the state dict flat or under `model`,
`state_dict` (Lightning), `module` (DeepSpeed) or nested, its keys prefixed by a wrapper (`module.` of DDP, `model.`
or `net.` of a Lightning module, `_orig_mod.` of torch.compile), in fp16 or bf16, as .pth, .ckpt or .safetensors.
Each converts to the weights of the plain file; what is no state dict, or is already converted, is named."""

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel

from seem_hf import DetrPanopticForSegmentation
from seem_hf.models.detr_panoptic import convert_detr_panoptic_original_to_hf as detr_converter
from seem_hf.models.lseg import convert_lseg_original_to_hf as lseg_converter
from seem_hf.models.seem import convert_seem_original_to_hf as seem_converter
from seem_hf.testing import tiny_detr_panoptic_config, tiny_lseg_config, tiny_seem_config
from tests.models.detr_panoptic.test_convert_detr_panoptic_original_to_hf import (
    _torchvision_backbone,
)
from tests.models.detr_panoptic.test_convert_detr_panoptic_original_to_hf import (
    original_state_dict as detr_original,
)
from tests.models.lseg.test_convert_lseg_original_to_hf import original_state_dict as lseg_original
from tests.models.seem.original_seem import random_original_state_dict


def _originals():
    torch.manual_seed(0)
    detr_config = tiny_detr_panoptic_config()
    return {
        "seem": (seem_converter, tiny_seem_config(), random_original_state_dict(tiny_seem_config())),
        "lseg": (lseg_converter, tiny_lseg_config(), lseg_original()),
        "detr": (detr_converter, detr_config,
                 detr_original(detr_config, _torchvision_backbone(DetrPanopticForSegmentation(detr_config)))),
    }


ORIGINALS = _originals()
WRAPPINGS = {
    "detectron2 / DETR": lambda state: {"model": state, "iteration": 10},
    "Lightning": lambda state: {"state_dict": state, "epoch": 3, "global_step": 7},
    "DeepSpeed": lambda state: {"module": state, "buffer_names": []},
    "plain model_state_dict": lambda state: {"model_state_dict": state, "epoch": 1},
    "DDP prefix": lambda state: {f"module.{key}": value for key, value in state.items()},
    "Lightning module prefix": lambda state: {"state_dict": {f"model.{key}": value for key, value in state.items()}},
    "Lightning DDP": lambda state: {"state_dict": {f"net.module.{key}": value for key, value in state.items()}},
    "nested": lambda state: {"model": {"module": {f"_orig_mod.{key}": value for key, value in state.items()}}},
    "fp16": lambda state: {key: value.half() if value.is_floating_point() else value for key, value in state.items()},
    "bf16": lambda state: {"model": {k: v.bfloat16() if v.is_floating_point() else v for k, v in state.items()}},
}


@pytest.mark.parametrize("model", ORIGINALS)
@pytest.mark.parametrize("wrapping", WRAPPINGS)
def test_wrapped_checkpoints_read_as_the_plain_state_dict(model, wrapping, tmp_path):
    converter, _, state = ORIGINALS[model]
    path = tmp_path / "checkpoint.ckpt"
    torch.save(WRAPPINGS[wrapping](state), path)
    read = converter.load_original_checkpoint(path)
    read = read[0] if isinstance(read, tuple) else read
    assert set(read) == set(state)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(wrapping)
    for key, value in state.items():
        expected = value.to(dtype) if dtype is not None and value.is_floating_point() else value
        assert torch.equal(read[key], expected), key


@pytest.mark.parametrize("model", ORIGINALS)
def test_a_ddp_lightning_checkpoint_converts_to_the_plain_ones_weights(model, tmp_path):
    converter, config, state = ORIGINALS[model]
    torch.save(state, tmp_path / "plain.pth")
    torch.save({"state_dict": {f"model.module.{key}": value for key, value in state.items()}, "epoch": 2},
               tmp_path / "wrapped.ckpt")
    save_file({f"module.{key}": value.contiguous() for key, value in state.items()}, tmp_path / "ddp.safetensors")
    folders = [converter.convert(tmp_path / name, tmp_path / name.replace(".", "_"), config=config.__class__.from_dict(
        config.to_dict())) for name in ("plain.pth", "wrapped.ckpt", "ddp.safetensors")]
    weights = [AutoModel.from_pretrained(folder).state_dict() for folder in folders]
    for other in weights[1:]:
        assert other.keys() == weights[0].keys()
        assert all(torch.equal(other[key], weights[0][key]) for key in other)


@pytest.mark.parametrize("model", ORIGINALS)
def test_what_holds_no_state_dict_is_named(model, tmp_path):
    converter, _, state = ORIGINALS[model]
    path = tmp_path / "trainer.pth"
    torch.save({"weights": state, "epoch": 4, "lr": 0.1}, path)
    with pytest.raises(ValueError) as raised:
        converter.load_original_checkpoint(path)
    message = str(raised.value)
    assert str(path) in message and "'weights': 'dict'" in message and "'epoch': 'int'" in message
    assert "state_dict" in message and "torch.save(state_dict" in message
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match=r"holds an empty dict \['state_dict'\]"):
        converter.load_original_checkpoint(path)


@pytest.mark.parametrize("model", ORIGINALS)
def test_an_already_converted_folder_is_named_as_such(model, tmp_path):
    converter, config, state = ORIGINALS[model]
    torch.save(state, tmp_path / "original.pth")
    folder = converter.convert(tmp_path / "original.pth", tmp_path / "converted", config=config)
    with pytest.raises(ValueError) as raised:
        converter.convert(folder / "model.safetensors", tmp_path / "again", config=config)
    assert "already converted to seem_hf" in str(raised.value) and "from_pretrained" in str(raised.value)

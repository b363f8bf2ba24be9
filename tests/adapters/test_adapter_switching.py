"""One base, many adapters: one loaded base model serves two domains by switching PEFT adapters, each adapter
giving the outputs of its own fine-tuned folder, the disabled model giving the base's, and the saved folders loading
onto the base through transformers' route (`model.load_adapter(folder)`) and PEFT's (`PeftModel.from_pretrained`,
through `seem_hf.adapters.load_adapter` where bottleneck layers need registering). Switching is PEFT's
(`PeftModel.set_adapter` / `disable_adapter`); transformers' own `set_adapter` needs peft >= 0.22.

The adapters are not trained: their weights are moved by seeded noise, so that each gives outputs of its own; what
is tested is switching, not learning."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch
from packaging import version
from peft import PeftModel

from seem_hf import DetrPanopticForSegmentation, SeemForUniversalSegmentation
from seem_hf.adapters import load_adapter, lora_by_pattern, prepare_for_fine_tuning
from seem_hf.testing import FIXTURES

# Same weights through the same PEFT layers in one process: equal up to float32 summation order, should PEFT sum
# an adapter's branch in another order when a second adapter sits beside it.
SAME = {"rtol": 1e-5, "atol": 1e-6}


def _prompts(count: int) -> torch.Tensor:
    ids = torch.full((count, 77), 49407)
    ids[:, 0], ids[:, 1] = 49406, torch.arange(320, 320 + count)
    return ids


MODELS = {
    "seem": {
        "cls": SeemForUniversalSegmentation,
        "folder": FIXTURES / "tiny-random-seem",
        "inputs": lambda: {"pixel_values": torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)),
                           "input_ids": _prompts(3)},
        "outputs": ("class_queries_logits", "masks_queries_logits"),
        # two domains adapted two ways: bottlenecks on the head, and LoRA on the backbone with them
        "adapters": {
            "sand": lambda model: prepare_for_fine_tuning(model, "freeze_backbone_adapt_head", bottleneck_size=4,
                                                          lora_rank=2),
            "snow": lambda model: prepare_for_fine_tuning(model, "adapt_backbone_adapt_head", bottleneck_size=4,
                                                          lora_rank=2),
        },
    },
    "detr_panoptic": {
        "cls": DetrPanopticForSegmentation,
        "folder": FIXTURES / "tiny-random-detr_panoptic",
        "inputs": lambda: {"pixel_values": torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))},
        "outputs": ("logits", "pred_boxes", "pred_masks"),
        # a strategy's adapter and plain LoRA on the mask head (what PEFT alone can load). A second adapter can only
        # target layers that are not inside the first one's bottleneck blocks (PEFT matches names, and a wrapped
        # block's layers move under `base_layer`).
        "adapters": {
            "sand": lambda model: prepare_for_fine_tuning(model, "freeze_backbone_adapt_head", bottleneck_size=4,
                                                          lora_rank=2),
            "snow": lambda model: lora_by_pattern(
                model, r"mask_head\..*|bbox_attention\.(q|k)_proj", rank=2, trainable_norms=None,
                trainable_modules=["detr.class_labels_classifier"]),
        },
    },
}


def _save_adapter(spec: dict, name: str, seed: int, folder) -> None:
    """A 'fine-tuned' adapter folder: the strategy's adapter with every trainable tensor moved by seeded noise."""
    model = spec["adapters"][name](spec["cls"].from_pretrained(spec["folder"]).eval())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(folder)


def _outputs(model, spec) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        outputs = model(**spec["inputs"]())
    return {name: outputs[name] for name in spec["outputs"]}


def _assert_outputs(actual: dict, expected: dict) -> None:
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, **SAME, msg=name)


def _differ(first: dict, second: dict) -> bool:
    return any((first[name] - second[name]).abs().max() > 1e-3 for name in first)


def _adapter_folders(spec: dict, tmp_path) -> dict:
    folders = {name: tmp_path / name for name in spec["adapters"]}
    for seed, (name, folder) in enumerate(folders.items()):
        _save_adapter(spec, name, seed, folder)
    return folders


def _own_outputs(spec: dict, folders: dict) -> dict:
    """Each fine-tuned folder on its own, loaded onto a fresh base the way seem_hf documents it."""
    return {name: _outputs(load_adapter(spec["cls"].from_pretrained(spec["folder"]), folder).eval(), spec)
            for name, folder in folders.items()}


@pytest.mark.parametrize("model_name", list(MODELS))
def test_one_base_serves_two_domains_by_switching_adapters(model_name, tmp_path):
    spec = MODELS[model_name]
    folders = _adapter_folders(spec, tmp_path)
    own = _own_outputs(spec, folders)
    base_outputs = _outputs(spec["cls"].from_pretrained(spec["folder"]).eval(), spec)
    assert _differ(own["sand"], own["snow"]) and _differ(own["sand"], base_outputs)

    model = load_adapter(spec["cls"].from_pretrained(spec["folder"]), folders["sand"], adapter_name="sand").eval()
    model.load_adapter(folders["snow"], adapter_name="snow")  # PEFT's own: the layers are already adapter layers
    for name in ("sand", "snow", "sand"):  # and back again
        model.set_adapter(name)
        assert model.active_adapter == name
        _assert_outputs(_outputs(model, spec), own[name])
    with model.disable_adapter():
        _assert_outputs(_outputs(model, spec), base_outputs)
    _assert_outputs(_outputs(model, spec), own["sand"])  # enabled again on leaving the block


@pytest.mark.parametrize("model_name", list(MODELS))
def test_a_saved_adapter_folder_loads_through_transformers_own_route(model_name, tmp_path):
    spec = MODELS[model_name]
    folders = _adapter_folders(spec, tmp_path)
    own = _own_outputs(spec, folders)
    for name, folder in folders.items():
        model = spec["cls"].from_pretrained(spec["folder"]).eval()
        model.load_adapter(str(folder))
        _assert_outputs(_outputs(model, spec), own[name])


@pytest.mark.skipif(version.parse(importlib.metadata.version("peft")) < version.parse("0.22"),
                    reason="transformers' set_adapter / disable_adapters need peft >= 0.22 (requirements/lock.txt: "
                           "0.21.2)")
def test_transformers_switches_the_adapters_it_loaded(tmp_path):
    spec = MODELS["seem"]
    folders = _adapter_folders(spec, tmp_path)
    own = _own_outputs(spec, folders)
    model = spec["cls"].from_pretrained(spec["folder"]).eval()
    for name, folder in folders.items():
        model.load_adapter(str(folder), adapter_name=name)
    for name in ("sand", "snow", "sand"):
        model.set_adapter(name)
        _assert_outputs(_outputs(model, spec), own[name])
    model.disable_adapters()
    _assert_outputs(_outputs(model, spec), _outputs(spec["cls"].from_pretrained(spec["folder"]).eval(), spec))


@pytest.mark.parametrize("model_name", list(MODELS))
def test_peft_model_disables_its_adapter_to_the_base(model_name, tmp_path):
    spec = MODELS[model_name]
    _save_adapter(spec, "sand", 0, tmp_path)
    peft_model = load_adapter(spec["cls"].from_pretrained(spec["folder"]), tmp_path).eval()
    base_outputs = _outputs(spec["cls"].from_pretrained(spec["folder"]).eval(), spec)
    with peft_model.disable_adapter():
        _assert_outputs(_outputs(peft_model, spec), base_outputs)
    assert _differ(_outputs(peft_model, spec), base_outputs)


def test_a_plain_lora_folder_loads_with_peft_alone(tmp_path):
    spec = MODELS["detr_panoptic"]
    _save_adapter(spec, "snow", 1, tmp_path)
    expected = _outputs(load_adapter(spec["cls"].from_pretrained(spec["folder"]), tmp_path).eval(), spec)
    loaded = PeftModel.from_pretrained(spec["cls"].from_pretrained(spec["folder"]), tmp_path).eval()
    _assert_outputs(_outputs(loaded, spec), expected)

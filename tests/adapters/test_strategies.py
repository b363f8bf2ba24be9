"""The fine-tuning strategies on DETR-panoptic: what trains, parameter counts computed independently, outputs at
step 0, training really moves the adapters, and PEFT's save / load / disable / unload."""

import re

import pytest
import torch
from peft import PeftModel
from torch import nn

from seem_hf import DetrPanopticForSegmentation
from seem_hf.adapters import (
    FineTuningStrategy,
    SequentialBottleneckAdapter,
    count_parameters,
    load_adapter,
    lora_by_pattern,
    prepare_for_fine_tuning,
)
from seem_hf.testing import tiny_detr_panoptic_config

BOTTLENECK, RANK = 16, 4


def _model():
    """A tiny model with every weight and bias random, like a pretrained one (fresh DETR biases are zero, which
    leaves some paths without gradient at the first step)."""
    torch.manual_seed(0)
    model = DetrPanopticForSegmentation(tiny_detr_panoptic_config()).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    return model


def _inputs():
    generator = torch.Generator().manual_seed(1)
    pixel_values = torch.randn(2, 3, 64, 64, generator=generator)
    masks = torch.zeros(2, 64, 64)
    masks[0, :32], masks[1, 32:] = 1, 1
    labels = [
        {"class_labels": torch.tensor([1, 5]), "boxes": torch.tensor([[0.5, 0.25, 1, 0.5], [0.5, 0.75, 1, 0.5]]),
         "masks": masks}
        for _ in range(2)
    ]
    return pixel_values, labels


def _numel(modules) -> int:
    return sum(parameter.numel() for module in modules for parameter in module.parameters())


def _expected_counts(strategy: FineTuningStrategy) -> tuple[int, int]:
    """(adapter parameters, parameters trained in full), from the module shapes of a fresh model."""
    model = _model()
    modules = dict(model.named_modules())
    backbone = modules["detr.model.backbone"]
    head_adapters = sum(
        2 * module.o_proj.out_features * BOTTLENECK if hasattr(module, "o_proj") else 2 * module.fc2.out_features * BOTTLENECK
        for name, module in modules.items()
        if re.fullmatch(r"detr\.model\.(encoder|decoder)\.layers\.\d+\.(self_attn|encoder_attn|mlp)", name)
    )

    def lora(module):
        if isinstance(module, nn.Linear):
            return RANK * (module.in_features + module.out_features)
        return RANK * module.in_channels * module.kernel_size[0] * module.kernel_size[1] + RANK * module.out_channels

    head_lora = sum(
        lora(module)
        for name, module in modules.items()
        if isinstance(module, (nn.Linear, nn.Conv2d))
        and (name.startswith("mask_head.") or name in ("bbox_attention.q_proj", "detr.model.input_projection"))
    )
    backbone_lora = sum(lora(m) for m in backbone.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    head_full = _numel([model]) - _numel([backbone])
    head_small = _numel(
        [m for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.GroupNorm))]
        + [model.detr.class_labels_classifier, model.detr.bbox_predictor, model.detr.model.query_position_embeddings]
    )
    return {
        FineTuningStrategy.FULL: (0, _numel([model])),
        FineTuningStrategy.FREEZE_BACKBONE_TUNE_HEAD: (0, head_full),
        FineTuningStrategy.FREEZE_BACKBONE_ADAPT_HEAD: (head_adapters + head_lora, head_small),
        FineTuningStrategy.ADAPT_BACKBONE_TUNE_HEAD: (backbone_lora, head_full),
        FineTuningStrategy.ADAPT_BACKBONE_ADAPT_HEAD: (backbone_lora + head_adapters + head_lora, head_small),
    }[strategy]


@pytest.mark.parametrize("strategy", list(FineTuningStrategy))
def test_each_strategy_trains_what_it_says_and_starts_from_the_pretrained_outputs(strategy):
    pixel_values, labels = _inputs()
    base = _model()
    with torch.no_grad():
        before = base(pixel_values=pixel_values)
    backbone_before = {k: v.clone() for k, v in base.detr.model.backbone.state_dict().items()}
    model = prepare_for_fine_tuning(_model(), strategy, bottleneck_size=BOTTLENECK, lora_rank=RANK)
    counts = count_parameters(model)
    assert (counts["adapters"], counts["full"]) == _expected_counts(strategy)
    assert counts["total"] == _numel([base]) + counts["adapters"]

    with torch.no_grad():
        start = model(pixel_values=pixel_values)
    # Zero-initialised adapters add exact zeros, but the adapted graph runs other kernels (PEFT's wrapped linear
    # layers) whose float32 summation order may differ from the base model's: 6e-8 seen on one machine.
    for name in ("logits", "pred_boxes", "pred_masks"):
        torch.testing.assert_close(start[name], before[name], rtol=1e-5, atol=1e-6)

    # Every trainable tensor must receive a gradient (the original fork's adapters silently never trained), and a
    # frozen backbone must not change. Two steps: zero-initialised up-projections get a gradient first, the
    # down-projections once the up-projections are non-zero.
    model.train()
    gradient_sums = {name: 0.0 for name, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        model(pixel_values=pixel_values, labels=labels).loss.backward()
        for name, parameter in model.named_parameters():
            if parameter.requires_grad and parameter.grad is not None:
                gradient_sums[name] += parameter.grad.abs().sum().item()
        optimizer.step()
    # DETR's first decoder self-attention sees all-zero query content: every value is its bias, so the outputs
    # do not depend on the q, k, v weights and they get zero gradient.
    dead = r".*decoder\.(modules_to_save\.default\.)?layers\.0\.self_attn\.[qkv]_proj(\.base_layer)?\.weight"
    untrained = [name for name, total in gradient_sums.items() if total == 0 and not re.fullmatch(dead, name)]
    assert not untrained, "\n".join(untrained)
    backbone = dict(model.named_modules())[
        next(name for name, _ in model.named_modules() if name.endswith("detr.model.backbone"))
    ]
    weights_after = {k.replace(".base_layer", ""): v for k, v in backbone.state_dict().items() if "lora_" not in k}
    changed = [k for k, v in backbone_before.items() if not torch.equal(weights_after[k], v)]
    assert bool(changed) == (strategy is FineTuningStrategy.FULL), changed


def _trained_adapter(strategy):
    pixel_values, labels = _inputs()
    model = prepare_for_fine_tuning(_model(), strategy, bottleneck_size=BOTTLENECK, lora_rank=RANK).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        model(pixel_values=pixel_values, labels=labels).loss.backward()
        optimizer.step()
    return model.eval()


def test_saved_adapter_reloads_with_equal_outputs_and_only_the_helper_can_load_it(tmp_path):
    model = _trained_adapter(FineTuningStrategy.ADAPT_BACKBONE_ADAPT_HEAD)
    pixel_values, _ = _inputs()
    with torch.no_grad():
        expected = model(pixel_values=pixel_values)
    model.save_pretrained(tmp_path)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    reloaded = load_adapter(_model(), tmp_path)
    with torch.no_grad():
        outputs = reloaded(pixel_values=pixel_values)
    assert (outputs.pred_masks - expected.pred_masks).abs().max() == 0
    assert (outputs.logits - expected.logits).abs().max() == 0
    assert (outputs.logits - _model()(pixel_values=pixel_values).logits).abs().max() > 1e-4  # training mattered
    with pytest.raises(ValueError, match="not supported"):  # why load_adapter exists
        PeftModel.from_pretrained(_model(), tmp_path)


def test_disable_adapter_gives_the_base_model_unload_keeps_what_trained_in_full_and_merge_refuses():
    model = _trained_adapter(FineTuningStrategy.FREEZE_BACKBONE_ADAPT_HEAD)
    pixel_values, _ = _inputs()
    base = _model()
    with torch.no_grad():
        with model.disable_adapter():
            disabled = model(pixel_values=pixel_values)
        base_outputs = base(pixel_values=pixel_values)
    for name in ("logits", "pred_boxes", "pred_masks"):  # other kernels, same maths: float32 summation order
        torch.testing.assert_close(disabled[name], base_outputs[name], rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        adapted = model(pixel_values=pixel_values).logits
    with pytest.raises(NotImplementedError, match="cannot be merged"):
        model.merge_and_unload()
    with torch.no_grad():  # refused before anything was merged
        torch.testing.assert_close(model(pixel_values=pixel_values).logits, adapted, rtol=0, atol=0)
    unloaded = model.unload()
    assert not any(isinstance(m, SequentialBottleneckAdapter) for m in unloaded.modules())
    base_state, unloaded_state = base.state_dict(), unloaded.state_dict()
    assert unloaded_state.keys() == base_state.keys()
    changed = {name for name in base_state if not torch.equal(base_state[name], unloaded_state[name])}
    trained_in_full = re.compile(
        r"detr\.(class_labels_classifier|bbox_predictor|model\.query_position_embeddings)\..*|.*(norm|layernorm)\.(weight|bias)"
    )
    assert changed and not [name for name in changed if not trained_in_full.fullmatch(name)]


def test_lora_by_pattern_trains_norms_and_named_modules():
    model = lora_by_pattern(
        _model(), r"detr\.model\.decoder\.layers\.\d+\.(self_attn|encoder_attn)\.(q|v)_proj", rank=RANK,
        trainable_norms=r"detr\.model\.decoder\..*", trainable_modules=["detr.class_labels_classifier"],
    )
    base = _model()
    layers = base.config.decoder_layers
    hidden = base.config.d_model
    expected_lora = layers * 2 * 2 * RANK * 2 * hidden
    norms = [m for n, m in base.named_modules() if n.startswith("detr.model.decoder.") and isinstance(m, nn.LayerNorm)]
    counts = count_parameters(model)
    assert counts["adapters"] == expected_lora
    assert counts["full"] == _numel(norms) + _numel([base.detr.class_labels_classifier])
    pixel_values, _ = _inputs()
    with torch.no_grad():
        model.base_model.model.detr.model.decoder.layers[0].encoder_attn.q_proj.lora_B["default"].weight.fill_(0.1)
        expected = model(pixel_values=pixel_values).logits
        merged = model.merge_and_unload()  # plain LoRA merges
        torch.testing.assert_close(merged(pixel_values=pixel_values).logits, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="matches"):
        lora_by_pattern(_model(), r"no\.such\.layer")


def test_unknown_strategy_and_model_without_targets_raise():
    with pytest.raises(ValueError, match="not a valid FineTuningStrategy"):
        prepare_for_fine_tuning(_model(), "adapt_everything")
    with pytest.raises(ValueError, match="_adapter_targets"):
        prepare_for_fine_tuning(nn.Linear(2, 2), "full")


@pytest.mark.parametrize("strategy", list(FineTuningStrategy))
def test_lseg_text_tower_never_trains_and_the_backbone_only_when_asked(strategy):
    from seem_hf import LSegForSemanticSegmentation
    from seem_hf.testing import tiny_lseg_config

    torch.manual_seed(0)
    model = prepare_for_fine_tuning(LSegForSemanticSegmentation(tiny_lseg_config()), strategy, lora_rank=RANK)
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    assert not [name for name in trainable if "text_encoder" in name]
    in_backbone = [name for name in trainable if ".dpt." in f".{name}"]
    if strategy is FineTuningStrategy.FULL:
        assert in_backbone and not [name for name in in_backbone if "lora_" in name]
    elif strategy.adapts_backbone:
        assert in_backbone and all("lora_" in name for name in in_backbone)
    else:
        assert not in_backbone
    assert any(name.endswith(("head.weight", "head.modules_to_save.default.weight")) for name in trainable)

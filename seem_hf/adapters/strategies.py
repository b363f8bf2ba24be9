"""Fine-tuning strategies: which parts of a model train, and the adapters that let the rest stay frozen.

A model says where its parts are with a class attribute `_adapter_targets`, a dict of regular expressions
matched (`re.fullmatch`) against module names (see `AdapterTargets`). Everything here works from those names, so
the same four strategies apply to every model in the package:

| strategy                      | backbone            | head                                                      |
|-------------------------------|---------------------|-----------------------------------------------------------|
| `freeze_backbone_tune_head`   | frozen              | every parameter trains                                    |
| `freeze_backbone_adapt_head`  | frozen              | bottleneck adapters + LoRA, norms and prediction heads    |
| `adapt_backbone_tune_head`    | LoRA                | every parameter trains                                    |
| `adapt_backbone_adapt_head`   | LoRA                | bottleneck adapters + LoRA, norms and prediction heads    |
| `full`                        | trains              | trains                                                    |

A language encoder (`frozen`) never trains; parts a model's recipe keeps at their pretrained weights
(`pretrained_frozen`: SEEM's pixel decoder) are frozen in the four strategies and train only under `full`.
Adapted strategies return a `peft.PeftModel`, whose
`save_pretrained` writes only what trained; `load_adapter` reloads it (PEFT does not store the custom bottleneck
layer mapping, so `PeftModel.from_pretrained` alone cannot).
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from seem_hf.adapters.bottleneck import ParallelBottleneckAdapter, SequentialBottleneckAdapter

NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)
LORA_TYPES = (nn.Linear, nn.Conv2d)


@contextmanager
def quiet_peft():
    """PEFT warns about every custom-module target ("Unsupported layer type ... at your own risk") and calls a
    deprecated transformers property; both are expected here and would bury the user's own warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unsupported layer type")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        yield


class FineTuningStrategy(str, Enum):
    FREEZE_BACKBONE_TUNE_HEAD = "freeze_backbone_tune_head"
    FREEZE_BACKBONE_ADAPT_HEAD = "freeze_backbone_adapt_head"
    ADAPT_BACKBONE_TUNE_HEAD = "adapt_backbone_tune_head"
    ADAPT_BACKBONE_ADAPT_HEAD = "adapt_backbone_adapt_head"
    FULL = "full"

    @property
    def adapts_backbone(self) -> bool:
        return self.value.startswith("adapt_backbone")

    @property
    def adapts_head(self) -> bool:
        return self.value.endswith("adapt_head")


@dataclass(frozen=True)
class AdapterTargets:
    """Regular expressions over a model's module names.

    backbone: the image backbone's root module(s); LoRA goes on its Linear and Conv2d layers when adapted.
    frozen: modules that never train (a language encoder).
    pretrained_frozen: modules the model's own recipe keeps frozen besides the backbone (SEEM freezes its pixel
        decoder); frozen in the four strategies, trained under `full` (needed when starting from random weights).
    bottleneck: blocks followed by a sequential bottleneck adapter (attention, MLP).
    parallel_bottleneck: blocks that get a bottleneck adapter in parallel (SEEM's mask-embedding MLP).
    head_lora: head layers (Linear, Conv2d) adapted with LoRA when the head is adapted.
    head_trainable: head modules that train in full even when the head is adapted: the prediction layers, whose
        label set usually changes when fine-tuning.
    """

    backbone: str
    frozen: str | None = None
    pretrained_frozen: str | None = None
    bottleneck: str | None = None
    parallel_bottleneck: str | None = None
    head_lora: str | None = None
    head_trainable: str | None = None


def adapter_targets_of(model: nn.Module) -> AdapterTargets:
    targets = getattr(model, "_adapter_targets", None)
    if targets is None:
        raise ValueError(f"{type(model).__name__} does not declare _adapter_targets; use lora_by_pattern instead.")
    return AdapterTargets(**targets)


def _lora_capable(module: nn.Module) -> bool:
    """Linear and ungrouped Conv2d layers: PEFT's LoRA cannot adapt depthwise or grouped convolutions (FocalNet's
    focal layers), whose rank would have to be a multiple of the groups."""
    return isinstance(module, LORA_TYPES) and getattr(module, "groups", 1) == 1


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, NORM_TYPES)


def _matching(model: nn.Module, pattern: str | None, accept=None) -> list[str]:
    """Names of the modules whose name matches `pattern` (`re.fullmatch`) and that `accept` (default: any)."""
    if pattern is None:
        return []
    return [
        name
        for name, module in model.named_modules()
        if re.fullmatch(pattern, name) and (accept is None or accept(module))
    ]


def _under(name: str, roots: list[str]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def _parameterised_roots(model: nn.Module, excluded: list[str]) -> list[str]:
    """The largest submodules that hold parameters and contain no excluded module: 'the head'."""
    roots = []

    def visit(prefix: str, module: nn.Module):
        for child_name, child in module.named_children():
            name = f"{prefix}{child_name}"
            if _under(name, excluded):
                continue
            if any(_under(root, [name]) for root in excluded):
                visit(name + ".", child)
            elif any(True for _ in child.parameters()):
                roots.append(name)
        for parameter_name, _ in module.named_parameters(recurse=False):
            raise ValueError(f"{prefix}{parameter_name} is a bare parameter beside the backbone; wrap it in a module.")

    visit("", model)
    return roots


def _unambiguous(model: nn.Module, names: list[str]) -> list[str]:
    """`names` rewritten so that PEFT's `modules_to_save` rule (a module is saved when its name *ends with* a
    listed name) picks these modules only: a name that is also the tail of another module's name ("decoder" of
    "pixel_decoder") is replaced by its children that hold parameters, recursively."""
    all_names = [name for name, _ in model.named_modules()]
    result = []
    for name in names:
        if not any(other.endswith(name) and not _under(other, [name]) for other in all_names):
            result.append(name)
            continue
        module = model.get_submodule(name)
        if any(True for _ in module.parameters(recurse=False)):
            raise ValueError(f"Module {name!r} holds parameters and its name is the tail of another module's name; "
                             "PEFT cannot save it alone. Rename one of them.")
        children = []
        for child, sub in module.named_children():
            # PEFT cannot wrap a container: list its members instead
            members = list(sub.named_children()) if isinstance(sub, (nn.ModuleList, nn.ModuleDict)) else [("", sub)]
            children += [f"{name}.{child}" + (f".{member}" if member else "") for member, part in members
                         if any(True for _ in part.parameters())]
        result += _unambiguous(model, children)
    return result


def _bottleneck_mapping(model: nn.Module, sequential: list[str], parallel: list[str]) -> dict[type, type]:
    modules = dict(model.named_modules())
    mapping = {type(modules[name]): SequentialBottleneckAdapter for name in sequential}
    for name in parallel:
        if mapping.get(type(modules[name])) is SequentialBottleneckAdapter:
            raise ValueError(f"{type(modules[name]).__name__} is a target of both sequential and parallel adapters.")
        mapping[type(modules[name])] = ParallelBottleneckAdapter
    if clash := [kind.__name__ for kind in mapping if issubclass(kind, LORA_TYPES)]:
        raise ValueError(f"Bottleneck adapters cannot wrap plain {clash} layers; target their parent block.")
    return mapping


def _refuse_merging_bottlenecks(peft_model: PeftModel) -> PeftModel:
    """Make `merge_and_unload` / `merge_adapter` refuse before touching anything when bottleneck adapters are
    present; otherwise PEFT merges the LoRA layers it meets first and stops at the first bottleneck, leaving a
    half-merged model. (`_check_merge_allowed` is the check PEFT itself runs before merging.)"""
    tuner = peft_model.base_model
    original_check = tuner._check_merge_allowed

    def check_merge_allowed():
        original_check()
        if any(isinstance(module, SequentialBottleneckAdapter) for module in tuner.model.modules()):
            raise NotImplementedError(
                "Bottleneck adapters are non-linear and cannot be merged; use unload() to remove them, or keep the "
                "PeftModel."
            )

    tuner._check_merge_allowed = check_merge_allowed
    return peft_model


ADAPTER_LABELS_NAME = "adapter_labels.json"


def _carry_labels(peft_model: PeftModel) -> PeftModel:
    """Make `save_pretrained` write the model's label set (`config.id2label`) beside the adapter
    (`adapter_labels.json`): PEFT saves no `config.json`, so the labels an adapter was trained for (a classifier
    resized to the data's labels by `set_label_set`, trained in the adapter's `modules_to_save`) were lost, and the
    folder loaded onto the base under the base's labels. `apply_adapter_labels` reads them back."""
    original_save = peft_model.save_pretrained

    def save_pretrained(save_directory, *args, **kwargs):
        result = original_save(save_directory, *args, **kwargs)
        config = getattr(peft_model.get_base_model(), "config", None)
        id2label = getattr(config, "id2label", None)
        if kwargs.get("is_main_process", True) and id2label:
            import json
            from pathlib import Path

            labels = {"model_type": getattr(config, "model_type", None),
                      "id2label": {str(index): name for index, name in sorted(id2label.items())}}
            path = Path(save_directory) / ADAPTER_LABELS_NAME
            path.write_text(json.dumps(labels, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return result

    peft_model.save_pretrained = save_pretrained
    return peft_model


def adapter_labels(adapter_path) -> dict[int, str] | None:
    """The label set an adapter folder was saved with (`adapter_labels.json`), or None (no such file, or not a
    local folder)."""
    import json
    from pathlib import Path

    path = Path(str(adapter_path)) / ADAPTER_LABELS_NAME
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    return {int(index): name for index, name in saved["id2label"].items()}


def apply_adapter_labels(model: nn.Module, adapter_path) -> str:
    """Give `model` the label set the adapter at `adapter_path` was trained for, before its weights load: a model
    with `set_label_set` (DETR-panoptic: the classifier's rows follow the labels) is relabelled by it, others
    (SEEM, LSeg: labels are text) take the `id2label`. Returns what changed ('' when nothing did)."""
    id2label = adapter_labels(adapter_path)
    config = getattr(model, "config", None)
    if id2label is None or config is None or id2label == dict(config.id2label):
        return ""
    if hasattr(model, "set_label_set"):
        return model.set_label_set(id2label)
    config.id2label = dict(id2label)
    config.label2id = {name: index for index, name in id2label.items()}
    return f"Labels set to the adapter's {len(id2label)}: {list(id2label.values())[:10]}"


def prepare_for_fine_tuning(
    model: nn.Module,
    strategy: FineTuningStrategy | str,
    bottleneck_size: int = 64,
    lora_rank: int = 8,
    lora_alpha: int | None = None,
    dropout: float = 0.0,
) -> nn.Module:
    """Freeze, adapt or unfreeze `model` according to `strategy`; returns the model to train.

    The head's adapters are bottlenecks of width `bottleneck_size` (zero-initialised up-projection, so training
    starts from the pretrained model's outputs) and LoRA of rank `lora_rank` on the head's convolutions and
    projections; the backbone's are LoRA of rank `lora_rank`. Norm layers of the head train with the adapters.
    """
    strategy = FineTuningStrategy(strategy)
    targets = adapter_targets_of(model)
    backbone = _matching(model, targets.backbone)
    frozen = _matching(model, targets.frozen)
    if not backbone:
        raise ValueError(f"No module of {type(model).__name__} matches its backbone pattern {targets.backbone!r}.")
    model.requires_grad_(True)
    for name in frozen:
        model.get_submodule(name).requires_grad_(False)
    if strategy is FineTuningStrategy.FULL:
        return model
    pretrained = _matching(model, targets.pretrained_frozen)
    for name in pretrained:
        model.get_submodule(name).requires_grad_(False)
    frozen = frozen + pretrained
    if not (strategy.adapts_backbone or strategy.adapts_head):
        for name in backbone:
            model.get_submodule(name).requires_grad_(False)
        return model

    lora_targets, modules_to_save, rank_pattern = [], [], {}
    sequential = parallel = []
    if strategy.adapts_backbone:
        lora_targets += [
            name
            for name, module in model.named_modules()
            if _lora_capable(module) and _under(name, backbone)
        ]
    if strategy.adapts_head:
        sequential, parallel = _matching(model, targets.bottleneck), _matching(model, targets.parallel_bottleneck)
        lora_targets += _matching(model, targets.head_lora, _lora_capable)
        adapted = sequential + parallel
        trainable = _matching(model, targets.head_trainable)
        kept_whole = backbone + frozen + trainable
        norms = [name for name in _matching(model, r".*", _is_norm) if not _under(name, kept_whole)]
        if inside := [name for name in norms if _under(name, adapted)]:
            raise ValueError(f"Norm layers {inside} sit inside adapted blocks; PEFT cannot train them there.")
        modules_to_save += trainable + norms
        rank_pattern = {re.escape(name): bottleneck_size for name in adapted}
    else:
        modules_to_save += _parameterised_roots(model, backbone + frozen)

    config = LoraConfig(
        r=lora_rank,
        lora_alpha=lora_alpha or lora_rank,
        lora_dropout=dropout,
        target_modules=sorted(lora_targets + sequential + parallel),
        modules_to_save=sorted(_unambiguous(model, modules_to_save)) or None,
        rank_pattern=rank_pattern,
        alpha_pattern=dict(rank_pattern),
        bias="none",
    )
    if sequential or parallel:
        config._register_custom_module(_bottleneck_mapping(model, sequential, parallel))
    with quiet_peft():
        return _carry_labels(_refuse_merging_bottlenecks(get_peft_model(model, config)))


def lora_by_pattern(
    model: nn.Module,
    target_pattern: str,
    rank: int = 8,
    alpha: int | None = None,
    dropout: float = 0.0,
    trainable_norms: str | None = r".*",
    trainable_modules: list[str] | None = None,
) -> PeftModel:
    """LoRA on every Linear and Conv2d whose name matches `target_pattern` (`re.fullmatch`), with the norm layers
    whose names match `trainable_norms` and the modules in `trainable_modules` trained in full."""
    targets = _matching(model, target_pattern, _lora_capable)
    if not targets:
        raise ValueError(f"No Linear or Conv2d layer of {type(model).__name__} matches {target_pattern!r}.")
    norms = _matching(model, trainable_norms, _is_norm)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha or rank,
        lora_dropout=dropout,
        target_modules=targets,
        modules_to_save=sorted(norms + list(trainable_modules or ())) or None,
        bias="none",
    )
    with quiet_peft():
        return _carry_labels(get_peft_model(model, config))


def adapter_config_for(model: nn.Module, adapter_path: str, **kwargs) -> LoraConfig:
    """The saved `LoraConfig` of an adapter made by `prepare_for_fine_tuning`, with the bottleneck layers
    registered again on the module types its targets name (PEFT does not store custom layers)."""
    config = LoraConfig.from_pretrained(adapter_path, **kwargs)
    targets = getattr(model, "_adapter_targets", None)
    if targets is not None:
        targets = AdapterTargets(**targets)
        # PEFT saves the shortest name suffixes that pick out exactly the targeted modules.
        saved = config.target_modules or ()

        def targeted(name: str) -> bool:
            if isinstance(saved, str):
                return re.fullmatch(saved, name) is not None
            return any(name == suffix or name.endswith("." + suffix) for suffix in saved)

        sequential = [name for name in _matching(model, targets.bottleneck) if targeted(name)]
        parallel = [name for name in _matching(model, targets.parallel_bottleneck) if targeted(name)]
        if sequential or parallel:
            config._register_custom_module(_bottleneck_mapping(model, sequential, parallel))
    return config


def load_adapter(model: nn.Module, adapter_path: str, is_trainable: bool = False, **kwargs) -> PeftModel:
    """`PeftModel.from_pretrained` for adapters saved by `prepare_for_fine_tuning` (see `adapter_config_for`).
    transformers' own route works too: `AutoModel.from_pretrained(adapter_folder)` or `model.load_adapter(folder)`
    (seem_hf models register the bottleneck layers themselves), also as remote code without seem_hf."""
    config = adapter_config_for(model, adapter_path)
    apply_adapter_labels(model, adapter_path)
    with quiet_peft():
        return _carry_labels(_refuse_merging_bottlenecks(
            PeftModel.from_pretrained(model, adapter_path, config=config, is_trainable=is_trainable, **kwargs)
        ))


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameter counts: `total`, `trainable`, and trainable ones split into `adapters` (LoRA and bottleneck
    weights) and `full` (modules trained as they are)."""
    counts = {"total": 0, "trainable": 0, "adapters": 0, "full": 0}
    for name, parameter in model.named_parameters():
        # PEFT trains a copy of each module it trains in full (`modules_to_save`) beside the frozen original:
        # the model has the parameters once.
        if ".modules_to_save." not in name:
            counts["total"] += parameter.numel()
        if parameter.requires_grad:
            counts["trainable"] += parameter.numel()
            counts["adapters" if "lora_" in name else "full"] += parameter.numel()
    return counts


def describe_parameters(model: nn.Module) -> str:
    counts = count_parameters(model)
    return (
        f"trainable {counts['trainable'] / 1e6:.3f} M of {counts['total'] / 1e6:.3f} M parameters "
        f"({counts['adapters'] / 1e6:.3f} M in adapters, {counts['full'] / 1e6:.3f} M trained in full)"
    )


__all__ = [
    "ADAPTER_LABELS_NAME",
    "AdapterTargets",
    "FineTuningStrategy",
    "adapter_config_for",
    "adapter_labels",
    "adapter_targets_of",
    "apply_adapter_labels",
    "count_parameters",
    "describe_parameters",
    "load_adapter",
    "lora_by_pattern",
    "prepare_for_fine_tuning",
]

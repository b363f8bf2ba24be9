"""Optimiser parameter groups of the papers' recipes: a smaller learning rate for the backbone (SEEM and DETR
use 0.1x), and no weight decay on norms, biases and embeddings."""

from __future__ import annotations

import torch
from torch import nn

_NO_DECAY_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d, nn.Embedding)


def parameter_groups(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    backbone_prefixes: tuple[str, ...] = (),
    backbone_multiplier: float = 0.1,
) -> list[dict]:
    """Trainable parameters in four groups: (backbone or not) x (decayed or not). A parameter is in the backbone
    when its name starts with one of `backbone_prefixes`; it is not decayed when it is a bias or belongs to a
    norm or an embedding."""
    no_decay = set()
    for module_name, module in model.named_modules():
        for name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if isinstance(module, _NO_DECAY_TYPES) or name == "bias" or "norm" in type(module).__name__.lower():
                no_decay.add(full)
    groups: dict[tuple[bool, bool], list[torch.Tensor]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            key = (name.startswith(backbone_prefixes) if backbone_prefixes else False, name in no_decay)
            groups.setdefault(key, []).append(parameter)
    return [
        {
            "params": parameters,
            "lr": learning_rate * (backbone_multiplier if in_backbone else 1.0),
            "weight_decay": 0.0 if undecayed else weight_decay,
        }
        for (in_backbone, undecayed), parameters in sorted(groups.items())
    ]


__all__ = ["parameter_groups"]

"""The papers' optimisation recipes: per-part learning-rate multipliers (SEEM and DETR give the backbone and the
language encoder 0.1x, LSeg gives its head 10x), no weight decay on norms, biases and embeddings, and SEEM's
warm-up then multi-step decay."""

from __future__ import annotations

import bisect

import torch
from torch import nn

_NO_DECAY_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d, nn.Embedding)


def _in_part(name: str, prefix: str) -> bool:
    """`prefix` names a module path; PEFT wraps models as `base_model.model.<name>`, so match it at any depth."""
    return f".{name}".find(f".{prefix.rstrip('.')}.") >= 0


def parameter_groups(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    lr_multipliers: dict[str, float] | None = None,
) -> list[dict]:
    """Trainable parameters grouped by (learning-rate multiplier, decayed or not).

    `lr_multipliers` maps module paths (`"detr.model.backbone"`) to a factor on `learning_rate`; the first path
    a parameter lies under wins, others get 1. A parameter is not decayed when it is a bias or belongs to a norm
    or an embedding. Frozen parameters are left out.
    """
    lr_multipliers = lr_multipliers or {}
    no_decay = set()
    for module_name, module in model.named_modules():
        for name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if isinstance(module, _NO_DECAY_TYPES) or name == "bias" or "norm" in type(module).__name__.lower():
                no_decay.add(full)
    groups: dict[tuple[float, bool], list[torch.Tensor]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            multiplier = next((m for prefix, m in lr_multipliers.items() if _in_part(name, prefix)), 1.0)
            groups.setdefault((multiplier, name in no_decay), []).append(parameter)
    return [
        {"params": parameters, "lr": learning_rate * multiplier, "weight_decay": 0.0 if undecayed else weight_decay}
        for (multiplier, undecayed), parameters in sorted(groups.items())
    ]


def warmup_multistep_schedule(
    optimizer: torch.optim.Optimizer,
    num_training_steps: int,
    warmup_steps: int = 10,
    milestones: tuple[float, ...] = (0.88889, 0.96296),
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """SEEM's `WarmupMultiStepLR`: a linear warm-up from 0 over `warmup_steps`, then the rate times
    `gamma ** k` after the k-th milestone (milestones are fractions of `num_training_steps`)."""
    steps = sorted(int(fraction * num_training_steps) for fraction in milestones)

    def factor(step: int) -> float:
        warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        return warmup * gamma ** bisect.bisect_right(steps, step)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


__all__ = ["parameter_groups", "warmup_multistep_schedule"]

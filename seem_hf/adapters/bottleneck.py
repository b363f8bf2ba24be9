"""Bottleneck adapters as PEFT LoRA custom modules.

PEFT has no bottleneck (Houlsby) adapter and its registry of tuner types is closed, but LoRA accepts custom
layer classes for module types it does not know (`LoraConfig._register_custom_module`). These layers reuse
LoRA's bookkeeping: `lora_A` is the down-projection, `lora_B` the up-projection, `r` the bottleneck width. So
`get_peft_model`, `save_pretrained`, `PeftModel.from_pretrained` (through `load_adapter`), `disable_adapter`,
`set_adapter` and `unload` work unchanged. Merging is impossible (the adapter is non-linear) and raises.
"""

from __future__ import annotations

import torch
from peft.tuners.lora import LoraLayer
from torch import nn


def _linear_features(module: nn.Module) -> tuple[int, int]:
    """(input features of the first Linear, output features of the last Linear) inside `module`."""
    linears = [layer for layer in module.modules() if isinstance(layer, nn.Linear)]
    if not linears:
        raise ValueError(f"A bottleneck adapter needs a module with Linear layers, got {type(module).__name__}.")
    return linears[0].in_features, linears[-1].out_features


class SequentialBottleneckAdapter(nn.Module, LoraLayer):
    """`y = f(x); y + up(ReLU(down(dropout(y)))) * alpha / r`, after any block `f` (attention, MLP).

    When `f` returns a tuple (attention with its weights), the adapter applies to the first element. `up` starts
    at zero, so the wrapped model computes exactly what it did before training. No biases: PEFT stores LoRA
    tensors as 2-D matrices.
    """

    def __init__(self, base_layer: nn.Module, adapter_name: str, config=None, r: int = 64, lora_alpha: int = 64, **kwargs):
        super().__init__()
        LoraLayer.__init__(self, base_layer)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, r, lora_alpha, getattr(config, "lora_dropout", 0.0))

    def _features(self) -> tuple[int, int]:
        _, output_features = _linear_features(self.get_base_layer())
        return output_features, output_features

    def update_layer(self, adapter_name: str, r: int, lora_alpha: int, lora_dropout: float = 0.0, **kwargs):
        input_features, output_features = self._features()
        self.r[adapter_name], self.lora_alpha[adapter_name] = r, lora_alpha
        self.scaling[adapter_name] = lora_alpha / r
        self.lora_dropout[adapter_name] = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        self.lora_A[adapter_name] = nn.Linear(input_features, r, bias=False)
        self.lora_B[adapter_name] = nn.Linear(r, output_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A[adapter_name].weight, a=5**0.5)
        nn.init.zeros_(self.lora_B[adapter_name].weight)
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters)

    def _delta(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """The active adapters' sum, or None when none of them adapts this layer (another adapter of the model
        is active: PEFT lets two adapters target different layers)."""
        delta = None
        for name in self.active_adapters:
            if name in self.lora_A:
                down = self.lora_A[name](self.lora_dropout[name](inputs.to(self.lora_A[name].weight.dtype)))
                branch = self.lora_B[name](nn.functional.relu(down)) * self.scaling[name]
                delta = branch if delta is None else delta + branch
        return delta

    def forward(self, *args, **kwargs):
        outputs = self.base_layer(*args, **kwargs)
        if self.disable_adapters or self.merged:
            return outputs
        first = outputs[0] if isinstance(outputs, tuple) else outputs
        delta = self._delta(first)
        adapted = first if delta is None else first + delta.to(first.dtype)
        return (adapted, *outputs[1:]) if isinstance(outputs, tuple) else adapted

    def merge(self, *args, **kwargs):
        raise NotImplementedError("A bottleneck adapter is non-linear and cannot be merged; use unload() instead.")

    def unmerge(self, *args, **kwargs):
        raise NotImplementedError("A bottleneck adapter is never merged.")


class ParallelBottleneckAdapter(SequentialBottleneckAdapter):
    """`f(x) + up(ReLU(down(dropout(x)))) * alpha / r`: a branch beside `f` (SEEM's mask-embedding MLP)."""

    def _features(self) -> tuple[int, int]:
        return _linear_features(self.get_base_layer())

    def forward(self, inputs: torch.Tensor, *args, **kwargs):
        outputs = self.base_layer(inputs, *args, **kwargs)
        if self.disable_adapters or self.merged:
            return outputs
        delta = self._delta(inputs)
        return outputs if delta is None else outputs + delta.to(outputs.dtype)


__all__ = ["ParallelBottleneckAdapter", "SequentialBottleneckAdapter"]

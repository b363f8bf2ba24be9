"""Adapters through PEFT: bottleneck adapters as LoRA custom modules, LoRA by name pattern, and the fine-tuning
strategies (backbone frozen or adapted x head adapted or fully tuned)."""

from seem_hf.adapters.bottleneck import ParallelBottleneckAdapter, SequentialBottleneckAdapter
from seem_hf.adapters.strategies import (
    AdapterTargets,
    FineTuningStrategy,
    adapter_targets_of,
    count_parameters,
    describe_parameters,
    load_adapter,
    lora_by_pattern,
    prepare_for_fine_tuning,
)

__all__ = [
    "AdapterTargets",
    "FineTuningStrategy",
    "ParallelBottleneckAdapter",
    "SequentialBottleneckAdapter",
    "adapter_targets_of",
    "count_parameters",
    "describe_parameters",
    "load_adapter",
    "lora_by_pattern",
    "prepare_for_fine_tuning",
]

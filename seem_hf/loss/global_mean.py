"""The one definition of "the mean over the batch" for every loss of the package, with any number of processes.

Each loss is a sum over items (matched targets, sentences, visual prompts, labelled pixels, weighted queries)
divided by how many items there are. Under data parallelism every process holds part of the batch, and DDP
*averages* the gradients of the P processes. A process that divides its own sum by

    denominator = (number of items summed over every process, at least 1) / P

gives, once averaged, sum over processes / P of (local sum x P / global count) = global sum / global count: the
loss, and so the gradient, of one process on the union of the batches. One process: the batch's own count.

Gradient accumulation is a different matter: transformers' Trainer divides each micro-batch's loss by the number
of accumulation steps, so k micro-batches give the mean of k per-micro-batch means. That equals the mean over the
k micro-batches together only when they hold the same number of items (same number of labelled pixels for LSeg,
of targets for the set losses); docs/training.md says so.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from contextlib import contextmanager

import torch

_SYNC_COUNTS = contextvars.ContextVar("sync_counts", default=True)


@contextmanager
def local_target_count():
    """Inside this block each loss normalises by this process's own counts, with no collective call. Evaluation
    needs it: processes may run different numbers of batches, and a collective inside the loss would then pair with
    an unrelated one on another process."""
    token = _SYNC_COUNTS.set(False)
    try:
        yield
    finally:
        _SYNC_COUNTS.reset(token)


def global_mean_denominators(
    local_counts: Sequence[float], device: torch.device | str, minimum: Sequence[float] | float = 1.0
) -> list[float]:
    """For each count of items this process sums a loss over, the denominator that makes `local sum / denominator`
    this process's share of the mean over the global batch (see the module docstring): the count summed over every
    process of an initialised `torch.distributed` group (one `all_reduce` for all counts, so every process must
    call this the same number of times), at least `minimum` (per count or for all), divided by the number of
    processes. Without a group, inside `local_target_count()` or without autograd (a loss only reported, as in
    evaluation, where processes may run different numbers of batches): each count itself, at least `minimum`."""
    # float64: pixel counts of large batches exceed float32's exact integers (MPS has no float64).
    dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
    counts = torch.as_tensor([float(count) for count in local_counts], dtype=dtype, device=device)
    world_size = 1
    synchronise = _SYNC_COUNTS.get() and torch.is_grad_enabled()
    if synchronise and torch.distributed.is_available() and torch.distributed.is_initialized():
        world_size = torch.distributed.get_world_size()
        if world_size > 1:
            torch.distributed.all_reduce(counts, op=torch.distributed.ReduceOp.SUM)
    floor = torch.as_tensor(minimum, dtype=counts.dtype, device=counts.device)
    return (torch.maximum(counts, floor) / world_size).tolist()


def global_mean_denominator(local_count: float, device: torch.device | str) -> float:
    """`global_mean_denominators` for one count."""
    return global_mean_denominators([local_count], device)[0]


__all__ = ["global_mean_denominator", "global_mean_denominators", "local_target_count"]

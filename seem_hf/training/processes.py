"""Leaving a multi-process run (torchrun, `accelerate launch`; gloo on CPU) without a deadlock at its end.

torch's gloo backend can deadlock when a finished run's objects are freed. The DDP reducer holds the process group;
freeing it (when a script's `main` returns, or at interpreter exit) runs `ProcessGroupGloo`'s destructor, which joins
the backend's worker threads while holding the GIL. A worker still releasing a finished collective (a barrier that
holds an all-gather's tensors) needs the GIL to drop those tensors' Python objects, so neither thread moves. py-spy
showed exactly these two stacks in a 2-process SEEM run here that never exited (1 run in 33 under load; CI met it and
timed out), and a plain 20-line DDP script that destroys its group and returns aborted at exit in 3 of about 30 runs
(SIGABRT), and in none of 60 when it left through `exit_process`.

So a run that ended its process group (`end_process_group`) keeps its trainer, and with it the wrapped model, until
the process ends, and scripts leave through `exit_process()`: in a multi-process run it flushes the output and ends
the process with `os._exit`, so that no destructor runs. Everything a run writes is closed before then (the Trainer's
and `save_pretrained`'s files, the trackers `end_training` finishes)."""

from __future__ import annotations

import logging
import os
import sys

import torch

_ENDED_RUNS: list = []  # trainers of runs whose process group has ended, kept from the destructors (see above)


def end_process_group(trainer) -> None:
    """End `trainer`'s run on every process together, once its collective work is over: wait for every process,
    finish the trackers, destroy the process group. Under several processes the trainer is kept until the process
    ends (module docstring): call `exit_process()` last."""
    accelerator = trainer.accelerator
    accelerator.wait_for_everyone()
    if accelerator.num_processes > 1:
        _ENDED_RUNS.append(trainer)
    accelerator.end_training()


def exit_process(code: int = 0) -> None:
    """A script's last call. In a process that took part in a multi-process run (its process group ended by
    `end_process_group`, or still open), flush stdout, stderr and logging and end the process at once with exit
    status `code`, running no destructor (module docstring). Anywhere else, return: a one-process run exits as
    usual."""
    initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not _ENDED_RUNS and not (initialised and torch.distributed.get_world_size() > 1):
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


__all__ = ["end_process_group", "exit_process"]

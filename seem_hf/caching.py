"""Where seem_hf keeps what it computes once per machine (label-set embeddings, datasets that passed validation)."""

from __future__ import annotations

import os
from pathlib import Path

OFF = ("", "0", "off", "none", "false")


def cache_home(env: str, name: str) -> Path | None:
    """`$env` when set (`off` or `0`: no disk cache, None), else `seem_hf/<name>` under Hugging Face's cache home
    (`$HF_HOME`, by default `~/.cache/huggingface`)."""
    value = os.environ.get(env)
    if value is not None:
        return None if value.strip().lower() in OFF else Path(value).expanduser()
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HOME") or constants.HF_HOME).expanduser() / "seem_hf" / name


__all__ = ["cache_home"]

"""Helpers shared by the checkpoint converters."""

from __future__ import annotations

import torch
from torch import nn


# OpenAI CLIP's text-block names -> transformers' CLIPTextModel, once a converter has mapped its own prefix of
# `resblocks.{i}.` to `text_model.encoder.layers.{i}.` (LSeg's and SEEM's towers share these).
CLIP_TEXT_LAYER_RENAMES = [
    (r"(text_model\.encoder\.layers\.\d+)\.attn\.", r"\1.self_attn."),
    (r"(text_model\.encoder\.layers\.\d+)\.ln_1\.", r"\1.layer_norm1."),
    (r"(text_model\.encoder\.layers\.\d+)\.ln_2\.", r"\1.layer_norm2."),
    (r"(text_model\.encoder\.layers\.\d+)\.mlp\.c_fc\.", r"\1.mlp.fc1."),
    (r"(text_model\.encoder\.layers\.\d+)\.mlp\.c_proj\.", r"\1.mlp.fc2."),
]


def load_state_dict_strictly(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load converted weights strictly, raising a `ValueError` that lists every missing key, unexpected key and
    shape mismatch (torch's own error stops at shapes and hides the rest)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(expected) & set(state_dict)
        if state_dict[key].shape != expected[key].shape
    )
    if missing or unexpected or mismatched:
        raise ValueError(
            f"The checkpoint does not match {type(model).__name__}.\n"
            f"Missing keys ({len(missing)}): {missing}\nUnexpected keys ({len(unexpected)}): {unexpected}\n"
            f"Shape mismatches ({len(mismatched)}): {mismatched}"
        )
    model.load_state_dict(state_dict, strict=True)


__all__ = ["CLIP_TEXT_LAYER_RENAMES", "load_state_dict_strictly"]

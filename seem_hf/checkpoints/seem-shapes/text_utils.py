"""Shared text-side helpers for the CLIP-style (causal) text towers of SEEM and LSeg."""

from __future__ import annotations

import torch


def trim_after_end_of_text(
    input_ids: torch.Tensor, eos_token_id: int, attention_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Drop the columns after the last row's first end-of-text token.

    A CLIP text tower attends causally and pools each row at its first end-of-text token, so nothing after that
    token can change the pooled embedding: cutting the padding (prompts are padded to 77 tokens, most labels
    need 5-12) gives the same embeddings exactly, for a fraction of the work. A row without the token pools at
    position 0 (transformers' rule), which the cut keeps too.
    """
    first_end = (input_ids == eos_token_id).int().argmax(-1)
    length = int(first_end.max()) + 1 if input_ids.numel() else input_ids.shape[-1]
    trimmed_mask = None if attention_mask is None else attention_mask[..., :length]
    return input_ids[..., :length], trimmed_mask


__all__ = ["trim_after_end_of_text"]

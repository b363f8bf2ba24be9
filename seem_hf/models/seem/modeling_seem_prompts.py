"""SEEM's visual prompts inside the decoder: sampling prompt pixels, turning them into tokens, and the
self-attention visibility that keeps the query groups apart.

A visual prompt (click, box, scribble, polygon, mask) arrives as a binary mask over the padded input, one channel
per object, positive and negative. SEEM samples up to `max_spatial_tokens` of its pixels (equal probability mass
per prompt), reads features there, and lets the prompt's spatial queries attend to those tokens. Every draw takes
an optional `torch.Generator`, so interactive results repeat when seeded.
"""

from __future__ import annotations

import torch
from torch import nn


def sample_prompt_pixels(masks: torch.Tensor, max_points: int, generator: torch.Generator | None = None):
    """Up to `max_points` pixels of `masks` `(num_prompts, H, W)`, drawn without replacement with equal total
    probability per non-empty prompt, in raster order. Returns `(prompt_index (P,), y / H, x / W (P, 2))` (SEEM's
    `rand_sample`: coordinates are divided by H and W, not H - 1 and W - 1)."""
    nonzero = masks.nonzero()
    if len(nonzero) == 0:
        return nonzero[:, 0], nonzero[:, 1:].to(torch.float32)
    prompt = nonzero[:, 0]
    counts = torch.bincount(prompt, minlength=masks.shape[0])
    probabilities = 1.0 / ((counts > 0).sum() * counts[prompt]).to(torch.float64)
    device = generator.device if generator is not None else probabilities.device
    chosen = torch.multinomial(
        probabilities.to(device), min(max_points, len(nonzero)), replacement=False, generator=generator
    ).sort().values.to(masks.device)
    scale = torch.tensor(masks.shape[1:], device=masks.device, dtype=torch.float32)
    return prompt[chosen], nonzero[chosen, 1:] / scale


def sample_at(features: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear features `(B, P, C)` of `features` `(B, C, h, w)` at `points` `(B, P, 2)` given as (y, x) in [0, 1],
    read with `align_corners=True` as SEEM reads them."""
    grid = points.flip(-1)[:, :, None].to(features.dtype) * 2 - 1
    return nn.functional.grid_sample(features, grid, align_corners=True).squeeze(-1).transpose(1, 2)


def prompt_embeddings(mask_features, masks, max_points, generator=None) -> torch.Tensor:
    """Each prompt's mean mask feature `(B, N, C)` over its sampled pixels; -1 everywhere for a prompt with no
    pixel (SEEM's marker). `masks` `(B, N, H, W)` at the padded input size."""
    batch, num_prompts = masks.shape[:2]
    embeddings = -torch.ones(batch, num_prompts, mask_features.shape[1], dtype=mask_features.dtype,
                             device=mask_features.device)
    for image in range(batch):
        index, points = sample_prompt_pixels(masks[image], max_points, generator)
        if len(index) == 0:
            continue
        features = sample_at(mask_features[image : image + 1], points[None])[0]
        # In the sampled features' dtype: under autocast grid_sample gives float32 from bfloat16 features.
        sums = features.new_zeros((num_prompts, features.shape[-1])).index_add_(0, index, features)
        counts = torch.bincount(index, minlength=num_prompts)
        present = counts > 0
        embeddings[image, present] = (sums[present] / counts[present, None].to(sums.dtype)).to(embeddings.dtype)
    return embeddings


def prompt_tokens(level_features, positive, negative, max_points, indicator, generator=None):
    """Visual-prompt tokens for one decoder level: up to `max_points` positive and as many negative pixels per
    image, read from `level_features` `(B, C, h, w)` (already projected), plus `indicator[0]` on positive and
    `indicator[1]` on negative tokens. Returns tokens `(B, P, C)`, their prompt index `(B, P)` and a padding mask
    `(B, P)` (True on padding, whose index is -1)."""
    per_image = []
    for image in range(level_features.shape[0]):
        positive_index, positive_points = sample_prompt_pixels(positive[image], max_points, generator)
        negative_index, negative_points = sample_prompt_pixels(negative[image], max_points, generator)
        per_image.append((
            torch.cat([positive_index, negative_index]),
            torch.cat([positive_points, negative_points]),
            torch.cat([torch.zeros_like(positive_index), torch.ones_like(negative_index)]),
        ))
    length = max(1, max(len(index) for index, _, _ in per_image))
    batch, device = level_features.shape[0], level_features.device
    prompt_index = torch.full((batch, length), -1, dtype=torch.long, device=device)
    points = torch.zeros(batch, length, 2, device=device)
    sign = torch.zeros(batch, length, dtype=torch.long, device=device)
    for image, (index, image_points, image_sign) in enumerate(per_image):
        prompt_index[image, : len(index)], points[image, : len(index)], sign[image, : len(index)] = (
            index, image_points, image_sign
        )
    padding = prompt_index < 0
    tokens = sample_at(level_features, points) + indicator[sign] * (~padding)[..., None]
    return tokens, prompt_index, padding


def self_attention_visibility(
    batch: int,
    num_object: int,
    num_grounding: int = 0,
    text_padding: torch.Tensor | None = None,
    spatial_prompt_index: torch.Tensor | None = None,
    memory_prompt_index: torch.Tensor | None = None,
    token_prompt_index: torch.Tensor | None = None,
    device=None,
) -> torch.Tensor:
    """Which rows may attend to which columns `(B, L, L)` (True = may), over the sequence
    [object queries | grounding queries | spatial queries | memories | text tokens | spatial tokens].

    - object queries see object queries only, so adding prompts never changes generic outputs;
    - grounding queries and text tokens see each other and themselves (padded text tokens are seen by none and
      see nothing);
    - a spatial query sees the spatial queries, visual tokens and memory slots of its own prompt;
    - a visual token sees the tokens of its prompt; a memory slot sees the slots of its prompt.

    `spatial_prompt_index` `(S,)`, `memory_prompt_index` `(M,)` and `token_prompt_index` `(B, P)` (-1 on padding)
    give each row's prompt.
    """
    text = 0 if text_padding is None else text_padding.shape[1]
    spatial = 0 if spatial_prompt_index is None else len(spatial_prompt_index)
    memories = 0 if memory_prompt_index is None else len(memory_prompt_index)
    tokens = 0 if token_prompt_index is None else token_prompt_index.shape[1]
    starts = torch.tensor([0, num_object, num_grounding, spatial, memories, text, tokens]).cumsum(0).tolist()
    obj, grounding, spatial_q, memory, text_t, visual = (slice(a, b) for a, b in zip(starts[:-1], starts[1:]))
    allowed = torch.zeros(batch, starts[-1], starts[-1], dtype=torch.bool, device=device)
    allowed[:, obj, obj] = True
    if num_grounding or text:
        allowed[:, grounding, grounding] = True
        if text:
            real = ~text_padding.to(device)
            allowed[:, grounding, text_t] = real[:, None, :]
            allowed[:, text_t, grounding] = real[:, :, None]
            allowed[:, text_t, text_t] = real[:, :, None] & real[:, None, :]
    if spatial:
        spatial_prompt_index = spatial_prompt_index.to(device)
        allowed[:, spatial_q, spatial_q] = spatial_prompt_index[:, None] == spatial_prompt_index[None]
        if tokens:
            token_prompt_index = token_prompt_index.to(device)
            allowed[:, spatial_q, visual] = spatial_prompt_index[None, :, None] == token_prompt_index[:, None, :]
            real = token_prompt_index >= 0
            allowed[:, visual, visual] = (token_prompt_index[:, :, None] == token_prompt_index[:, None, :]) & real[
                :, :, None
            ]
        if memories:
            memory_prompt_index = memory_prompt_index.to(device)
            allowed[:, spatial_q, memory] = spatial_prompt_index[:, None] == memory_prompt_index[None]
            allowed[:, memory, memory] = memory_prompt_index[:, None] == memory_prompt_index[None]
    return allowed


__all__ = [
    "prompt_embeddings",
    "prompt_tokens",
    "sample_at",
    "sample_prompt_pixels",
    "self_attention_visibility",
]

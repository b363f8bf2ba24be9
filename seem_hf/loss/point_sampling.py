"""Point sampling for mask losses (PointRend, as used by Mask2Former and SEEM).

Mask losses are computed on `num_points` points per mask instead of every pixel: most of them where the prediction
is least certain (logit closest to 0), the rest uniformly at random. Coordinates are normalised to [0, 1] over the
whole (padded) mask, so predictions and targets of different resolutions are sampled at the same places.
"""

from __future__ import annotations

import torch

# Reused: transformers' grid-sample wrapper for [0, 1] point coordinates.
from transformers.models.mask2former.modeling_mask2former import sample_point


def uniform_points(num_masks: int, num_points: int, device: torch.device | str) -> torch.Tensor:
    """`(num_masks, num_points, 2)` coordinates drawn uniformly in [0, 1] from torch's global generator: every random
    point of the losses and the matcher comes from here."""
    return torch.rand(num_masks, num_points, 2, device=device)


def sample_points_by_uncertainty(
    mask_logits: torch.Tensor,
    num_points: int,
    oversample_ratio: float = 3.0,
    importance_sample_ratio: float = 0.75,
) -> torch.Tensor:
    """Point coordinates `(N, num_points, 2)` in [0, 1] for each of the N masks in `mask_logits` `(N, 1, h, w)`.

    `oversample_ratio * num_points` uniform candidates are drawn; the `importance_sample_ratio * num_points` with
    the smallest |logit| (the most uncertain) are kept and the remainder are fresh uniform points. The random
    draws follow the same order as Mask2Former's, so a seeded run picks the same points.
    """
    num_masks = mask_logits.shape[0]
    num_candidates = int(num_points * oversample_ratio)
    candidates = uniform_points(num_masks, num_candidates, mask_logits.device)
    uncertainty = -sample_point(mask_logits, candidates, align_corners=False).abs()
    num_uncertain = int(importance_sample_ratio * num_points)
    most_uncertain = torch.topk(uncertainty[:, 0, :], k=num_uncertain, dim=1).indices
    coordinates = torch.gather(candidates, 1, most_uncertain[..., None].expand(-1, -1, 2))
    num_random = num_points - num_uncertain
    if num_random > 0:
        coordinates = torch.cat(
            [coordinates, uniform_points(num_masks, num_random, mask_logits.device)], dim=1
        )
    return coordinates


__all__ = ["sample_point", "sample_points_by_uncertainty", "uniform_points"]

"""Mask losses for matched (prediction, target) pairs, normalised by the number of target masks.

Two flavours, both reusing transformers' loss functions:
- `point_sampled_mask_losses`: binary cross-entropy and dice on uncertainty-sampled points (Mask2Former, SEEM);
  memory grows with the number of points, not with the image size.
- `full_resolution_mask_losses`: DETR's sigmoid focal loss and dice on every pixel, after upsampling the
  predictions to the targets' size.
"""

from __future__ import annotations

import torch
from torch import nn

from transformers.loss.loss_for_object_detection import dice_loss as _dice
from transformers.loss.loss_for_object_detection import sigmoid_focal_loss
from transformers.models.mask2former.modeling_mask2former import sigmoid_cross_entropy_loss

from .point_sampling import sample_point, sample_points_by_uncertainty


def point_sampled_mask_losses(
    pred_masks: torch.Tensor,
    target_masks: torch.Tensor,
    num_masks: float,
    num_points: int = 12544,
    oversample_ratio: float = 3.0,
    importance_sample_ratio: float = 0.75,
) -> dict[str, torch.Tensor]:
    """`loss_mask` (sigmoid cross-entropy) and `loss_dice` of M matched pairs on sampled points.

    pred_masks: `(M, h, w)` logits; target_masks: `(M, H, W)` in {0, 1}, covering the same (padded) image.
    """
    pred_masks, target_masks = pred_masks[:, None], target_masks[:, None].to(pred_masks.dtype)
    with torch.no_grad():
        points = sample_points_by_uncertainty(pred_masks, num_points, oversample_ratio, importance_sample_ratio)
        point_labels = sample_point(target_masks, points, align_corners=False).squeeze(1)
    point_logits = sample_point(pred_masks, points, align_corners=False).squeeze(1)
    return {
        "loss_mask": sigmoid_cross_entropy_loss(point_logits, point_labels, num_masks),
        "loss_dice": _dice(point_logits, point_labels, num_masks),
    }


def full_resolution_mask_losses(
    pred_masks: torch.Tensor, target_masks: torch.Tensor, num_masks: float
) -> dict[str, torch.Tensor]:
    """DETR's `loss_mask` (sigmoid focal, alpha 0.25, gamma 2) and `loss_dice` on every target pixel.

    pred_masks `(M, h, w)` logits are upsampled bilinearly to target_masks `(M, H, W)`.
    """
    upsampled = nn.functional.interpolate(
        pred_masks[:, None], size=target_masks.shape[-2:], mode="bilinear", align_corners=False
    ).flatten(1)
    targets = target_masks.to(upsampled.dtype).flatten(1)
    return {
        "loss_mask": sigmoid_focal_loss(upsampled, targets, num_masks),
        "loss_dice": _dice(upsampled, targets, num_masks),
    }


__all__ = ["full_resolution_mask_losses", "point_sampled_mask_losses"]

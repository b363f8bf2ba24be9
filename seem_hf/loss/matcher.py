"""One Hungarian matcher for every set-prediction model in the package."""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

# Reused: transformers' box utilities and its pairwise mask costs (Mask2Former's matcher).
from transformers.image_transforms import center_to_corners_format
from transformers.loss.loss_for_object_detection import generalized_box_iou
from transformers.models.mask2former.modeling_mask2former import (
    pair_wise_dice_loss,
    pair_wise_sigmoid_cross_entropy_loss,
)

from seem_hf.loss.point_sampling import sample_point, uniform_points


class HungarianMatcher(nn.Module):
    """Assigns each target of an image to one prediction, minimising a weighted sum of matching costs.

    For a prediction q and a target t of class c:

        cost(q, t) = class_cost * -p_q(c)
                   + mask_cost  * BCE(mask_q, mask_t)   on `num_points` uniform points, shared by every pair
                   + dice_cost  * (1 - dice(mask_q, mask_t))  on the same points
                   + bbox_cost  * |box_q - box_t|_1     (normalised cx, cy, w, h)
                   + giou_cost  * -GIoU(box_q, box_t)

    The class term uses the probability rather than its log, as DETR and Mask2Former do. Non-finite costs become
    the largest float, so a diverged prediction is matched only when nothing else can be. With only the class
    and mask terms this is Mask2Former's (and SEEM's) matcher; with only the class and box terms it is DETR's.

    Returns, per image, `(prediction_indices, target_indices)` int64 tensors of length min(Q, T).
    """

    def __init__(
        self,
        class_cost: float = 1.0,
        mask_cost: float = 0.0,
        dice_cost: float = 0.0,
        bbox_cost: float = 0.0,
        giou_cost: float = 0.0,
        num_points: int = 12544,
    ):
        super().__init__()
        if not any((class_cost, mask_cost, dice_cost, bbox_cost, giou_cost)):
            raise ValueError("HungarianMatcher needs at least one non-zero cost.")
        self.class_cost, self.mask_cost, self.dice_cost = class_cost, mask_cost, dice_cost
        self.bbox_cost, self.giou_cost = bbox_cost, giou_cost
        self.num_points = num_points

    @property
    def uses_masks(self) -> bool:
        return bool(self.mask_cost or self.dice_cost)

    @property
    def uses_boxes(self) -> bool:
        return bool(self.bbox_cost or self.giou_cost)

    @torch.no_grad()
    def forward(
        self,
        class_logits: torch.Tensor,
        targets: list[dict[str, torch.Tensor]],
        mask_logits: torch.Tensor | None = None,
        pred_boxes: torch.Tensor | None = None,
        class_probabilities: torch.Tensor | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """class_logits `(B, Q, K+1)`; mask_logits `(B, Q, h, w)`; pred_boxes `(B, Q, 4)`; targets: per image a
        dict with `class_labels` `(T,)` and, as the costs need them, `masks` `(T, H, W)` and `boxes` `(T, 4)`.
        `class_probabilities` `(B, Q, C)` replaces `class_logits.softmax(-1)` where the probability is taken
        another way (SEEM's grounding normalises over queries, not classes)."""
        if self.uses_masks and mask_logits is None:
            raise ValueError("This matcher has mask costs: pass mask_logits.")
        if self.uses_boxes and pred_boxes is None:
            raise ValueError("This matcher has box costs: pass pred_boxes.")
        if len(targets) != class_logits.shape[0]:
            raise ValueError(f"Got {len(targets)} targets for a batch of {class_logits.shape[0]} predictions.")
        indices = []
        for image, target in enumerate(targets):
            classes = target["class_labels"]
            if len(classes) == 0:
                empty = torch.zeros(0, dtype=torch.int64)
                indices.append((empty, empty.clone()))
                continue
            probabilities = (
                class_logits[image].softmax(-1) if class_probabilities is None else class_probabilities[image]
            )
            cost = -self.class_cost * probabilities[:, classes]
            if self.uses_masks:
                cost = cost + self.mask_costs(mask_logits[image], target["masks"])
            if self.uses_boxes:
                boxes, target_boxes = pred_boxes[image], target["boxes"].to(pred_boxes.dtype)
                cost = cost + self.bbox_cost * torch.cdist(boxes, target_boxes, p=1)
                cost = cost - self.giou_cost * generalized_box_iou(
                    center_to_corners_format(boxes), center_to_corners_format(target_boxes)
                )
            largest = torch.finfo(cost.dtype).max
            cost = torch.nan_to_num(cost, nan=largest, posinf=largest, neginf=largest)
            rows, columns = linear_sum_assignment(cost.cpu())
            indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(columns, dtype=torch.int64)))
        return indices

    def mask_costs(self, mask_logits: torch.Tensor, target_masks: torch.Tensor) -> torch.Tensor:
        """Weighted BCE + dice cost `(Q, T)` of every prediction `(Q, h, w)` against every target `(T, H, W)`, on
        `num_points` uniform points shared by all pairs."""
        points = uniform_points(1, self.num_points, mask_logits.device)
        targets = sample_point(
            target_masks[:, None].to(mask_logits.dtype), points.repeat(len(target_masks), 1, 1), align_corners=False
        ).squeeze(1)
        predictions = sample_point(
            mask_logits[:, None], points.repeat(len(mask_logits), 1, 1), align_corners=False
        ).squeeze(1)
        return self.mask_cost * pair_wise_sigmoid_cross_entropy_loss(
            predictions, targets
        ) + self.dice_cost * pair_wise_dice_loss(predictions, targets)


__all__ = ["HungarianMatcher"]

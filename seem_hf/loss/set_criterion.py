"""The set-prediction criterion: match, then supervise classes, masks and (for DETR) boxes, on every round."""

from __future__ import annotations

import torch
from torch import nn

from transformers.image_transforms import center_to_corners_format
from transformers.loss.loss_for_object_detection import generalized_box_iou

from seem_hf.loss.global_mean import global_mean_denominator, global_mean_denominators, local_target_count
from seem_hf.loss.mask_losses import full_resolution_mask_losses, point_sampled_mask_losses
from seem_hf.loss.matcher import HungarianMatcher


def average_number_of_targets(targets: list[dict], device: torch.device) -> float:
    """The target-count denominator of the box and mask losses: targets of every process, at least 1, divided by
    the number of processes (`seem_hf.loss.global_mean`), so that DDP's average of the processes' gradients is the
    gradient of one process on their union (this process's own count inside `local_target_count()`)."""
    return global_mean_denominator(sum(len(target["class_labels"]) for target in targets), device)


def _pad_masks(masks: list[torch.Tensor]) -> torch.Tensor:
    """Stack per-image `(T_i, H_i, W_i)` masks into `(B, max T, max H, max W)` with zeros as padding."""
    height = max(mask.shape[-2] for mask in masks)
    width = max(mask.shape[-1] for mask in masks)
    padded = masks[0].new_zeros((len(masks), max(len(mask) for mask in masks), height, width))
    for image, mask in enumerate(masks):
        padded[image, : len(mask), : mask.shape[-2], : mask.shape[-1]] = mask
    return padded


def _base_name(loss_name: str) -> str:
    """`loss_dice_3` -> `loss_dice`: auxiliary rounds share their loss's weight."""
    stem, _, suffix = loss_name.rpartition("_")
    return stem if suffix.isdigit() else loss_name


class SetCriterion(nn.Module):
    """Losses of a set-prediction model after Hungarian matching.

    - `loss_ce`: cross-entropy over K+1 classes for every query, unmatched queries labelled no-object (index K)
      and weighted by `eos_coefficient`.
    - `loss_mask`, `loss_dice`: on matched pairs, either on uncertainty-sampled points (`mask_loss="points"`,
      binary cross-entropy + dice, Mask2Former/SEEM) or on every pixel (`mask_loss="focal"`, focal + dice, DETR).
    - `loss_bbox`, `loss_giou`: L1 and 1 - GIoU on matched boxes, when the model predicts boxes.
    - `cardinality_error`: logged, not weighted: |#non-no-object predictions - #targets|.

    `num_labels` None takes the label count from the logits (open-vocabulary models). Each entry of
    `auxiliary_outputs` (an earlier decoder round) is matched and supervised the same way, its
    losses suffixed `_i`; `auxiliary_mask_losses=False` skips their mask losses, as DETR does. The total is the
    sum of each loss times its entry in `weights` (the same weight for every round).
    """

    def __init__(
        self,
        num_labels: int | None,
        matcher: HungarianMatcher,
        weights: dict[str, float],
        eos_coefficient: float = 0.1,
        mask_loss: str = "points",
        num_points: int = 12544,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        auxiliary_mask_losses: bool = True,
    ):
        super().__init__()
        if mask_loss not in ("points", "focal"):
            raise ValueError(f"mask_loss must be 'points' or 'focal', got {mask_loss!r}.")
        self.num_labels, self.matcher, self.weights = num_labels, matcher, dict(weights)
        self.eos_coefficient, self.mask_loss = eos_coefficient, mask_loss
        self.num_points, self.oversample_ratio = num_points, oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.auxiliary_mask_losses = auxiliary_mask_losses

    def forward(
        self,
        class_logits: torch.Tensor,
        targets: list[dict[str, torch.Tensor]],
        mask_logits: torch.Tensor | None = None,
        pred_boxes: torch.Tensor | None = None,
        auxiliary_outputs: list[dict[str, torch.Tensor]] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns `(total_loss, loss_dict)`. `auxiliary_outputs`: one dict per earlier round with
        `class_logits` and, where predicted, `mask_logits` and `pred_boxes`."""
        # One collective per call for both denominators (seem_hf.loss.global_mean). Every round matches
        # min(targets, queries) queries per image, so the class weights of a round sum to the same total.
        local_targets = sum(len(target["class_labels"]) for target in targets)
        matched = sum(min(len(target["class_labels"]), class_logits.shape[1]) for target in targets)
        class_weight_sum = matched + self.eos_coefficient * (class_logits.shape[0] * class_logits.shape[1] - matched)
        # (A weight sum of 0, no target and eos_coefficient 0, has a weighted sum of 0 too: any floor gives 0.)
        num_targets, class_weight_sum = global_mean_denominators([local_targets, class_weight_sum],
                                                                 class_logits.device, minimum=[1.0, 1e-12])
        num_targets = (num_targets, class_weight_sum)
        losses = self._round_losses(class_logits, mask_logits, pred_boxes, targets, num_targets, with_masks=True)
        for index, round_outputs in enumerate(auxiliary_outputs or ()):
            round_losses = self._round_losses(
                round_outputs["class_logits"],
                round_outputs.get("mask_logits"),
                round_outputs.get("pred_boxes"),
                targets,
                num_targets,
                with_masks=self.auxiliary_mask_losses,
            )
            losses.update({f"{name}_{index}": value for name, value in round_losses.items()})
        total = sum(value * self.weights[_base_name(name)] for name, value in losses.items()
                    if _base_name(name) in self.weights)
        return total, losses

    def _round_losses(self, class_logits, mask_logits, pred_boxes, targets, denominators, with_masks):
        num_targets, class_weight_sum = denominators
        use_masks = with_masks and mask_logits is not None
        indices = self.matcher(
            class_logits,
            targets,
            mask_logits=mask_logits if self.matcher.uses_masks else None,
            pred_boxes=pred_boxes,
        )
        batch = torch.cat([torch.full_like(rows, image) for image, (rows, _) in enumerate(indices)])
        rows = torch.cat([rows for rows, _ in indices])
        columns = torch.cat([columns for _, columns in indices])
        device = class_logits.device
        batch, rows = batch.to(device), rows.to(device)
        # Open-vocabulary models (SEEM) score a label set chosen per call: the no-object class is then the last.
        num_labels = self.num_labels if self.num_labels is not None else class_logits.shape[-1] - 1

        target_classes = torch.full(class_logits.shape[:2], num_labels, dtype=torch.int64, device=device)
        target_classes[batch, rows] = torch.cat(
            [target["class_labels"][matched] for target, (_, matched) in zip(targets, indices)]
        ).to(device)
        class_weights = torch.ones(num_labels + 1, dtype=class_logits.dtype, device=device)
        class_weights[-1] = self.eos_coefficient
        # The weighted mean over queries (no-object weighted by eos_coefficient), DETR's; over the global batch.
        weighted_sum = nn.functional.cross_entropy(class_logits.transpose(1, 2), target_classes, class_weights,
                                                   reduction="sum")
        losses = {"loss_ce": weighted_sum / class_weight_sum}
        with torch.no_grad():
            predicted = (class_logits.argmax(-1) != class_logits.shape[-1] - 1).sum(1).float()
            counts = torch.as_tensor([float(len(target["class_labels"])) for target in targets], device=device)
            losses["cardinality_error"] = nn.functional.l1_loss(predicted, counts)

        if len(rows) == 0:
            # No targets in the batch: only the no-object classification is supervised; the other losses are
            # zeros that keep every output in the graph (distributed training needs each parameter to get a grad).
            zero = class_logits.sum() * 0
            for name, present in (("loss_bbox", pred_boxes), ("loss_giou", pred_boxes),
                                  ("loss_mask", mask_logits if use_masks else None),
                                  ("loss_dice", mask_logits if use_masks else None)):
                if present is not None:
                    losses[name] = zero + present.sum() * 0
            return losses

        if pred_boxes is not None:
            boxes = pred_boxes[batch, rows]
            target_boxes = torch.cat(
                [target["boxes"][matched] for target, (_, matched) in zip(targets, indices)]
            ).to(boxes)
            losses["loss_bbox"] = nn.functional.l1_loss(boxes, target_boxes, reduction="none").sum() / num_targets
            giou = torch.diag(
                generalized_box_iou(center_to_corners_format(boxes), center_to_corners_format(target_boxes))
            )
            losses["loss_giou"] = (1 - giou).sum() / num_targets

        if use_masks:
            image_targets = torch.cat([torch.full_like(matched, image) for image, (_, matched) in enumerate(indices)])
            target_masks = _pad_masks([target["masks"] for target in targets])[image_targets.to(device),
                                                                                columns.to(device)]
            pred_masks = mask_logits[batch, rows]
            if self.mask_loss == "points":
                losses.update(
                    point_sampled_mask_losses(
                        pred_masks,
                        target_masks,
                        num_targets,
                        self.num_points,
                        self.oversample_ratio,
                        self.importance_sample_ratio,
                    )
                )
            else:
                losses.update(full_resolution_mask_losses(pred_masks, target_masks, num_targets))
        return losses


__all__ = ["SetCriterion", "average_number_of_targets", "local_target_count"]

"""Collators: items of `seem_hf.data.AugmentedPanopticDataset` into model inputs."""

from __future__ import annotations

import numpy as np
import torch


def masks_to_normalized_boxes(masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, H, W) binary masks -> (N, 4) boxes as (center_x, center_y, width, height), normalised by the
    given `height` and `width` (the image without padding), as DETR's targets are."""
    if len(masks) == 0:
        return torch.zeros((0, 4))
    rows, cols = masks.any(2), masks.any(1)
    top = rows.float().argmax(1)
    bottom = rows.shape[1] - rows.flip(1).float().argmax(1)
    left = cols.float().argmax(1)
    right = cols.shape[1] - cols.flip(1).float().argmax(1)
    boxes = torch.stack([(left + right) / 2 / width, (top + bottom) / 2 / height, (right - left) / width,
                         (bottom - top) / height], dim=1)
    return boxes.clamp(0, 1)


class DetrPanopticCollator:
    """Batch for [`DetrPanopticForSegmentation`] training: `pixel_values` and `pixel_mask` from the image
    processor (images are already at their training size, so it only normalises and pads), and `labels`, one
    dict per image with `class_labels`, normalised `boxes` and `masks` (crowd segments left out, as DETR
    trains). Padding added by the augmentation is marked in `pixel_mask` too. With `boxes_only`, batches ask the
    model to skip its mask head (DETR's first training stage)."""

    def __init__(self, image_processor, boxes_only: bool = False):
        self.image_processor = image_processor
        self.boxes_only = boxes_only

    def __call__(self, rows: list[dict]) -> dict:
        inputs = self.image_processor(images=[row["image"] for row in rows], do_resize=False, return_tensors="pt")
        height, width = inputs["pixel_values"].shape[-2:]
        labels = []
        for index, row in enumerate(rows):
            valid = torch.zeros((height, width), dtype=torch.bool)
            valid[: row["valid"].shape[0], : row["valid"].shape[1]] = torch.from_numpy(np.asarray(row["valid"]))
            inputs["pixel_mask"][index] &= valid.to(inputs["pixel_mask"].dtype)
            keep = ~np.asarray(row["iscrowd"], dtype=bool)
            masks = torch.zeros((int(keep.sum()), height, width))
            segment_masks = torch.from_numpy(np.asarray(row["masks"])[keep])
            masks[:, : segment_masks.shape[1], : segment_masks.shape[2]] = segment_masks.float()
            valid_rows, valid_cols = valid.any(1).sum().item(), valid.any(0).sum().item()
            labels.append({
                "class_labels": torch.as_tensor(np.asarray(row["labels"])[keep], dtype=torch.long),
                "boxes": masks_to_normalized_boxes(masks.bool(), valid_rows, valid_cols),
                "masks": masks,
            })
        inputs["labels"] = labels
        if self.boxes_only:
            inputs["boxes_only"] = True
        return dict(inputs)


__all__ = ["DetrPanopticCollator", "masks_to_normalized_boxes"]

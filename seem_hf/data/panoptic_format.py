"""The COCO formats: the panoptic PNG encoding (a segment id is stored as R + 256 G + 256^2 B, 0 meaning void) and
COCO `segmentation`s (polygons or RLE) as masks."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def rgb2id(color: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 colours -> (H, W) int64 segment ids."""
    color = np.asarray(color)
    if color.ndim != 3 or color.shape[-1] != 3:
        raise ValueError(f"A panoptic PNG must be RGB (H, W, 3), got shape {color.shape}.")
    color = color.astype(np.int64)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) segment ids (0 <= id < 256^3) -> (H, W, 3) uint8 colours."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.min(initial=0) < 0 or ids.max(initial=0) >= 256**3:
        raise ValueError("Panoptic segment ids must lie in [0, 256^3).")
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def segmentation_mask(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of a COCO `segmentation`: polygons [[x1, y1, x2, y2, ...], ...], or an RLE dict with
    compressed (text) or uncompressed (list) `counts`."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation, counts=segmentation["counts"].encode("ascii"))
    return mask_utils.decode(rle).astype(bool)


__all__ = ["id2rgb", "rgb2id", "segmentation_mask"]

"""The COCO-panoptic PNG encoding: a segment id is stored as R + 256 G + 256^2 B, 0 meaning void."""

from __future__ import annotations

import numpy as np


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


__all__ = ["id2rgb", "rgb2id"]

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


def _compressed_run_lengths(counts: str) -> list[int]:
    """The run lengths of a compressed RLE text, decoded as pycocotools' `rleFrString` does (5-bit groups with a
    continuation bit; from the third run on, each is stored as the difference to the run two before)."""
    runs, position = [], 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position == len(counts):
                raise ValueError("RLE counts text ends inside a run length")
            code = ord(counts[position]) - 48
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position, shift = position + 1, shift + 5
            if not more and code & 0x10:
                value |= -1 << shift
        runs.append(value + runs[-2] if len(runs) > 2 else value)
    return runs


def segmentation_mask(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of a COCO `segmentation`: polygons [[x1, y1, x2, y2, ...], ...], or an RLE dict with
    compressed (text) or uncompressed (list) `counts`. Raises a `ValueError` for an RLE whose runs do not cover its
    `size` exactly (pycocotools decodes one that falls short from uninitialised memory, a different mask each
    time, and one encoded for an image of another size into pixels in the wrong places)."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        return mask_utils.decode(rle).astype(bool)
    size = segmentation.get("size", [height, width])
    counts = segmentation.get("counts")
    runs = counts if isinstance(counts, list) else _compressed_run_lengths(counts)
    if any(run < 0 for run in runs) or sum(runs) != size[0] * size[1]:
        raise ValueError(
            f"RLE runs cover {sum(runs)} pixels{' (some negative)' if any(run < 0 for run in runs) else ''}, but its "
            f"size {size[0]} x {size[1]} has {size[0] * size[1]}: the RLE was encoded for an image of another size, "
            f"or is cut short; encode the mask again at the image's size (pycocotools.mask.encode)"
        )
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation, counts=counts.encode("ascii"))
    return mask_utils.decode(rle).astype(bool)


__all__ = ["id2rgb", "rgb2id", "segmentation_mask"]

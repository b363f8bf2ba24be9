"""LSeg's multi-scale, flipped, sliding-window evaluation (lang-seg's `LSeg_MultiEvalModule`, from
PyTorch-Encoding), for the best accuracy at the cost of many forwards.

For each scale the image is resized (bilinear, corners aligned) so that its long side is
`ceil(base_size * scale)`. If that side fits in `crop_size`, the image is padded to a `crop_size` square (with the
normalised value of a black pixel) and run once; otherwise `crop_size` windows slide over it with stride
`crop_size * stride_ratio` (the image padded to at least `crop_size` first) and overlapping windows are averaged.
With `flip`, the logits of the horizontally flipped input are flipped back and added. Each scale's logits are
resized back to the image size and summed over scales; the label of a pixel is the argmax of the sum.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

LSEG_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def _resize(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=True)


def _pad(image: torch.Tensor, height: int, width: int, value: float) -> torch.Tensor:
    bottom, right = max(height - image.shape[-2], 0), max(width - image.shape[-1], 0)
    return F.pad(image, (0, right, 0, bottom), value=value) if bottom or right else image


@torch.no_grad()
def multi_scale_logits(
    model,
    pixel_values: torch.Tensor,
    class_embeddings: torch.Tensor,
    scales: tuple[float, ...] = LSEG_SCALES,
    flip: bool = True,
    base_size: int = 520,
    crop_size: int = 480,
    stride_ratio: float = 2 / 3,
    pad_value: float = -1.0,
) -> torch.Tensor:
    """Summed logits `(batch, num_labels, height, width)` of [`LSegForSemanticSegmentation`] over scales, flips
    and windows.

    pixel_values: the normalised image at its own size (`LSegImageProcessor(do_resize=False)`); class_embeddings:
    the label set's `get_text_features`, computed once for every forward; pad_value: a black pixel after
    normalisation (LSeg's mean = std = 0.5 give -1).
    """
    if crop_size % 32:
        raise ValueError(f"crop_size must be a multiple of 32, got {crop_size}.")
    if not scales:
        raise ValueError("Give at least one scale.")
    batch, _, height, width = pixel_values.shape

    def infer(window: torch.Tensor) -> torch.Tensor:
        logits = model(pixel_values=window, class_embeddings=class_embeddings).logits
        if flip:
            logits = logits + model(pixel_values=window.flip(-1), class_embeddings=class_embeddings).logits.flip(-1)
        return logits

    total = torch.zeros(batch, len(class_embeddings), height, width, device=pixel_values.device)
    stride = int(crop_size * stride_ratio)
    for scale in scales:
        long_size = int(math.ceil(base_size * scale))
        if height > width:
            new_height, new_width = long_size, int(width * long_size / height + 0.5)
        else:
            new_width, new_height = long_size, int(height * long_size / width + 0.5)
        image = _resize(pixel_values, new_height, new_width)
        if long_size <= crop_size:
            logits = infer(_pad(image, crop_size, crop_size, pad_value))[..., :new_height, :new_width]
        else:
            padded = _pad(image, crop_size, crop_size, pad_value)
            padded_height, padded_width = padded.shape[-2:]
            summed = torch.zeros(batch, len(class_embeddings), padded_height, padded_width, device=image.device)
            counts = torch.zeros(1, 1, padded_height, padded_width, device=image.device)
            rows = math.ceil(max(padded_height - crop_size, 0) / stride) + 1
            cols = math.ceil(max(padded_width - crop_size, 0) / stride) + 1
            for row in range(rows):
                for col in range(cols):
                    bottom = min(row * stride + crop_size, padded_height)
                    right = min(col * stride + crop_size, padded_width)
                    top, left = max(bottom - crop_size, 0), max(right - crop_size, 0)
                    window = _pad(padded[..., top:bottom, left:right], crop_size, crop_size, pad_value)
                    summed[..., top:bottom, left:right] += infer(window)[..., : bottom - top, : right - left]
                    counts[..., top:bottom, left:right] += 1
            logits = (summed / counts)[..., :new_height, :new_width]
        total += _resize(logits, height, width)
    return total


__all__ = ["LSEG_SCALES", "multi_scale_logits"]

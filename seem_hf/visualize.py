"""Pictures of segmentation results: the image with each segment tinted in its label's colour, outlined, and
named at its centre."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch

from seem_hf.image_utils import read_image


def label_color(label_id: int, label_colors: dict | None = None) -> tuple[int, int, int]:
    """The label's colour from `label_colors`, or a fixed, well-spread colour derived from its id."""
    if label_colors and label_id in label_colors:
        return tuple(int(c) for c in label_colors[label_id])
    hue = (label_id * 0.61803398875) % 1.0  # golden-ratio steps spread neighbouring ids apart
    rgb = PIL.Image.new("HSV", (1, 1), (int(hue * 255), 200, 230)).convert("RGB").getpixel((0, 0))
    return tuple(rgb)


def overlay_segments(
    image: PIL.Image.Image,
    segmentation: torch.Tensor | np.ndarray,
    segments_info: list[dict],
    id2label: dict | None = None,
    label_colors: dict | None = None,
    alpha: float = 0.55,
) -> PIL.Image.Image:
    """Overlay a panoptic or instance result (`segmentation` of segment ids, `segments_info` with `id` and
    `label_id`) on `image`. Pixels of no segment (0 or -1) are left as they are."""
    pixels = read_image(image).astype(np.float32)  # as the model saw it: EXIF-upright, 16-bit by the value rule
    segmentation = np.asarray(segmentation.cpu() if isinstance(segmentation, torch.Tensor) else segmentation)
    if segmentation.shape != pixels.shape[:2]:
        raise ValueError(f"Segmentation {segmentation.shape} does not match the image size {pixels.shape[:2]}.")
    tinted = pixels.copy()
    outline = np.zeros(segmentation.shape, dtype=bool)
    outline[:-1] |= segmentation[:-1] != segmentation[1:]
    outline[:, :-1] |= segmentation[:, :-1] != segmentation[:, 1:]
    for segment in segments_info:
        inside = segmentation == segment["id"]
        tinted[inside] = (1 - alpha) * pixels[inside] + alpha * np.array(label_color(segment["label_id"], label_colors))
    tinted[outline] = 255
    result = PIL.Image.fromarray(tinted.clip(0, 255).astype(np.uint8))
    draw = PIL.ImageDraw.Draw(result)
    for segment in segments_info:
        rows, cols = np.nonzero(segmentation == segment["id"])
        if len(rows) == 0:
            continue
        name = (id2label or {}).get(segment["label_id"], str(segment["label_id"]))
        draw.text((float(cols.mean()), float(rows.mean())), name, fill=(255, 255, 255), anchor="mm", stroke_width=2,
                  stroke_fill=(0, 0, 0))
    return result


def overlay_semantic(
    image: PIL.Image.Image,
    semantic: torch.Tensor | np.ndarray,
    id2label: dict | None = None,
    label_colors: dict | None = None,
    alpha: float = 0.55,
) -> PIL.Image.Image:
    """Overlay a semantic map (a label id per pixel) on `image`: each label present becomes one segment."""
    semantic = np.asarray(semantic.cpu() if isinstance(semantic, torch.Tensor) else semantic)
    labels = [int(label) for label in np.unique(semantic) if label >= 0]
    segments = [{"id": label + 1, "label_id": label} for label in labels]
    return overlay_segments(image, semantic + 1, segments, id2label, label_colors, alpha)


def overlay_masks(
    image: PIL.Image.Image,
    masks: torch.Tensor | np.ndarray,
    names: list[str] | None = None,
    points: list[tuple[float, float, bool]] = (),
    alpha: float = 0.55,
) -> PIL.Image.Image:
    """Overlay binary masks `(N, H, W)` (referring or interactive answers; they may overlap), each in its own
    colour and named by `names`, and mark prompt `points` (x, y, positive) as green (positive) or red dots."""
    masks = np.asarray(masks.cpu() if isinstance(masks, torch.Tensor) else masks, dtype=bool)
    pixels = read_image(image).astype(np.float32)  # as the model saw it: EXIF-upright, 16-bit by the value rule
    if masks.ndim != 3 or masks.shape[1:] != pixels.shape[:2]:
        raise ValueError(f"Masks {masks.shape} must be (N, {pixels.shape[0]}, {pixels.shape[1]}).")
    if names is not None and len(names) != len(masks):
        raise ValueError(f"overlay_masks got {len(masks)} masks and {len(names)} names: give one name per mask (or "
                         "names=None for none).")
    tinted = pixels.copy()
    for index, mask in enumerate(masks):
        tinted[mask] = (1 - alpha) * tinted[mask] + alpha * np.array(label_color(index))
        outline = np.zeros_like(mask)
        outline[:-1] |= mask[:-1] != mask[1:]
        outline[:, :-1] |= mask[:, :-1] != mask[:, 1:]
        tinted[outline] = 255
    result = PIL.Image.fromarray(tinted.clip(0, 255).astype(np.uint8))
    draw = PIL.ImageDraw.Draw(result)
    for index, mask in enumerate(masks):
        rows, cols = np.nonzero(mask)
        if names and len(rows):
            draw.text((float(cols.mean()), float(rows.mean())), names[index], fill=(255, 255, 255), anchor="mm",
                      stroke_width=2, stroke_fill=(0, 0, 0))
    for x, y, positive in points:
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(0, 220, 0) if positive else (230, 0, 0), outline=(0, 0, 0))
    return result


def save_overlay(picture: PIL.Image.Image, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


__all__ = ["label_color", "overlay_masks", "overlay_segments", "overlay_semantic", "save_overlay"]

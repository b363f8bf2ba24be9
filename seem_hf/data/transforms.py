"""Training augmentation shared by the models: large-scale jitter (random flip, resize by a random scale of
the output size, random crop, pad to a fixed square), as in SEEM, Mask2Former and detectron2's LSJ recipe."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image


@dataclass
class Augmented:
    """An augmented example: `image` (S, S, 3) uint8, `masks` (N', S, S) bool, `kept` (N',) the indices of
    the input segments that are still visible (a segment cropped out entirely is reported by its absence
    here, never silently), and `valid` (S, S) bool, False on padding."""

    image: np.ndarray
    masks: np.ndarray
    kept: np.ndarray
    valid: np.ndarray


@dataclass
class LargeScaleJitter:
    """Large-scale jitter to a fixed `output_size` square.

    The image is flipped horizontally with `flip_probability`, resized (bilinear; masks nearest) so that it
    fits a square of side `output_size * scale` with scale drawn uniformly from [`min_scale`, `max_scale`],
    cropped at a random place where it exceeds `output_size`, and padded with `pad_value` to `output_size`.
    """

    output_size: int = 1024
    min_scale: float = 0.1
    max_scale: float = 2.0
    flip_probability: float = 0.5
    pad_value: int = 128

    def __post_init__(self):
        if not 64 <= self.output_size <= 4096:
            raise ValueError(f"output_size must be between 64 and 4096, got {self.output_size}.")
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(f"Need 0 < min_scale <= max_scale, got {self.min_scale} and {self.max_scale}.")

    def __call__(self, image: np.ndarray, masks: np.ndarray, rng: np.random.Generator) -> Augmented:
        image, masks = np.asarray(image), np.asarray(masks, dtype=bool)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
            raise ValueError(f"Expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}.")
        if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
            raise ValueError(f"Masks {masks.shape} do not match the image size {image.shape[:2]}.")
        if rng.random() < self.flip_probability:
            image, masks = image[:, ::-1], masks[:, :, ::-1]
        height, width = image.shape[:2]
        target = self.output_size * rng.uniform(self.min_scale, self.max_scale)
        ratio = min(target / height, target / width)
        new_height, new_width = max(1, round(height * ratio)), max(1, round(width * ratio))
        image = np.asarray(PIL.Image.fromarray(np.ascontiguousarray(image)).resize((new_width, new_height),
                                                                                   PIL.Image.BILINEAR))
        masks = np.stack(
            [np.asarray(PIL.Image.fromarray(m).resize((new_width, new_height), PIL.Image.NEAREST)) for m in masks]
        ) if len(masks) else np.zeros((0, new_height, new_width), bool)
        top = int(rng.integers(0, new_height - self.output_size + 1)) if new_height > self.output_size else 0
        left = int(rng.integers(0, new_width - self.output_size + 1)) if new_width > self.output_size else 0
        image = image[top : top + self.output_size, left : left + self.output_size]
        masks = masks[:, top : top + self.output_size, left : left + self.output_size]
        size = self.output_size
        out_image = np.full((size, size, 3), self.pad_value, dtype=np.uint8)
        out_masks = np.zeros((len(masks), size, size), dtype=bool)
        valid = np.zeros((size, size), dtype=bool)
        out_image[: image.shape[0], : image.shape[1]] = image
        out_masks[:, : image.shape[0], : image.shape[1]] = masks
        valid[: image.shape[0], : image.shape[1]] = True
        kept = np.flatnonzero(out_masks.reshape(len(out_masks), -1).any(1))
        return Augmented(out_image, out_masks[kept], kept, valid)



def panoptic_training_transform(jitter: LargeScaleJitter, seed: int = 0):
    """A batch transform for `Dataset.with_transform` on rows of `load_coco_panoptic`: decodes each image and
    its segments, applies `jitter`, and returns `image` (S, S, 3) uint8, `masks` (N, S, S) bool, `labels`,
    `isthing`, `iscrowd` (N,) for the segments still visible, `segments_dropped` (how many the crop removed)
    and `valid` (S, S). Each call draws fresh randomness from (seed, image id, call count), so epochs differ,
    data-loader workers differ by image, and a run with the same seed repeats exactly."""
    from seem_hf.data.coco_panoptic import panoptic_targets

    calls = 0

    def transform(batch: dict) -> dict:
        nonlocal calls
        calls += 1
        columns = {key: [] for key in ("image", "masks", "labels", "isthing", "iscrowd", "segments_dropped", "valid")}
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        for row in rows:
            targets = panoptic_targets(row)
            rng = np.random.default_rng([seed, int(row["image_id"]), calls])
            augmented = jitter(np.asarray(row["image"].convert("RGB")), targets["masks"], rng)
            columns["image"].append(augmented.image)
            columns["masks"].append(augmented.masks)
            for key in ("labels", "isthing", "iscrowd"):
                columns[key].append(targets[key][augmented.kept])
            columns["segments_dropped"].append(len(targets["masks"]) - len(augmented.kept))
            columns["valid"].append(augmented.valid)
        return columns

    return transform


__all__ = ["Augmented", "LargeScaleJitter", "panoptic_training_transform"]

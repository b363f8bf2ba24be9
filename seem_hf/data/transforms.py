"""Training augmentation shared by the models: large-scale jitter (random flip, resize by a random scale of
the output size, random crop, pad to a fixed square), as in SEEM, Mask2Former and detectron2's LSJ recipe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from seem_hf.image_utils import read_annotated_image


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
        kept = np.flatnonzero(out_masks.reshape(len(out_masks), size * size).any(1))
        return Augmented(out_image, out_masks[kept], kept, valid)



def keep_stored_images(dataset, column: str = "image"):
    """`dataset` (a `datasets` `Dataset` or `IterableDataset`) with `column` left encoded, for `open_stored_image`:
    `datasets` turns a decoded image upright by its EXIF orientation, which would leave no choice to
    `read_annotated_image` when the annotation follows the stored pixels. Anything else comes back unchanged."""
    import datasets

    features = getattr(dataset, "features", None)
    if isinstance(dataset, (datasets.Dataset, datasets.IterableDataset)) and features is not None:
        feature = features.get(column)
        if isinstance(feature, datasets.Image) and feature.decode:
            return dataset.cast_column(column, datasets.Image(decode=False))
    return dataset


def missing_row_file(path) -> str:
    """The error of a dataset row's image or annotation file that is not there: the file, the one beside it in
    another case (`seem_hf.data.validation.missing_file`) and the ways out."""
    from seem_hf.data.validation import missing_file

    text = missing_file(Path(path), "an image of the dataset's rows", "correct the path", other_suffixes=False)
    return text + (", or drop the row." if "is there" in text else ": correct the path, or drop the row.")


_END_MARKERS = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}
"""What a whole JPEG (its end-of-image marker) and a whole PNG (its IEND chunk) hold after their image data."""


def _cut_short(image: PIL.Image.Image) -> bool:
    """Whether the file of `image`, just opened and not decoded, ends before its image data do, found without
    decoding: a JPEG or PNG lacks its end marker (`_END_MARKERS`) after the data (the last bytes are read; only a file
    with more after its marker, as phones append, is read whole). Other formats are decoded (PIL's WebP reader has
    read the whole file already). Data damaged within a file of whole length is not found here."""
    marker = _END_MARKERS.get(image.format)
    if marker is None:
        image.load()  # raises for a file cut short
        return False
    file, start = image.fp, image.fp.tell()  # after the header: a JPEG thumbnail's own marker lies before
    try:
        size = file.seek(0, 2)
        file.seek(max(start, size - len(marker)))
        if file.read() == marker:
            return False
        file.seek(start)
        return marker not in file.read()
    finally:
        file.seek(start)


def open_stored_image(value, decode: bool = True):
    """An image of a `keep_stored_images` row (`{"bytes", "path"}`) opened with its pixels as stored and its EXIF
    orientation kept (with `decode=False`, its header only: size and EXIF, the pixels not read, the file's end checked
    by `_cut_short`); any other value (a PIL image, an array) unchanged. Raises a `ValueError` naming the file when it
    is missing, no image or cut short."""
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        import io

        source = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value["path"]
        try:
            image = PIL.Image.open(source)
            if decode:
                image.load()  # one open file per row, not one per row ever read
            elif _cut_short(image):
                raise OSError(f"the file ends before its {image.format} data do (cut short, as by an interrupted "
                              "download or copy)")
        except FileNotFoundError as error:
            raise ValueError(missing_row_file(value["path"])) from error
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"Cannot read the image {value.get('path') or '(embedded bytes)'}: {error}. Replace the "
                             "file (a broken download or export?), or drop the row.") from error
        return image
    return value


class AugmentedPanopticDataset(torch.utils.data.Dataset):
    """Rows of `load_coco_panoptic`, decoded and augmented by `jitter` when read.

    Each item has `image` (S, S, 3) uint8, `masks` (N, S, S) bool, `labels`, `isthing`, `iscrowd` (N,) for the
    segments still visible, `segments_dropped` (how many the crop removed), `valid` (S, S), `image_id`,
    `epoch`, and the referring targets still visible: `grounding_masks` (G, S, S) with their `sentences`.
    Randomness comes from (seed, image id, epoch) only: epochs differ, any number of data-loader workers or
    processes give the same samples, and a run resumed at an epoch boundary sees exactly what an uninterrupted
    run would. Trainer (through accelerate's data loader) calls `set_epoch` at the start of every epoch in a
    one-process run; accelerate 1.16 does not forward it to the dataset when several processes shard the batches
    (its `DataLoaderShard.set_epoch` stops at the sampler), so there every epoch draws epoch 0's augmentation.
    """

    def __init__(self, dataset, jitter: LargeScaleJitter, seed: int = 0):
        self.dataset, self.jitter, self.seed = dataset, jitter, seed
        self.epoch = 0
        self._stored = keep_stored_images(dataset)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's augmentation; a wrapped dataset with epochs of its own (`ShapesStream`) moves too."""
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def _describe(self, index: int) -> str:
        try:
            import datasets

            row = self.dataset.cast_column("image", datasets.Image(decode=False))[int(index)]
            return f"image {row['image'].get('path')} (image_id {row['image_id']})"
        except Exception:
            return f"row {index}"

    def __getitem__(self, index: int) -> dict:
        try:
            row = dict(self._stored[int(index)])
            row["image"] = open_stored_image(row["image"])
            return augment_panoptic_row(row, self.jitter, self.seed, self.epoch)
        except Exception as error:  # name the sample: one bad file must not be a mystery in a long run
            raise ValueError(f"Could not read or augment {self._describe(index)}: {error}") from error


def augment_panoptic_row(row: dict, jitter: LargeScaleJitter, seed: int, epoch: int) -> dict:
    """One `load_coco_panoptic` row decoded and augmented by `jitter`, drawn from (seed, image id, epoch) only: the
    item `AugmentedPanopticDataset` describes (also what `--streaming` trains on). Where both the upright and the
    stored pixels of an EXIF-oriented image fit the annotation, the row's `annotated_pixels` (`upright` when it has
    none; `seem_hf.data.hf_datasets.PanopticRows` sets `stored`) picks one (`read_annotated_image`)."""
    from seem_hf.data.coco_panoptic import grounding_targets, panoptic_targets

    targets = panoptic_targets(row)
    referring, sentences = grounding_targets(row, targets["masks"])
    # numpy seeds take non-negative integers only: any id (negative ones included) maps to one, the same each time.
    rng = np.random.default_rng([int(value) % 2**64 for value in (seed, row["image_id"], epoch)])
    # Segments and referring masks go through the same flip, resize and crop.
    height, width = targets["masks"].shape[1:]
    image = read_annotated_image(row["image"], height, width, row.get("annotated_pixels", "upright"))
    augmented = jitter(image, np.concatenate([targets["masks"], referring]), rng)
    count = len(targets["masks"])
    segments, groundings = augmented.kept < count, augmented.kept >= count
    kept = augmented.kept[segments]
    return {
        "image": augmented.image,
        "masks": augmented.masks[segments],
        **{key: targets[key][kept] for key in ("labels", "isthing", "iscrowd")},
        "segments_dropped": count - len(kept),
        "valid": augmented.valid,
        "image_id": row["image_id"],
        "epoch": epoch,
        "grounding_masks": augmented.masks[groundings],
        "sentences": [sentences[i - count] for i in augmented.kept[groundings]],
    }


__all__ = ["AugmentedPanopticDataset", "Augmented", "LargeScaleJitter", "augment_panoptic_row", "keep_stored_images",
           "open_stored_image"]

"""The bundled dataset: synthetic scenes of textured stuff (sky, grass, wall, water) and coloured shapes
(circles, squares, triangles, stars), written in COCO-panoptic layout with grounding sentences and semantic
maps. Deterministic (same seed, same bytes) and fast, so examples, tests and the demo need no download. Also a
stream of unlimited training samples with a fixed held-out set (`ShapesStream`), from the same generator.

Layout, as COCO's (`<split>` is train or val):
    <out>/<split>/<image_id>.jpg
    <out>/annotations/panoptic_<split>.json   and  <out>/annotations/panoptic_<split>/<image_id>.png
    <out>/annotations/semantic_<split>/<image_id>.png   (contiguous label ids, 255 = void)
    <out>/annotations/grounding_<split>.json  (COCO-style annotations with RLE masks and `sentences[].raw`)
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch
from pycocotools import mask as mask_utils

from seem_hf.data.categories import CategorySpec, LabelVocabulary
from seem_hf.data.coco_panoptic import grounding_row, panoptic_row, write_semantic_maps
from seem_hf.data.panoptic_format import id2rgb

SHAPES_VOCABULARY = LabelVocabulary(
    [
        CategorySpec("sky", (135, 206, 235), False),
        CategorySpec("grass", (70, 150, 60), False),
        CategorySpec("wall", (170, 120, 90), False),
        CategorySpec("water", (30, 90, 160), False),
        CategorySpec("circle", (230, 60, 60), True),
        CategorySpec("square", (60, 90, 230), True),
        CategorySpec("triangle", (240, 200, 40), True),
        CategorySpec("star", (170, 70, 210), True),
    ]
)
STUFF = ("sky", "grass", "wall", "water")
SHAPES = ("circle", "square", "triangle", "star")
THING_COLORS = {"red": (215, 35, 35), "green": (30, 190, 70), "blue": (35, 70, 225), "yellow": (245, 210, 30)}
SIZES = {"small": (0.07, 0.11), "large": (0.15, 0.22)}  # radius as a fraction of the image side
MIN_VISIBLE_PIXELS = 24
IGNORE_INDEX = 255


@dataclass
class _Thing:
    shape: str
    color: str
    size: str
    center: tuple[float, float]
    radius: float
    mask: np.ndarray | None = None


def _texture(name: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A textured (height, width, 3) float background for a stuff category."""
    rows = np.arange(height)[:, None]
    cols = np.arange(width)[None, :]
    base = np.array(SHAPES_VOCABULARY.categories[STUFF.index(name)].color, dtype=np.float32)
    if name == "sky":
        shade = 25 * (rows / max(height - 1, 1)) + 0 * cols
    elif name == "grass":
        shade = 18 * np.sin(cols * rng.uniform(0.6, 1.2) + rng.uniform(0, 6)) + 0 * rows
    elif name == "wall":
        brick = ((rows // 12) % 2) * 8
        shade = -35.0 * (((rows % 12) == 0) | (((cols + brick) % 24) == 0))
    else:
        shade = 20 * np.sin(rows * 0.5 + 3 * np.sin(cols * 0.08 + rng.uniform(0, 6)))
    noise = rng.normal(0, 9, (height, width, 1))
    return base[None, None] + shade[..., None] + noise


def _shape_mask(thing: _Thing, height: int, width: int) -> np.ndarray:
    canvas = PIL.Image.new("L", (width, height), 0)
    draw = PIL.ImageDraw.Draw(canvas)
    (cx, cy), r = thing.center, thing.radius
    if thing.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=1)
    elif thing.shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=1)
    elif thing.shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + 0.8 * r), (cx + r, cy + 0.8 * r)], fill=1)
    else:
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        draw.polygon([(cx + q * np.cos(a), cy - q * np.sin(a)) for q, a in zip(radii, angles)], fill=1)
    return np.asarray(canvas, dtype=bool)


def _describe(things: list[_Thing], width: int, height: int) -> list[list[str]]:
    """Sentences that identify each thing among the others: the simplest description no other thing shares,
    then one with its place in the image."""
    sentences = []
    for thing in things:
        rows, cols = np.nonzero(thing.mask)
        across = ("on the left", "in the middle", "on the right")[min(int(3 * cols.mean() / width), 2)]
        down = ("at the top", "in the middle", "at the bottom")[min(int(3 * rows.mean() / height), 2)]
        candidates = [
            (f"the {thing.shape}", lambda o: o.shape == thing.shape),
            (f"the {thing.color} {thing.shape}", lambda o: (o.shape, o.color) == (thing.shape, thing.color)),
            (
                f"the {thing.size} {thing.color} {thing.shape}",
                lambda o: (o.shape, o.color, o.size) == (thing.shape, thing.color, thing.size),
            ),
        ]
        unique = [text for text, same in candidates if sum(same(other) for other in things) == 1]
        first = unique[0]  # the last candidate is unique by construction
        where = across if across != "in the middle" else down
        sentences.append([first, f"{first} {where}" if where != "in the middle" else f"{first} in the middle"])
    return sentences


def _scene(image_size: int, rng: np.random.Generator):
    """One image: pixels, per-segment masks (stuff first), category names and grounding sentences."""
    height = width = image_size
    stuff = [str(name) for name in rng.choice(STUFF, size=2, replace=False)]
    split_rows = rng.random() < 0.7
    boundary = int(rng.integers(height // 4, 3 * height // 4))
    first = (np.arange(height)[:, None] < boundary) if split_rows else (np.arange(width)[None, :] < boundary)
    first = np.broadcast_to(first, (height, width))
    pixels = np.where(first[..., None], _texture(stuff[0], height, width, rng), _texture(stuff[1], height, width, rng))

    things: list[_Thing] = []
    for _ in range(int(rng.integers(1, 6))):
        shape, color, size = str(rng.choice(SHAPES)), str(rng.choice(list(THING_COLORS))), str(rng.choice(list(SIZES)))
        if any((t.shape, t.color, t.size) == (shape, color, size) for t in things):
            continue  # keep every thing describable without ambiguity
        radius = rng.uniform(*SIZES[size]) * image_size
        # Centres may lie a little outside, so shapes touch and cross the borders.
        center = (float(rng.uniform(-0.05, 1.05) * width), float(rng.uniform(-0.05, 1.05) * height))
        things.append(_Thing(shape, color, size, center, radius))
    # Later shapes occlude earlier ones; a shape left with too few visible pixels is not drawn at all.
    while True:
        covered = np.zeros((height, width), dtype=bool)
        for thing in reversed(things):
            thing.mask = _shape_mask(thing, height, width) & ~covered
            covered |= thing.mask
        hidden = [t for t in things if t.mask.sum() < MIN_VISIBLE_PIXELS]
        if not hidden:
            break
        things.remove(hidden[0])
    for thing in things:
        shade = rng.normal(0, 6, (height, width, 1))
        color = np.array(THING_COLORS[thing.color], dtype=np.float32)
        pixels = np.where(thing.mask[..., None], color + shade, pixels)

    occupied = np.zeros((height, width), dtype=bool)
    for thing in things:
        occupied |= thing.mask
    masks = [first & ~occupied, ~first & ~occupied] + [thing.mask for thing in things]
    names = stuff + [thing.shape for thing in things]
    sentences = [[f"the {name}"] for name in stuff] + _describe(things, width, height)
    keep = [i for i, mask in enumerate(masks) if mask.any()]  # a stuff region may be fully covered
    image = PIL.Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    return image, [masks[i] for i in keep], [names[i] for i in keep], [sentences[i] for i in keep]


SPLIT_SPACES = {"train": 0, "val": 1}
"""Seed spaces: sample `index` of `split` draws from `np.random.default_rng([seed, SPLIT_SPACES[split], index])`, so the
held-out samples ("val") never come from the training stream's random numbers, whatever the counts."""


def shapes_sample_files(seed: int, index: int, image_size: int = 256, split: str = "train",
                        image_id: int | None = None) -> dict:
    """Sample `index` of `split` for `seed`, as the files of a COCO-panoptic folder: a pure function of
    (seed, split, index, image_size), the same bytes in any process. Returns `jpeg` and `png` (the image and
    panoptic PNG bytes), `image` (the `images` entry), `annotation` (the `annotations` entry) and `groundings`
    (grounding annotations with sentences; their `id`s count from 1 within the image). `image_id` defaults to
    `index + 1`."""
    if split not in SPLIT_SPACES:
        raise ValueError(f"split must be one of {sorted(SPLIT_SPACES)}, got {split!r}.")
    if not (isinstance(index, (int, np.integer)) and index >= 0):
        raise ValueError(f"A sample index is a non-negative integer, got {index!r}.")
    if not 64 <= image_size <= 2048:
        raise ValueError(f"image_size must be between 64 and 2048, got {image_size}.")
    image_id = int(index) + 1 if image_id is None else int(image_id)
    rng = np.random.default_rng([int(seed), SPLIT_SPACES[split], int(index)])
    picture, masks, names, sentences = _scene(image_size, rng)
    category_ids = {c["name"]: c["id"] for c in SHAPES_VOCABULARY.coco_categories()}
    stem = f"{image_id:06d}"
    ids = np.zeros((image_size, image_size), dtype=np.int64)
    segments, groundings = [], []
    for segment_id, (mask, name, texts) in enumerate(zip(masks, names, sentences), start=1):
        ids[mask] = segment_id
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        bbox = [int(v) for v in mask_utils.toBbox(rle)]
        area = int(mask.sum())
        segments.append({"id": segment_id, "category_id": category_ids[name], "iscrowd": 0, "bbox": bbox, "area": area})
        groundings.append(
            {
                "id": len(groundings) + 1,
                "image_id": image_id,
                "segment_id": segment_id,
                "category_id": category_ids[name],
                "iscrowd": 0,
                "bbox": bbox,
                "area": area,
                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                "sentences": [{"raw": text, "sent": text} for text in texts],
            }
        )
    jpeg, png = io.BytesIO(), io.BytesIO()
    picture.save(jpeg, format="JPEG", quality=95)
    PIL.Image.fromarray(id2rgb(ids)).save(png, format="PNG")
    return {
        "jpeg": jpeg.getvalue(),
        "png": png.getvalue(),
        "image": {"id": image_id, "file_name": f"{stem}.jpg", "height": image_size, "width": image_size},
        "annotation": {"image_id": image_id, "file_name": f"{stem}.png", "segments_info": segments},
        "groundings": groundings,
    }


def _write_split(root: Path, split: str, count: int, image_size: int, seed: int, first_id: int):
    paths = coco_panoptic_paths(root)[split]
    image_dir, panoptic_dir, semantic_dir = paths["image_dir"], paths["panoptic_dir"], paths["semantic_dir"]
    for folder in (image_dir, panoptic_dir):
        folder.mkdir(parents=True, exist_ok=True)
    images, annotations, groundings = [], [], []
    for index in range(count):
        sample = shapes_sample_files(seed, index, image_size, split, image_id=first_id + index)
        (image_dir / sample["image"]["file_name"]).write_bytes(sample["jpeg"])
        (panoptic_dir / sample["annotation"]["file_name"]).write_bytes(sample["png"])
        for grounding in sample["groundings"]:
            groundings.append(dict(grounding, id=len(groundings) + 1))
        images.append(sample["image"])
        annotations.append(sample["annotation"])
    panoptic_json, grounding_json = paths["panoptic_json"], paths["grounding_json"]
    categories = SHAPES_VOCABULARY.coco_categories()
    panoptic_json.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    grounding_json.write_text(json.dumps({"images": images, "annotations": groundings, "categories": categories}))
    write_semantic_maps(panoptic_dir, panoptic_json, semantic_dir, IGNORE_INDEX)
    return paths


def coco_panoptic_paths(root: str | Path, splits: tuple[str, ...] = ("train", "val")) -> dict[str, dict[str, Path]]:
    """The paths of a dataset in the layout above, per split: `image_dir`, `panoptic_dir`, `panoptic_json`,
    `semantic_dir`, `grounding_json` (whether or not they exist)."""
    root = Path(root)
    return {
        split: {
            "image_dir": root / split,
            "panoptic_dir": root / "annotations" / f"panoptic_{split}",
            "panoptic_json": root / "annotations" / f"panoptic_{split}.json",
            "semantic_dir": root / "annotations" / f"semantic_{split}",
            "grounding_json": root / "annotations" / f"grounding_{split}.json",
        }
        for split in splits
    }


def make_shapes_dataset(
    out_dir: str | Path, num_train: int = 64, num_val: int = 16, image_size: int = 256, seed: int = 0
) -> dict[str, dict[str, Path]]:
    """Write the synthetic shapes dataset under `out_dir` (layout in the module docstring) and return the
    paths it wrote, per split: `image_dir`, `panoptic_dir`, `panoptic_json`, `semantic_dir`,
    `grounding_json`. The same arguments always give the same bytes.

    The train split holds samples 0..num_train-1 of the training stream (`ShapesStream(seed, image_size)`), the
    val split samples 0..num_val-1 of the held-out set (`ShapesStream.held_out(num_val, seed, image_size)`):
    each split's images depend on its own count only, and the held-out images are never training samples."""
    if num_train < 0 or num_val < 0:
        raise ValueError(f"Image counts must be non-negative, got num_train={num_train}, num_val={num_val}.")
    if not 64 <= image_size <= 2048:
        raise ValueError(f"image_size must be between 64 and 2048, got {image_size}.")
    root = Path(out_dir)
    return {
        "train": _write_split(root, "train", num_train, image_size, seed, first_id=1),
        "val": _write_split(root, "val", num_val, image_size, seed, first_id=num_train + 1),
    }


class ShapesStream(torch.utils.data.Dataset):
    """Unlimited training data: the shapes generator as a stream of new samples, each a pure function of
    (seed, index), in the rows `load_coco_panoptic` gives for the on-disk folder (`image`, `panoptic`,
    `image_id`, `height`, `width`, `segments`, `groundings`; see `seem_hf.data.PANOPTIC_FEATURES`), so that
    `AugmentedPanopticDataset`, the collators and the examples take it unchanged.

        from seem_hf.data import AugmentedPanopticDataset, LargeScaleJitter, ShapesStream, load_coco_panoptic
        from seem_hf.data import make_shapes_dataset

        train = AugmentedPanopticDataset(ShapesStream(seed=0, image_size=256), LargeScaleJitter(256, 0.5, 2.0),
                                         seed=training_args.seed)
        held_out = ShapesStream.held_out(16, seed=0, image_size=256)      # in memory, or on disk for users:
        paths = make_shapes_dataset("shapes", num_train=0, num_val=16, image_size=256, seed=0)["val"]
        vocabulary = vocabulary_of(train.dataset)                          # SHAPES_VOCABULARY

    Item `i` of epoch `e` is sample `e * epoch_size + i` (`image_id` = sample index + 1), so every step sees new
    images and the stream never repeats; `sample(index)` reads any sample directly. The same (seed, index,
    image_size) gives the same bytes in any process: the image is decoded from the JPEG bytes the on-disk folder
    would hold, so the first `num_train` samples equal `make_shapes_dataset(..., seed)`'s train split exactly.
    The held-out set (`held_out`, the folder's val split) draws from another seed space: no held-out image is a
    training sample, and it stays the same for every `epoch_size` and count.

    Why map-style with a finite `epoch_size`, not an `IterableDataset`: transformers' Trainer and accelerate then
    shard it the way they shard any dataset. The sampler hands each process (accelerate's `BatchSamplerShard`)
    and each data-loader worker (PyTorch) its own indices, so ranks and workers never repeat a sample and each
    generates only its own; resuming skips batches by index without generating them; `len()` gives Trainer its
    epoch arithmetic. An `IterableDataset` would be generated whole on the first process and dispatched, or
    generated whole on every process and sliced, and resumed by generating every skipped sample.

    Epochs: the default `epoch_size` (1,000,000 samples, 125,000 steps at a global batch of 8) covers a whole run
    in one epoch. Beyond it, `set_epoch(e)` (which `AugmentedPanopticDataset.set_epoch` forwards) moves to the next
    block of samples. accelerate 1.16 calls a dataset's `set_epoch` in one process only (with several processes
    it stops at the sampler), so a multi-process run longer than one epoch should set `epoch_size` to cover it.
    """

    def __init__(self, seed: int = 0, image_size: int = 256, epoch_size: int = 1_000_000, split: str = "train"):
        if split not in SPLIT_SPACES:
            raise ValueError(f"split must be one of {sorted(SPLIT_SPACES)}, got {split!r}.")
        if not 64 <= image_size <= 2048:
            raise ValueError(f"image_size must be between 64 and 2048, got {image_size}.")
        if not (isinstance(epoch_size, int) and epoch_size > 0):
            raise ValueError(f"epoch_size must be a positive integer, got {epoch_size!r}.")
        self.seed, self.image_size, self.epoch_size, self.split = int(seed), int(image_size), epoch_size, split
        self.epoch = 0
        self.vocabulary = SHAPES_VOCABULARY
        self._contiguous = {c["id"]: label for label, c in enumerate(SHAPES_VOCABULARY.coco_categories())}
        self._categories = {c["id"]: c for c in SHAPES_VOCABULARY.coco_categories()}

    @classmethod
    def held_out(cls, count: int, seed: int = 0, image_size: int = 256) -> ShapesStream:
        """The fixed held-out set: `count` samples of the val seed space, the same at every epoch; equal to
        `make_shapes_dataset(..., num_val=count, seed=seed)`'s val split, apart from its `image_id`s (here
        index + 1; there, after the train split's)."""
        return cls(seed, image_size, epoch_size=count, split="val")

    def set_epoch(self, epoch: int) -> None:
        """Move the training stream to the samples of `epoch` (the held-out set does not move)."""
        if self.split == "train":
            self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.epoch_size

    def __getitem__(self, position: int) -> dict:
        if not 0 <= int(position) < self.epoch_size:
            raise IndexError(f"Position {position} is outside this epoch's {self.epoch_size} samples.")
        return self.sample(self.epoch * self.epoch_size + int(position))

    def sample(self, index: int) -> dict:
        """Sample `index` of this stream's seed space as a `load_coco_panoptic` row."""
        files = shapes_sample_files(self.seed, index, self.image_size, self.split)
        groundings = [grounding_row(annotation) for annotation in files["groundings"]]
        return panoptic_row(files["image"], files["annotation"], PIL.Image.open(io.BytesIO(files["jpeg"])),
                            PIL.Image.open(io.BytesIO(files["png"])), self._contiguous, self._categories, groundings)


__all__ = ["SHAPES_VOCABULARY", "SPLIT_SPACES", "ShapesStream", "coco_panoptic_paths", "make_shapes_dataset",
           "shapes_sample_files"]

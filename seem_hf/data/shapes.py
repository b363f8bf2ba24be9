"""The bundled dataset: synthetic scenes of textured stuff (sky, grass, wall, water) and coloured shapes
(circles, squares, triangles, stars), written in COCO-panoptic layout with grounding sentences and semantic
maps. Deterministic (same seed, same bytes) and fast, so examples, tests and the demo need no download. Also a
stream of unlimited training samples with a fixed held-out set (`ShapesStream`), from the same generator.

Two domains (`SHAPES_DOMAINS`) share the generator: `shapes` (the above) and `terrain`, for transfer: other shapes
(hexagon, cross, ring, diamond) in other colours on other stuff (sand, snow, road, lava), with their own referring
sentences, so that a model trained on `shapes` knows the task but none of the classes.

Layout, as COCO's (`<split>` is train or val):
    <out>/<split>/<image_id>.jpg
    <out>/annotations/panoptic_<split>.json   and  <out>/annotations/panoptic_<split>/<image_id>.png
    <out>/annotations/semantic_<split>/<image_id>.png   (contiguous label ids, 255 = void)
    <out>/annotations/grounding_<split>.json  (COCO-style annotations with RLE masks and `sentences[].raw`)
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
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

TERRAIN_VOCABULARY = LabelVocabulary(
    [
        CategorySpec("sand", (214, 186, 122), False),
        CategorySpec("snow", (236, 240, 246), False),
        CategorySpec("road", (82, 82, 88), False),
        CategorySpec("lava", (150, 32, 12), False),
        CategorySpec("hexagon", (250, 140, 30), True),
        CategorySpec("cross", (30, 200, 210), True),
        CategorySpec("ring", (210, 50, 170), True),
        CategorySpec("diamond", (40, 40, 40), True),
    ]
)


@dataclass(frozen=True)
class ShapesDomain:
    """What a domain of the generator draws and says: its categories (stuff first, then shapes), the colours and
    size words of its things, the place phrases of its sentences (left/middle/right, top/middle/bottom), how a
    stuff region is named, and the seed space it draws from (appended to `[seed, split, index]`, so that the
    domains never share random numbers; empty for `shapes`, whose bytes predate the second domain)."""

    name: str
    vocabulary: LabelVocabulary
    thing_colors: dict[str, tuple[int, int, int]]
    sizes: dict[str, tuple[float, float]]
    across: tuple[str, str, str]
    down: tuple[str, str, str]
    stuff_sentence: str = "the {name}"
    seed_space: tuple[int, ...] = field(default=())

    @property
    def stuff(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.vocabulary.categories if not c.isthing)

    @property
    def shapes(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.vocabulary.categories if c.isthing)


SHAPES_DOMAINS = {
    "shapes": ShapesDomain(
        "shapes", SHAPES_VOCABULARY, THING_COLORS, SIZES,
        across=("on the left", "in the middle", "on the right"), down=("at the top", "in the middle", "at the bottom"),
    ),
    "terrain": ShapesDomain(
        "terrain", TERRAIN_VOCABULARY,
        {"orange": (250, 130, 20), "cyan": (20, 200, 215), "magenta": (215, 40, 175), "black": (25, 25, 25)},
        {"tiny": (0.07, 0.11), "big": (0.15, 0.22)},
        across=("near the left edge", "in the centre", "near the right edge"),
        down=("near the top", "in the centre", "near the bottom"),
        stuff_sentence="the {name} region", seed_space=(1,),
    ),
}
"""The generator's domains by name: `shapes` (the bundled dataset, what the embedded defaults learnt) and `terrain`
(disjoint classes, for transfer)."""


def shapes_domain(domain: str | ShapesDomain) -> ShapesDomain:
    """The `ShapesDomain` named `domain` (or `domain` itself)."""
    if isinstance(domain, ShapesDomain):
        return domain
    if domain not in SHAPES_DOMAINS:
        raise ValueError(f"Unknown shapes domain {domain!r}; choose one of {sorted(SHAPES_DOMAINS)}.")
    return SHAPES_DOMAINS[domain]


@dataclass
class _Thing:
    shape: str
    color: str
    size: str
    center: tuple[float, float]
    radius: float
    mask: np.ndarray | None = None


def _texture(name: str, height: int, width: int, rng: np.random.Generator, domain: ShapesDomain) -> np.ndarray:
    """A textured (height, width, 3) float background for a stuff category of `domain`."""
    rows = np.arange(height)[:, None]
    cols = np.arange(width)[None, :]
    base = np.array(domain.vocabulary.categories[domain.stuff.index(name)].color, dtype=np.float32)
    if name == "sky":
        shade = 25 * (rows / max(height - 1, 1)) + 0 * cols
    elif name == "grass":
        shade = 18 * np.sin(cols * rng.uniform(0.6, 1.2) + rng.uniform(0, 6)) + 0 * rows
    elif name == "wall":
        brick = ((rows // 12) % 2) * 8
        shade = -35.0 * (((rows % 12) == 0) | (((cols + brick) % 24) == 0))
    elif name == "water":
        shade = 20 * np.sin(rows * 0.5 + 3 * np.sin(cols * 0.08 + rng.uniform(0, 6)))
    elif name == "sand":  # diagonal dune ripples
        shade = 16 * np.sin((rows + cols) * rng.uniform(0.25, 0.4) + rng.uniform(0, 6))
    elif name == "snow":  # soft drifts
        shade = 6 * np.sin(cols * 0.05 + rows * 0.02 + rng.uniform(0, 6))
    elif name == "road":  # a dashed lane line across the image
        lane = int(rng.integers(height // 4, 3 * height // 4))
        shade = 140.0 * ((np.abs(rows - lane) < 2) & ((cols // 16) % 2 == 0))
    elif name == "lava":  # bright cracks
        shade = 90.0 * (np.sin(rows * 0.3 + rng.uniform(0, 6)) * np.sin(cols * 0.3 + rng.uniform(0, 6)) > 0.8)
    else:
        raise ValueError(f"No texture for stuff category {name!r}; add one to _texture.")
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
    elif thing.shape == "star":
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        draw.polygon([(cx + q * np.cos(a), cy - q * np.sin(a)) for q, a in zip(radii, angles)], fill=1)
    elif thing.shape == "hexagon":  # flat top: fills 3/4 of its box
        draw.polygon([(cx + r * np.cos(a), cy - r * np.sin(a)) for a in np.arange(6) * np.pi / 3], fill=1)
    elif thing.shape == "cross":  # arms 0.44 r wide: fills ~0.39 of its box
        arm = 0.22 * r
        draw.rectangle((cx - r, cy - arm, cx + r, cy + arm), fill=1)
        draw.rectangle((cx - arm, cy - r, cx + arm, cy + r), fill=1)
    elif thing.shape == "ring":  # hole of 0.45 r: fills ~0.62 of its box
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=1)
        draw.ellipse((cx - 0.45 * r, cy - 0.45 * r, cx + 0.45 * r, cy + 0.45 * r), fill=0)
    elif thing.shape == "diamond":  # fills 1/2 of its box
        draw.polygon([(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r), (cx - 0.7 * r, cy)], fill=1)
    else:
        raise ValueError(f"No drawing for shape {thing.shape!r}; add one to _shape_mask.")
    return np.asarray(canvas, dtype=bool)


def _describe(things: list[_Thing], width: int, height: int, domain: ShapesDomain) -> list[list[str]]:
    """Sentences that identify each thing among the others: the simplest description no other thing shares,
    then one with its place in the image."""
    sentences = []
    for thing in things:
        rows, cols = np.nonzero(thing.mask)
        across = domain.across[min(int(3 * cols.mean() / width), 2)]
        down = domain.down[min(int(3 * rows.mean() / height), 2)]
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
        where = across if across != domain.across[1] else down  # the middle: up or down, if not the centre too
        sentences.append([first, f"{first} {where}"])
    return sentences


def _scene(image_size: int, rng: np.random.Generator, domain: ShapesDomain):
    """One image of `domain`: pixels, per-segment masks (stuff first), category names and grounding sentences."""
    height = width = image_size
    stuff = [str(name) for name in rng.choice(domain.stuff, size=2, replace=False)]
    split_rows = rng.random() < 0.7
    boundary = int(rng.integers(height // 4, 3 * height // 4))
    first = (np.arange(height)[:, None] < boundary) if split_rows else (np.arange(width)[None, :] < boundary)
    first = np.broadcast_to(first, (height, width))
    pixels = np.where(first[..., None], _texture(stuff[0], height, width, rng, domain),
                      _texture(stuff[1], height, width, rng, domain))

    things: list[_Thing] = []
    for _ in range(int(rng.integers(1, 6))):
        shape, color = str(rng.choice(domain.shapes)), str(rng.choice(list(domain.thing_colors)))
        size = str(rng.choice(list(domain.sizes)))
        if any((t.shape, t.color, t.size) == (shape, color, size) for t in things):
            continue  # keep every thing describable without ambiguity
        radius = rng.uniform(*domain.sizes[size]) * image_size
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
        color = np.array(domain.thing_colors[thing.color], dtype=np.float32)
        pixels = np.where(thing.mask[..., None], color + shade, pixels)

    occupied = np.zeros((height, width), dtype=bool)
    for thing in things:
        occupied |= thing.mask
    masks = [first & ~occupied, ~first & ~occupied] + [thing.mask for thing in things]
    names = stuff + [thing.shape for thing in things]
    sentences = [[domain.stuff_sentence.format(name=name)] for name in stuff] + _describe(things, width, height, domain)
    keep = [i for i, mask in enumerate(masks) if mask.any()]  # a stuff region may be fully covered
    image = PIL.Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    return image, [masks[i] for i in keep], [names[i] for i in keep], [sentences[i] for i in keep]


SPLIT_SPACES = {"train": 0, "val": 1}
"""Seed spaces: sample `index` of `split` draws from `np.random.default_rng([seed, SPLIT_SPACES[split], index])`, so the
held-out samples ("val") never come from the training stream's random numbers, whatever the counts."""


def shapes_sample_files(seed: int, index: int, image_size: int = 256, split: str = "train",
                        image_id: int | None = None, domain: str | ShapesDomain = "shapes") -> dict:
    """Sample `index` of `split` for `seed` in `domain` (`SHAPES_DOMAINS`), as the files of a COCO-panoptic
    folder: a pure function of (domain, seed, split, index, image_size), the same bytes in any process. Returns
    `jpeg` and `png` (the image and panoptic PNG bytes), `image` (the `images` entry), `annotation` (the
    `annotations` entry) and `groundings` (grounding annotations with sentences; their `id`s count from 1 within the
    image). `image_id` defaults to `index + 1`."""
    if split not in SPLIT_SPACES:
        raise ValueError(f"split must be one of {sorted(SPLIT_SPACES)}, got {split!r}.")
    if not (isinstance(index, (int, np.integer)) and index >= 0):
        raise ValueError(f"A sample index is a non-negative integer, got {index!r}.")
    if not 64 <= image_size <= 2048:
        raise ValueError(f"image_size must be between 64 and 2048, got {image_size}.")
    domain = shapes_domain(domain)
    image_id = int(index) + 1 if image_id is None else int(image_id)
    rng = np.random.default_rng([int(seed), SPLIT_SPACES[split], int(index), *domain.seed_space])
    picture, masks, names, sentences = _scene(image_size, rng, domain)
    category_ids = {c["name"]: c["id"] for c in domain.vocabulary.coco_categories()}
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


def _write_split(root: Path, split: str, count: int, image_size: int, seed: int, first_id: int,
                 domain: ShapesDomain):
    paths = coco_panoptic_paths(root)[split]
    image_dir, panoptic_dir, semantic_dir = paths["image_dir"], paths["panoptic_dir"], paths["semantic_dir"]
    for folder in (image_dir, panoptic_dir):
        folder.mkdir(parents=True, exist_ok=True)
    images, annotations, groundings = [], [], []
    for index in range(count):
        sample = shapes_sample_files(seed, index, image_size, split, image_id=first_id + index, domain=domain)
        (image_dir / sample["image"]["file_name"]).write_bytes(sample["jpeg"])
        (panoptic_dir / sample["annotation"]["file_name"]).write_bytes(sample["png"])
        for grounding in sample["groundings"]:
            groundings.append(dict(grounding, id=len(groundings) + 1))
        images.append(sample["image"])
        annotations.append(sample["annotation"])
    panoptic_json, grounding_json = paths["panoptic_json"], paths["grounding_json"]
    categories = domain.vocabulary.coco_categories()
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
    out_dir: str | Path, num_train: int = 64, num_val: int = 16, image_size: int = 256, seed: int = 0,
    domain: str | ShapesDomain = "shapes",
) -> dict[str, dict[str, Path]]:
    """Write the synthetic shapes dataset under `out_dir` (layout in the module docstring) and return the
    paths it wrote, per split: `image_dir`, `panoptic_dir`, `panoptic_json`, `semantic_dir`,
    `grounding_json`. The same arguments always give the same bytes.

    The train split holds samples 0..num_train-1 of the training stream (`ShapesStream(seed, image_size)`), the
    val split samples 0..num_val-1 of the held-out set (`ShapesStream.held_out(num_val, seed, image_size)`):
    each split's images depend on its own count only, and the held-out images are never training samples.
    `domain`: which of `SHAPES_DOMAINS` (`terrain`: the second domain, for transfer)."""
    if num_train < 0 or num_val < 0:
        raise ValueError(f"Image counts must be non-negative, got num_train={num_train}, num_val={num_val}.")
    if not 64 <= image_size <= 2048:
        raise ValueError(f"image_size must be between 64 and 2048, got {image_size}.")
    root, domain = Path(out_dir), shapes_domain(domain)
    return {
        "train": _write_split(root, "train", num_train, image_size, seed, first_id=1, domain=domain),
        "val": _write_split(root, "val", num_val, image_size, seed, first_id=num_train + 1, domain=domain),
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

    `domain` picks the generator's domain (`SHAPES_DOMAINS`): `ShapesStream(domain="terrain")` and
    `ShapesStream.held_out(16, domain="terrain")` are the second domain's stream and held-out set, with its own
    `vocabulary` (`TERRAIN_VOCABULARY`).
    """

    def __init__(self, seed: int = 0, image_size: int = 256, epoch_size: int = 1_000_000, split: str = "train",
                 domain: str | ShapesDomain = "shapes"):
        if split not in SPLIT_SPACES:
            raise ValueError(f"split must be one of {sorted(SPLIT_SPACES)}, got {split!r}.")
        if not 64 <= image_size <= 2048:
            raise ValueError(f"image_size must be between 64 and 2048, got {image_size}.")
        if not (isinstance(epoch_size, int) and epoch_size > 0):
            raise ValueError(f"epoch_size must be a positive integer, got {epoch_size!r}.")
        self.seed, self.image_size, self.epoch_size, self.split = int(seed), int(image_size), epoch_size, split
        self.epoch = 0
        self.domain = shapes_domain(domain)
        self.vocabulary = self.domain.vocabulary
        self._contiguous = {c["id"]: label for label, c in enumerate(self.vocabulary.coco_categories())}
        self._categories = {c["id"]: c for c in self.vocabulary.coco_categories()}

    @classmethod
    def held_out(cls, count: int, seed: int = 0, image_size: int = 256,
                 domain: str | ShapesDomain = "shapes") -> ShapesStream:
        """The fixed held-out set: `count` samples of the val seed space, the same at every epoch; equal to
        `make_shapes_dataset(..., num_val=count, seed=seed)`'s val split, apart from its `image_id`s (here
        index + 1; there, after the train split's)."""
        return cls(seed, image_size, epoch_size=count, split="val", domain=domain)

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
        files = shapes_sample_files(self.seed, index, self.image_size, self.split, domain=self.domain)
        groundings = [grounding_row(annotation) for annotation in files["groundings"]]
        return panoptic_row(files["image"], files["annotation"], PIL.Image.open(io.BytesIO(files["jpeg"])),
                            PIL.Image.open(io.BytesIO(files["png"])), self._contiguous, self._categories, groundings)


__all__ = ["SHAPES_DOMAINS", "SHAPES_VOCABULARY", "SPLIT_SPACES", "TERRAIN_VOCABULARY", "ShapesDomain", "ShapesStream",
           "coco_panoptic_paths", "make_shapes_dataset", "shapes_domain", "shapes_sample_files"]

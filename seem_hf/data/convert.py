"""Convert the formats labelling tools write into the package's COCO-panoptic layout (the one
`seem_hf.data.make_shapes_dataset` writes and `--data_dir` trains on), and add referring sentences to a converted
folder:

    python -m seem_hf.data.convert coco-instances INSTANCES_JSON IMAGE_DIR OUT_DIR [--stuff-dir DIR ...]
    python -m seem_hf.data.convert semantic-masks IMAGE_DIR MASK_DIR CATEGORIES OUT_DIR [--things one-per-class]
    python -m seem_hf.data.convert instance-annotations IMAGE_DIR ANNOTATION_DIR SEMANTIC_CLASS_TO_ID OUT_DIR
    python -m seem_hf.data.convert sentences DATA_DIR SENTENCES_FILE

The folder converters read image and label folders with their subfolders (Cityscapes' `images/aachen/*.jpg` with
`masks/aachen/*.png`), pairing files by their relative path without suffix (suffixes case-insensitive), and keep the
subfolders in the output's file names; sizes are compared as the loader reads images: upright by their EXIF
orientation, or as stored. Each converter writes, for one split (`--split`, default train), `OUT_DIR/<split>/` (the
images, hard-linked or copied), `OUT_DIR/annotations/panoptic_<split>.json` with its PNGs, `grounding_<split>.json`
(empty until `sentences` adds to it) and the semantic maps (`write_semantic_maps`), then checks the result with
`validate_coco_panoptic`. Every problem of the input is found in one pass, each line naming the file, the image and
the segment. By default a conversion with problems writes nothing and raises `ConversionError` listing them all;
with `skip_problems=True` (`--skip-problems`) it converts the rest and its report lists what was skipped. The
report's `summary()` (the CLI's last line) says how many images and segments were converted and skipped. Images are
converted one at a time (memory flat in their number), in `num_workers` processes (`--num-workers`) where the system
can fork; the output and the order of the problems do not depend on it.

The rules, per format:
- `coco-instances` (a COCO instances JSON, as CVAT, Label Studio, Roboflow and labelme2coco export; polygons and RLE
  decoded by pycocotools): one segment per annotation, crowd annotations kept as `iscrowd` segments (`iscrowd` 0/1,
  true/false or the texts "0"/"1"). Categories keep their ids, except that ids counted from 0 (Label Studio;
  Roboflow's supercategory 0) are renumbered 1..K in id order, names kept, and the report's `notes` say so; a
  category no annotation uses stays in the label set (noted). Images keep their `file_name`'s subfolders when the
  file is found there. Where instances overlap, the smaller one is on top (`overlap="smaller_on_top"`: a bag stays
  visible over its person), or the later one in the JSON (`overlap="later_on_top"`). Pixels no instance covers take
  the class of an optional stuff map (index PNGs named like the images plus a category table; one segment per
  class), or stay unlabelled.
- `semantic-masks` (index PNGs, such as ADE20K's, or colour PNGs, plus a category table of value or colour, name and
  thing/stuff): a stuff class is one segment; a thing class is split into connected components (8-connected;
  touching instances of one class merge, as a semantic map cannot separate them) or kept one segment per class
  (`things="one_per_class"`). The ignore index (index PNGs) and the void colour (colour PNGs) are unlabelled.
- `instance-annotations` (transformers' run_instance_segmentation.py layout: a 3-channel PNG per image with the
  semantic class in channel 0, the instance id in channel 1 and zeros in channel 2, plus `semantic_class_to_id`):
  one segment per (class, instance) pair; a class named in `stuff_classes` is one segment whatever its instance
  ids; with `do_reduce_labels`, class 0 is the background and unlabelled; class `ignore_index` (255) is unlabelled.
- `sentences` (CSV or JSON rows of `image` (file name, stem or id), `sentence`, and `segment_id`, `annotation_id`,
  `instance_id` or `polygon`): the image's exact file name wins, and a key that names different images as an id and
  as a file name or stem is refused as ambiguous; each sentence is attached to its segment, named by the converted
  folder's segment id, by the input's id (the COCO instances annotation `id`, the instance id of an instance
  annotation; the converters keep them in `segments_info`), or found as the segment its polygon overlaps most (IoU
  at least `MIN_GROUNDING_IOU`); sentences of one segment share one grounding annotation, whose mask is the
  segment's.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import multiprocessing
import os
import re
import shutil
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
from pycocotools import mask as mask_utils
from scipy import ndimage

from seem_hf.data.categories import LabelVocabulary
from seem_hf.data.coco_panoptic import semantic_from_panoptic
from seem_hf.data.panoptic_format import id2rgb, rgb2id, segmentation_mask
from seem_hf.data.shapes import IGNORE_INDEX, coco_panoptic_paths
from seem_hf.data.validation import (
    _READABLE_IMAGE_MODES,
    MIN_GROUNDING_IOU,
    missing_file,
    plural,
    read_utf8,
    validate_coco_panoptic,
)
from seem_hf.image_utils import image_size
from seem_hf.visualize import label_color

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
"""The files an image folder is read for (case-insensitive)."""
POLYGON_TOLERANCE = 1.0
"""Pixels a polygon point may lie outside the image (tools round the far edge to `width` or `width + 0.5`); a point
further out means the polygon was drawn on another image or with x and y swapped."""
OVERLAP_RULES = ("smaller_on_top", "later_on_top")
SOURCE_IDS = ("annotation_id", "instance_id")
"""Where a segment came from, kept in its `segments_info` entry so sentences can name it as the input did: the COCO
instances annotation's `id` (coco-instances), the instance id of channel 1 (instance-annotations)."""
THING_RULES = ("components", "one_per_class")


class ConversionError(ValueError):
    """The input has problems (`problems`, one line each naming the file, the image and the segment); nothing was
    written."""

    def __init__(self, problems: list[str], what: str):
        self.problems = problems
        shown = "\n".join(problems[:100]) + (f"\n... and {len(problems) - 100} more" if len(problems) > 100 else "")
        super().__init__(
            f"{plural(len(problems), 'problem')} in the {what} (nothing was written):\n{shown}\nFix them, or convert "
            f"the rest and list what is skipped with skip_problems=True (CLI: --skip-problems)."
        )


@dataclass
class ConversionReport:
    """What a conversion wrote (`paths`: the split's `image_dir`, `panoptic_dir`, `panoptic_json`, `semantic_dir`,
    `grounding_json`), skipped (`problems`, each naming the file, image and segment left out) and changed on the way
    (`notes`, such as category ids renumbered)."""

    format: str
    paths: dict[str, Path]
    images: int = 0
    segments: int = 0
    things: int = 0
    groundings: int = 0
    sentences: int = 0
    skipped_images: int = 0
    skipped_segments: int = 0
    skipped_sentences: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: what was converted, where, and what was skipped."""
        if self.format == "sentences":
            done = (f"attached {plural(self.sentences, 'sentence')} to {plural(self.groundings, 'segment')} in "
                    f"{self.paths['grounding_json']}")
            skipped = f"{plural(self.skipped_sentences, 'sentence')}"
        else:
            done = (f"converted {plural(self.images, 'image')} with {plural(self.segments, 'segment')} "
                    f"({self.things} things, {self.segments - self.things} stuff) into {self.paths['panoptic_json']}")
            skipped = (f"{plural(self.skipped_images, 'image')} and {plural(self.skipped_segments, 'segment')}")
        listed = f" ({plural(len(self.problems), 'problem')} listed)" if self.problems else ""
        return f"{self.format}: {done}; skipped {skipped}{listed}."


# ---------------------------------------------------------------------------------------------------------------
# Reading the inputs


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_text(path: Path, what: str) -> str:
    """`read_utf8` of an input file, its problems raised as a `ConversionError` naming it."""
    try:
        return read_utf8(path)
    except FileNotFoundError:
        raise ConversionError([f"{path}: file is missing ({what})"], what) from None
    except ValueError as error:  # not UTF-8
        raise ConversionError([f"{error} ({what})"], what) from None


def _read_json(path: Path, what: str):
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConversionError([f"{path}: not valid JSON ({what}): {error}"], what) from None


def _read_csv(path: Path, what: str) -> list[dict]:
    """The rows of a CSV file with a header, as dicts (UTF-8, with or without a byte-order mark)."""
    return list(csv.DictReader(io.StringIO(_read_text(path, what), newline="")))


def _parse_flag(value, where: str, problems: list[str]) -> bool | None:
    text = str(value).strip().lower()
    if text in ("1", "true", "thing", "yes"):
        return True
    if text in ("0", "false", "stuff", "no"):
        return False
    problems.append(f"{where}: `isthing` must be thing/stuff, 1/0 or true/false, got {value!r}")
    return None


def _parse_color(value, where: str, problems: list[str]) -> tuple[int, int, int] | None:
    """A colour as [r, g, b], '#rrggbb', 'r g b' or 'r,g,b'."""
    parts = value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("#") and len(text) == 7:
            try:
                return tuple(int(text[i:i + 2], 16) for i in (1, 3, 5))
            except ValueError:
                parts = None
        else:
            parts = text.strip("[]()").replace(",", " ").split()
    try:
        color = tuple(int(part) for part in parts)
    except (TypeError, ValueError):
        color = ()
    if len(color) != 3 or not all(0 <= c <= 255 for c in color):
        problems.append(f"{where}: `color` must be three integers in 0..255 ([r, g, b], 'r g b' or '#rrggbb'), "
                        f"got {value!r}")
        return None
    return color


_LABELMAP_LINE = re.compile(r"^\s*([^:#][^:]*):\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*(:.*)?$")
"""A line of the `labelmap.txt` CVAT and Pascal VOC segmentation exports write: `name:r,g,b:parts:actions`."""


def _refuse_labelmap(path: Path) -> None:
    """Refuse a CVAT / Pascal VOC `labelmap.txt` given as the category table, with the table to write in its place:
    it lists names and colours but not which classes are things, which the converter cannot guess."""
    try:
        lines = [line for line in _read_text(path, "category table").splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
    except ConversionError:
        return  # the JSON reader names the problem
    matches = [_LABELMAP_LINE.match(line) for line in lines]
    if not lines or not all(matches):
        return
    rows = [(match[1].strip(), tuple(int(match[k]) for k in (2, 3, 4))) for match in matches]
    table = "\n".join(["name,isthing,color"] + [f"{name},thing,{r} {g} {b}" for name, (r, g, b) in rows
                                                 if (r, g, b) != (0, 0, 0)])
    void = [name for name, colour in rows if colour == (0, 0, 0)]
    raise ConversionError(
        [f"{path}: a labelmap.txt (CVAT, Pascal VOC: name:r,g,b), which does not say which classes are things "
         "(instances, split into connected regions) and which are stuff; give a category table instead, a CSV such "
         f"as this one with `thing` changed to `stuff` where a class has no instances:\n{table}"
         + (f"\n({', '.join(void)}: black, the void colour, is unlabelled and left out)" if void else "")],
        "category table")


def read_category_table(table: str | Path | Iterable[dict]) -> list[dict]:
    """The category table of `semantic-masks` (and of `coco-instances`' stuff maps): a CSV with a header, a JSON list
    of objects (or `{"categories": [...]}`), or the rows themselves. Each row has `name`, `isthing` (thing/stuff,
    1/0, true/false) and the value its pixels carry: `index` (index PNGs) or `color` (colour PNGs: [r, g, b],
    'r g b' or '#rrggbb'); a row may carry both (`color` then also colours the category). Returns rows with `name`,
    `isthing`, `index` (or None) and `color` (or None), in table order; raises `ConversionError` listing every
    problem of the table (missing or repeated names, values or colours, bad fields)."""
    source = "the category table"
    if isinstance(table, (str, Path)):
        path = Path(table)
        source = str(path)
        if path.suffix.lower() == ".csv":
            rows = _read_csv(path, "category table")
        else:
            _refuse_labelmap(path)
            data = _read_json(path, "category table")
            rows = data.get("categories") if isinstance(data, dict) else data
    else:
        rows = list(table)
    problems: list[str] = []
    if not isinstance(rows, list) or not rows:
        raise ConversionError([f"{source}: must list categories (rows with name, isthing and index or color)"],
                              "category table")
    categories = []
    for number, row in enumerate(rows, start=1):
        where = f"{source}: row {number}"
        if not isinstance(row, dict):
            problems.append(f"{where}: must be an object with name, isthing and index or color, got {row!r}")
            continue
        row = {str(key).strip().lower(): value for key, value in row.items() if key is not None}
        name = str(row.get("name") or "").strip()
        if not name:
            problems.append(f"{where}: missing `name`")
        else:
            where = f"{where} ({name})"
        isthing = _parse_flag(row["isthing"], where, problems) if "isthing" in row else None
        if "isthing" not in row:
            problems.append(f"{where}: missing `isthing` (thing or stuff)")
        index = row.get("index", row.get("id"))
        if index not in (None, ""):
            try:
                index = int(index)
                if index < 0:
                    raise ValueError
            except (TypeError, ValueError):
                problems.append(f"{where}: `index` must be a non-negative integer, got {index!r}")
                index = None
        else:
            index = None
        color = row.get("color")
        color = _parse_color(color, where, problems) if color not in (None, "") else None
        if index is None and color is None:
            problems.append(f"{where}: needs `index` (index PNGs) or `color` (colour PNGs)")
        categories.append({"name": name, "isthing": isthing, "index": index, "color": color})
    for key in ("name", "index", "color"):
        for value, count in Counter(c[key] for c in categories if c[key] not in (None, "")).items():
            if count > 1:
                problems.append(f"{source}: {key} {value!r} appears in {count} rows (each category needs its own)")
    if problems:
        raise ConversionError(problems, "category table")
    return categories


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, list[Path]]:
    """The files of `folder` and its subfolders whose suffix is one of `suffixes` (case-insensitive), by their path
    relative to `folder` without the suffix (`aachen/a1` for `aachen/a1.jpg`: subfolders such as Cityscapes' cities
    are kept). Hidden folders (`.git`, `.ipynb_checkpoints`, a converter's staging folder) are not read."""
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts[:-1]):
            continue
        if path.suffix.lower() in suffixes and path.is_file():
            by_stem[relative.with_suffix("").as_posix()].append(path)
    return by_stem


def _image_files(image_dir: Path, problems: list[str]) -> tuple[dict[str, Path], dict[str, int]]:
    """The images of a folder and its subfolders by relative path without suffix (`_files_by_stem`), and the stems
    left out with their file counts: two files with one stem are a problem (their PNGs would collide)."""
    if not image_dir.is_dir():
        raise ConversionError([f"{image_dir}: folder is missing (images)"], "input")
    by_stem = _files_by_stem(image_dir, IMAGE_SUFFIXES)
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            names = ", ".join(p.relative_to(image_dir).as_posix() for p in paths)
            problems.append(f"{image_dir}: duplicate file name {stem!r} ({names}): both would write {stem}.png; "
                            f"rename one (skipped: all of them)")
    files = {stem: paths[0] for stem, paths in by_stem.items() if len(paths) == 1}
    return files, {stem: len(paths) for stem, paths in by_stem.items() if len(paths) > 1}


def _size_matches(picture: PIL.Image.Image, height, width) -> bool:
    """Whether annotations of `height` x `width` fit the image as the loader reads it
    (`seem_hf.image_utils.read_annotated_image`): upright by its EXIF orientation, or as stored."""
    return (height, width) in (image_size(picture), picture.size[::-1])


def _size_text(picture: PIL.Image.Image) -> str:
    """The image's size (H x W) for a message, with its upright size when an EXIF orientation turns it."""
    stored, upright = picture.size[::-1], image_size(picture)
    text = f"{stored[0]} x {stored[1]}"
    return text if upright == stored else f"{text} ({upright[0]} x {upright[1]} upright by its EXIF orientation)"


def _open_image(path: Path, where: str, problems: list[str]) -> PIL.Image.Image | None:
    """The image's header (size and mode), or None with the problem recorded (a missing file with the one beside it
    that differs in case or suffix: `missing_file`)."""
    if not path.is_file():
        problems.append(missing_file(path, where.removeprefix(f"{path}: ")))
        return None
    try:
        image = PIL.Image.open(path)
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as error:
        problems.append(f"{where}: cannot be read as an image ({error})")
        return None
    if image.mode not in _READABLE_IMAGE_MODES:
        problems.append(f"{where}: mode {image.mode} is not read as an image; save it as 8-bit RGB")
        return None
    return image


def _read_label_png(path: Path, where: str, problems: list[str]) -> np.ndarray | None:
    try:
        with PIL.Image.open(path) as png:
            return np.asarray(png)
    except FileNotFoundError:
        problems.append(f"{where}: file is missing")
    except (OSError, SyntaxError, ValueError) as error:
        problems.append(f"{where}: cannot be read as a PNG ({error})")
    return None


def _paired_label_files(image_dir: Path, label_dir: Path, kind: str, input_name: str, problems: list[str]):
    """The images of `image_dir` and the `<image stem>.png` label files (`kind`: "mask", "annotation") of
    `label_dir`, paired by stem. A label file without an image is a problem (skipped); returns the two by stem and
    the number of images skipped so far (repeated stems, orphan label files)."""
    if not label_dir.is_dir():
        raise ConversionError([f"{label_dir}: folder is missing ({kind}s)"], input_name)
    image_files, duplicates = _image_files(image_dir, problems)
    by_stem = _files_by_stem(label_dir, (".png",))
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            problems.append(f"{label_dir}: {len(paths)} {kind}s for {stem!r} "
                            f"({', '.join(p.relative_to(label_dir).as_posix() for p in paths)}); keep one (skipped: "
                            f"all of them)")
    label_files = {stem: paths[0] for stem, paths in by_stem.items() if len(paths) == 1}
    orphans = sorted(set(label_files) - set(image_files) - set(duplicates))
    for stem in orphans:
        problems.append(f"{label_files[stem]}: no image named {stem}.* in {image_dir} ({kind} skipped)")
    return image_files, label_files, sum(duplicates.values()) + len(orphans)


def _open_pair(stem: str, image_files: dict, label_files: dict, label_dir: Path, kind: str, problems: list[str]):
    """One image and its label PNG: `(image path, where, picture, label array)`, `where` naming both in messages;
    the picture or the label is None where a problem was reported."""
    path = image_files[stem]
    name = f"{stem}{path.suffix}"
    where = f"{label_files.get(stem, label_dir / (stem + '.png'))}: image {name}"
    picture = _open_image(path, f"{path}: image {name}", problems)
    label = None
    if stem not in label_files:
        problems.append(f"{where}: {kind} is missing (image skipped)")
    elif picture is not None:
        label = _read_label_png(label_files[stem], where, problems)
    return path, where, picture, label


def _without_alpha(mask: np.ndarray, where: str, by_index: bool, unlabelled, problems: list[str]) -> np.ndarray | None:
    """A semantic mask of 2 or 4 channels (LA, RGBA PNGs: a grey or colour mask with an alpha channel) without its
    alpha. An index mask (`by_index`; `unlabelled` is its ignore index) is read from a grey channel (the colour channels
    must agree), a colour mask (`unlabelled` is the void colour or None) from RGB. A transparent pixel must hold the
    unlabelled value, or it is a problem: whether it is unlabelled or of the class its value says cannot be told.
    Other masks come back unchanged; None when a problem was recorded."""
    if mask.ndim != 3 or mask.shape[2] not in (2, 4):
        return mask
    colour, alpha = mask[..., :-1], mask[..., -1]
    transparent = alpha != np.iinfo(alpha.dtype).max if alpha.dtype.kind in "ui" else np.zeros(alpha.shape, bool)
    if by_index:
        if not (colour == colour[..., :1]).all():
            problems.append(f"{where}: an index PNG needs one channel, got shape {mask.shape} with colours (a colour "
                            "PNG? give the table `color`s instead of `index`es)")
            return None
        values = colour[..., 0]
        transparent = transparent & (values != unlabelled)
    else:
        values = colour if colour.shape[-1] == 3 else np.repeat(colour, 3, axis=-1)
        if unlabelled is not None:
            transparent = transparent & ~(values == np.asarray(unlabelled, values.dtype)).all(-1)
    if transparent.any():
        problems.append(f"{where}: {int(transparent.sum())} transparent or translucent pixels "
                        f"({_first_pixel(transparent)})"
                        + (" not of the ignore index" if by_index else " not of the void colour")
                        + ": whether they are unlabelled or of the class their value says cannot be told; save the "
                        "mask without transparency (unlabelled pixels " + ("the ignore index)" if by_index else
                                                                           "the void colour)"))
        return None
    return values


def _first_pixel(mask: np.ndarray) -> str:
    rows, cols = np.nonzero(mask)
    return f"first at x={int(cols[0])}, y={int(rows[0])}"


# ---------------------------------------------------------------------------------------------------------------
# Writing the COCO-panoptic folder


@dataclass
class _ImageOutcome:
    """What converting one image gave: its problems, what it skipped, and (when written) its `images` entry,
    `annotations` entry and number of things."""

    problems: list[str] = field(default_factory=list)
    skipped_images: int = 0
    skipped_segments: int = 0
    entry: tuple[dict, dict, int] | None = None


_CURRENT_JOB = None


def _run_current_job(item):
    return _CURRENT_JOB(item)


def _map_images(function, items: Iterable, num_workers: int):
    """`function(item)` for each item, in order: in this process, or in `num_workers` forked processes (each image's
    files are its own, so they are written side by side; the outcomes come back in item order, so problems are listed
    in the same order whatever the number of workers). Memory stays flat: items are handed out in small chunks."""
    global _CURRENT_JOB
    if num_workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield from map(function, items)
        return
    _CURRENT_JOB = function  # forked workers inherit it (a closure cannot be pickled)
    try:
        with multiprocessing.get_context("fork").Pool(num_workers) as pool:
            yield from pool.imap(_run_current_job, items, chunksize=8)
    finally:
        _CURRENT_JOB = None


class _PanopticWriter:
    """Writes one split into a staging folder beside the output and moves it into place at the end, so a refused
    conversion leaves nothing behind and memory stays flat in the number of images."""

    def __init__(self, out_dir: str | Path, split: str, format_name: str, categories: list[dict], overwrite: bool):
        self.paths = coco_panoptic_paths(out_dir, (split,))[split]
        existing = [path for key, path in self.paths.items() if path.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"{', '.join(map(str, existing))} already exist(s): convert into another folder, "
                                  f"choose another --split, or pass overwrite=True (CLI: --overwrite).")
        self.split = split
        self.categories = sorted(categories, key=lambda category: category["id"])
        self.contiguous = LabelVocabulary.from_coco(self.categories)[1]
        self.stage = Path(out_dir) / f".converting-{split}"
        shutil.rmtree(self.stage, ignore_errors=True)
        self.staged = coco_panoptic_paths(self.stage, (split,))[split]
        for key in ("image_dir", "panoptic_dir", "semantic_dir"):
            self.staged[key].mkdir(parents=True)
        self.report = ConversionReport(format_name, self.paths)
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def write(self, source: Path, file_name: str, image_id: int, ids: np.ndarray,
              segments: list[dict]) -> tuple[dict, dict, int]:
        """Write one image's files: the image (linked or copied as `file_name`, a path relative to the split's image
        folder such as `aachen/a1.jpg`), its panoptic PNG and semantic map (the same relative path, `.png`), from its
        segment-id map (H, W) and its segments (`id`, `category_id`, `isthing`, optional `iscrowd`), in id order.
        Returns its `images` and `annotations` entries (`area` and `bbox` from the map) and its number of things;
        changes nothing else, so images can be written by several processes."""
        height, width = ids.shape
        png_name = f"{file_name[:-len(Path(file_name).suffix) or None]}.png"
        for key, name in (("image_dir", file_name), ("panoptic_dir", png_name), ("semantic_dir", png_name)):
            (self.staged[key] / name).parent.mkdir(parents=True, exist_ok=True)
        target = self.staged["image_dir"] / file_name
        try:
            os.link(source, target)  # no second copy of a large dataset where the file system allows it
        except OSError:
            shutil.copyfile(source, target)
        PIL.Image.fromarray(id2rgb(ids)).save(self.staged["panoptic_dir"] / png_name)
        # The semantic map `write_semantic_maps` would write, from the ids in memory (no second read of the PNG).
        labels = {s["id"]: self.contiguous[s["category_id"]] for s in segments if not s.get("iscrowd")}
        semantic = semantic_from_panoptic(ids, labels, IGNORE_INDEX)
        dtype = np.uint8 if len(self.contiguous) <= IGNORE_INDEX else np.uint16
        PIL.Image.fromarray(semantic.astype(dtype)).save(self.staged["semantic_dir"] / png_name)
        areas = np.bincount(ids.ravel(), minlength=max((s["id"] for s in segments), default=0) + 1)
        boxes = ndimage.find_objects(ids.astype(np.int32))
        segments_info = []
        for segment in segments:
            rows, cols = boxes[segment["id"] - 1]
            segments_info.append({
                "id": int(segment["id"]), "category_id": int(segment["category_id"]),
                "iscrowd": int(bool(segment.get("iscrowd", 0))),
                "bbox": [cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start],
                "area": int(areas[segment["id"]]),
            } | {key: int(segment[key]) for key in SOURCE_IDS if segment.get(key) is not None})
        return ({"id": int(image_id), "file_name": file_name, "height": height, "width": width},
                {"image_id": int(image_id), "file_name": png_name, "segments_info": segments_info},
                sum(bool(segment["isthing"]) for segment in segments))

    def collect(self, outcome: _ImageOutcome, problems: list[str]) -> None:
        """Add one image's outcome, in image order: its problems and skips, and its entries when it was written."""
        problems.extend(outcome.problems)
        self.report.skipped_images += outcome.skipped_images
        self.report.skipped_segments += outcome.skipped_segments
        if outcome.entry is not None:
            image, annotation, things = outcome.entry
            self.images.append(image)
            self.annotations.append(annotation)
            self.report.images += 1
            self.report.segments += len(annotation["segments_info"])
            self.report.things += things

    def finish(self, problems: list[str], skip_problems: bool, what: str) -> ConversionReport:
        """Refuse (nothing written) or write the JSONs and semantic maps, check the result, move it into place."""
        if problems and not skip_problems:
            shutil.rmtree(self.stage, ignore_errors=True)
            raise ConversionError(problems, what)
        if not self.images:
            shutil.rmtree(self.stage, ignore_errors=True)
            raise ConversionError(problems + [f"no image could be converted (into {self.paths['panoptic_json']})"],
                                  what)
        self.report.problems = problems
        panoptic = {"images": self.images, "annotations": self.annotations, "categories": self.categories}
        self.staged["panoptic_json"].write_text(json.dumps(panoptic))
        self.staged["grounding_json"].write_text(json.dumps({"images": self.images, "annotations": [],
                                                             "categories": self.categories}))
        found = validate_coco_panoptic(self.staged["image_dir"], self.staged["panoptic_dir"],
                                       self.staged["panoptic_json"], self.staged["grounding_json"])
        if found:  # a converter bug, not a problem of the input
            raise RuntimeError("The converted dataset fails validation (please report this):\n" + "\n".join(found[:20]))
        for key, path in self.paths.items():
            if path.exists():
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(self.staged[key]), str(path))
        shutil.rmtree(self.stage, ignore_errors=True)
        return self.report


def _coco_category(category_id: int, name: str, isthing: bool, color) -> dict:
    return {"id": int(category_id), "name": name, "supercategory": "thing" if isthing else "stuff",
            "isthing": int(isthing), "color": [int(c) for c in color]}


# ---------------------------------------------------------------------------------------------------------------
# coco-instances


def _polygon_problem(polygon, height: int, width: int) -> str | None:
    if not isinstance(polygon, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                for v in polygon):
        return f"a polygon must be a list of numbers [x1, y1, x2, y2, ...], got {str(polygon)[:40]}"
    if len(polygon) < 6 or len(polygon) % 2:
        return f"polygon with {len(polygon)} coordinates; a polygon needs at least 3 (x, y) points"
    xs, ys = np.asarray(polygon[0::2], float), np.asarray(polygon[1::2], float)
    if (xs.min() < -POLYGON_TOLERANCE or ys.min() < -POLYGON_TOLERANCE or xs.max() > width + POLYGON_TOLERANCE
            or ys.max() > height + POLYGON_TOLERANCE):
        return (f"polygon outside the image: x {xs.min():g}..{xs.max():g}, y {ys.min():g}..{ys.max():g} on an image "
                f"of width {width} and height {height} (drawn on another image, or x and y swapped?)")
    return None


def _instance_mask(annotation: dict, height: int, width: int, where: str, problems: list[str]) -> np.ndarray | None:
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list):
        if not segmentation:
            problems.append(f"{where}: empty instance (no polygon)")
            return None
        found = [problem for problem in (_polygon_problem(p, height, width) for p in segmentation) if problem]
        if found:
            problems.extend(f"{where}: {problem}" for problem in found)
            return None
    elif isinstance(segmentation, dict):
        if segmentation.get("size") != [height, width]:
            problems.append(f"{where}: RLE size {segmentation.get('size')} differs from the image's [height, width] "
                            f"{[height, width]}")
            return None
    else:
        problems.append(f"{where}: `segmentation` must be polygons or an RLE, got {str(segmentation)[:40]}")
        return None
    try:
        mask = segmentation_mask(segmentation, height, width)
    except Exception as error:  # noqa: BLE001 (pycocotools raises several types on malformed RLE)
        problems.append(f"{where}: segmentation cannot be decoded ({type(error).__name__}: {error})")
        return None
    if not mask.any():
        problems.append(f"{where}: empty instance (its segmentation covers no pixel)")
        return None
    return mask


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _parse_crowd(value) -> int | None:
    """`iscrowd` as 0 or 1: accepts 0/1, true/false, 0.0/1.0 and the texts "0"/"1" (exporters that write every
    field as text); None for anything else, which the caller reports."""
    if isinstance(value, bool):
        return int(value)
    if _is_number(value) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return int(value.strip().lower() in ("1", "true"))
    return None


def _without_suffix(file_name: str) -> str:
    return file_name[:-len(Path(file_name).suffix) or None]


def _output_name(file_name: str, image_dir: Path) -> str:
    """Where an instances JSON's image is read and written, relative to the image folders: `file_name` as given
    when it is a relative path found under `image_dir` (subfolders kept, as COCO-panoptic allows), otherwise its
    bare name (exporters that prefix a folder of their own, or an absolute path)."""
    relative = Path(file_name)
    if (not relative.is_absolute() and ".." not in relative.parts and relative.parts
            and (image_dir / relative).is_file()):
        return relative.as_posix()
    return relative.name


def _ignore_index_problem(source, number: int, row: dict, argument: str, option: str) -> str:
    return (f"{source}: row {number} ({row['name']}): index {row['index']} is also the ignore index ({argument}="
            f"{row['index']}, CLI {option}), whose pixels are unlabelled, so this category would silently vanish; "
            f"renumber the category (in the table and its PNGs) or pick another ignore index ({argument}=..., "
            f"{option} N)")


def convert_coco_instances(
    instances_json: str | Path,
    image_dir: str | Path,
    out_dir: str | Path,
    split: str = "train",
    stuff_dir: str | Path | None = None,
    stuff_categories: str | Path | Iterable[dict] | None = None,
    stuff_ignore_index: int = 255,
    overlap: str = "smaller_on_top",
    skip_problems: bool = False,
    overwrite: bool = False,
    num_workers: int = 1,
) -> ConversionReport:
    """Convert a COCO instances JSON (polygons or RLE) and its images into COCO-panoptic under `out_dir` (rules in
    the module docstring): the JSON's categories are things and keep their ids; an optional stuff map per image
    (`stuff_dir/<image stem>.png`, index values of `stuff_categories`, `stuff_ignore_index` unlabelled) fills the
    pixels no instance covers, its categories numbered after the JSON's. Raises `ConversionError` listing every
    problem (unless `skip_problems`); returns the `ConversionReport`."""
    if overlap not in OVERLAP_RULES:
        raise ValueError(f"overlap must be one of {OVERLAP_RULES}, got {overlap!r}.")
    if (stuff_dir is None) != (stuff_categories is None):
        raise ValueError("A stuff map needs both stuff_dir (its PNGs) and stuff_categories (its category table).")
    instances_json, image_dir = Path(instances_json), Path(image_dir)
    data = _read_json(instances_json, "COCO instances JSON")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations",
                                                                                       "categories")):
        labelme = isinstance(data, dict) and "shapes" in data and "imagePath" in data
        raise ConversionError([(f"{instances_json}: must hold an object with `images`, `annotations` and "
                                f"`categories` lists (a COCO instances JSON)"
                                + ("; this is a LabelMe file (one per image, `shapes` and `imagePath`): turn the "
                                   "folder of them into one COCO instances JSON first (labelme2coco)"
                                   if labelme else ""))], "COCO instances JSON")
    problems: list[str] = []
    notes: list[str] = []
    given = []  # (id, name, colour or None) of the sound categories, in JSON order
    for number, category in enumerate(data["categories"]):
        if not (isinstance(category, dict) and _is_int(category.get("id")) and category["id"] >= 0
                and isinstance(category.get("name"), str) and category["name"].strip()):
            problems.append(f"{instances_json}: category #{number}: needs a non-negative integer `id` and a `name`, "
                            f"got {str(category)[:60]}")
            continue
        where = f"{instances_json}: category {category['id']} ({category['name']})"
        color = category.get("color")
        if color not in (None, "", []):
            color = _parse_color(color, where, problems)
            if color is None:
                continue
        given.append((category["id"], category["name"], color or None))
    for value, count in Counter(entry[0] for entry in given).items():
        if count > 1:
            problems.append(f"{instances_json}: category id {value!r} appears {count} times (each category needs its "
                            "own)")
    shared = {name: [entry[0] for entry in given if entry[1] == name] for name, count
              in Counter(entry[1] for entry in given).items() if count > 1}
    if shared or not given:  # the label set itself: refused at once, even with skip_problems
        raise ConversionError(
            problems + [f"{instances_json}: category name {name!r} is given to ids {ids}: the label set names each "
                        "class once (the models tell classes apart by name). Rename one, or give their annotations "
                        "one category_id and drop the other category." for name, ids in shared.items()]
            + ([f"{instances_json}: no sound category (`categories` is empty, or every entry was refused above): "
                "the label set needs at least one"] if not given else []),
            "COCO instances JSON")
    used = Counter(a.get("category_id") for a in data["annotations"]
                   if isinstance(a, dict) and _is_int(a.get("category_id")))
    # COCO-panoptic ids must be positive: exports numbering from 0 (Label Studio; Roboflow's id 0 supercategory)
    # are renumbered 1..K in id order, names kept.
    renumber = any(category_id == 0 for category_id, _, _ in given)
    category_map = {category_id: (number if renumber else category_id)
                    for number, category_id in enumerate(sorted({entry[0] for entry in given}), start=1)}
    if renumber:
        notes.append(f"{instances_json}: category ids renumbered 1..{len(category_map)} (COCO-panoptic ids must be "
                     f"positive; names kept): " + ", ".join(f"{old} ({name}) -> {category_map[old]}"
                                                            for old, name, _ in sorted(given)))
    unused = [f"{category_id} ({name})" for category_id, name, _ in sorted(given) if not used[category_id]]
    if unused:
        notes.append(f"{instances_json}: {plural(len(unused), 'category')} used by no annotation, kept in the label "
                     f"set (remove them from the JSON to leave them out, such as Roboflow's supercategory): "
                     f"{', '.join(unused)}")
    categories, names = {}, set()
    for category_id, name, color in given:
        new_id = category_map[category_id]
        categories[new_id] = _coco_category(new_id, name, True, color or label_color(len(categories)))
        names.add(name)
    stuff_table, stuff_ids = [], {}
    if stuff_categories is not None:
        stuff_table = read_category_table(stuff_categories)
        stuff_source = stuff_categories if isinstance(stuff_categories, (str, Path)) else "stuff_categories"
        clashes = [_ignore_index_problem(stuff_source, number, row, "stuff_ignore_index", "--stuff-ignore-index")
                   for number, row in enumerate(stuff_table, start=1) if row["index"] == stuff_ignore_index]
        if clashes:  # a setting, not a problem of one image: refused even with skip_problems
            raise ConversionError(clashes, "stuff category table")
        next_id = max(categories, default=0) + 1
        for row in stuff_table:
            if row["index"] is None:
                problems.append(f"{stuff_source}: {row['name']}: a stuff map category needs its `index` value")
                continue
            if row["name"] in names:
                problems.append(f"{stuff_source}: {row['name']}: also a category of {instances_json}; names are "
                                f"the label set and must be unique")
            stuff_ids[row["index"]] = next_id
            categories[next_id] = _coco_category(next_id, row["name"], False,
                                                 row["color"] or label_color(len(categories)))
            next_id += 1

    images, sizes, names_out = {}, {}, {}
    refused_images = set()  # ids of images skipped for a problem of their entry: their annotations go with them
    for number, image in enumerate(data["images"]):
        if not (isinstance(image, dict) and _is_int(image.get("id")) and isinstance(image.get("file_name"), str)
                and image["file_name"].strip()):
            problems.append(f"{instances_json}: image #{number}: needs an integer `id` and a `file_name`")
            continue
        where = f"{instances_json}: image {image['id']} ({image['file_name']})"
        if image["id"] < 0:
            problems.append(f"{where}: `id` must be a non-negative integer (it seeds the image's augmentation); "
                            f"renumber the images and their annotations' image_id (skipped)")
            refused_images.add(image["id"])
            continue
        if image["id"] in images:
            problems.append(f"{where}: image id used twice (skipped: the second entry)")
            continue
        size = [image.get("height"), image.get("width")]
        if size != [None, None]:
            size = [int(side) if _is_number(side) and float(side).is_integer() and side > 0 else None for side in size]
            if None in size:
                problems.append(f"{where}: `height` and `width` must be positive whole numbers (or both left out, "
                                f"to take the image file's), got {image.get('height')!r} x {image.get('width')!r} "
                                f"(skipped)")
                refused_images.add(image["id"])
                continue
        images[image["id"]], sizes[image["id"]] = image, tuple(size)
        names_out[image["id"]] = _output_name(image["file_name"], image_dir)
    by_image: dict[int, list[tuple[int, dict]]] = defaultdict(list)
    skipped_with_images = 0
    for number, annotation in enumerate(data["annotations"]):
        label = annotation.get("id", f"#{number}") if isinstance(annotation, dict) else f"#{number}"
        image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
        if _is_int(image_id) and image_id in refused_images and image_id not in images:
            skipped_with_images += 1
            continue
        if not _is_int(image_id) or image_id not in images:
            problems.append(f"{instances_json}: annotation {label}: image_id "
                            f"{annotation.get('image_id') if isinstance(annotation, dict) else '?'} is not among the "
                            f"JSON's images")
            continue
        by_image[annotation["image_id"]].append((number, annotation))

    writer = _PanopticWriter(out_dir, split, "coco-instances", list(categories.values()), overwrite)
    writer.report.notes = notes
    writer.report.skipped_images += len(refused_images - set(images))
    writer.report.skipped_segments += skipped_with_images
    stems = Counter(_without_suffix(name) for name in names_out.values())
    base_stems = Counter(Path(name).stem for name in names_out.values())

    def convert_one(image_id: int) -> _ImageOutcome:
        outcome = _ImageOutcome()
        problems = outcome.problems  # this image's; `collect` adds them to the conversion's, in order
        image, file_name = images[image_id], names_out[image_id]
        where = f"{instances_json}: image {image_id} ({image['file_name']})"
        own = by_image.get(image_id, [])
        if stems[_without_suffix(file_name)] > 1:
            problems.append(f"{where}: duplicate file name {_without_suffix(file_name)!r} (several images would write "
                            f"one file); rename them (skipped: this image and its {plural(len(own), 'instance')})")
            outcome.skipped_images += 1
            outcome.skipped_segments += len(own)
            return outcome
        count = len(problems)
        source = image_dir / file_name
        picture = _open_image(source, f"{source}: image {image_id}", problems)
        height, width = sizes[image_id]
        if picture is not None and (height, width) == (None, None):
            height, width = image_size(picture)  # some exporters leave the size out; tools show the image upright
        if picture is not None and not _size_matches(picture, height, width):
            problems.append(f"{source}: image {image_id}: size {_size_text(picture)} (H x W) differs from the JSON's "
                            f"height x width {height} x {width}")
        stuff = None
        if stuff_dir is not None and picture is not None:
            stuff_path = Path(stuff_dir) / f"{_without_suffix(file_name)}.png"
            if not stuff_path.is_file() and "/" in file_name and base_stems[Path(file_name).stem] == 1:
                stuff_path = Path(stuff_dir) / f"{Path(file_name).stem}.png"  # a flat folder of stuff maps
            stuff = _read_label_png(stuff_path, f"{stuff_path}: image {image_id} (stuff map)", problems)
            if stuff is not None and stuff.shape != (height, width):
                problems.append(f"{stuff_path}: image {image_id}: stuff map of shape {stuff.shape} must be an index "
                                f"PNG of the image's size {height} x {width}")
                stuff = None
        if len(problems) > count:  # the image cannot be converted
            outcome.skipped_images += 1
            outcome.skipped_segments += len(own)
            return outcome
        instances = []
        for number, annotation in own:
            label = f"{where}: annotation {annotation.get('id', f'#{number}')}"
            category_id = annotation.get("category_id")
            if not _is_int(category_id) or category_id not in category_map:
                problems.append(f"{label}: category_id {category_id!r} is missing from the JSON's categories")
                outcome.skipped_segments += 1
                continue
            crowd = _parse_crowd(annotation.get("iscrowd", 0))
            if crowd is None:
                problems.append(f"{label}: `iscrowd` must be 0 or 1 (or true/false), got "
                                f"{annotation.get('iscrowd')!r}")
                outcome.skipped_segments += 1
                continue
            mask = _instance_mask(annotation, height, width, label, problems)
            if mask is None:
                outcome.skipped_segments += 1
                continue
            instances.append((label, annotation, mask, category_map[category_id], crowd))
        if overlap == "smaller_on_top":  # paint the largest first; a stable sort keeps JSON order among equals
            instances.sort(key=lambda item: -int(item[2].sum()))
        ids = np.zeros((height, width), dtype=np.int64)
        segments = []
        for label, annotation, mask, category_id, crowd in instances:
            segment_id = len(segments) + 1
            ids[mask] = segment_id
            segments.append({"id": segment_id, "category_id": category_id, "isthing": True,
                             "iscrowd": crowd, "label": label,
                             "annotation_id": annotation["id"] if _is_int(annotation.get("id")) else None})
        visible = np.bincount(ids.ravel(), minlength=len(segments) + 1)
        kept = []
        for segment in segments:
            if visible[segment["id"]] == 0:
                problems.append(f"{segment['label']}: every pixel is covered by other instances "
                                f"({overlap.replace('_', ' ')}); nothing of it is left")
                outcome.skipped_segments += 1
            else:
                kept.append(segment)
        if stuff is not None:
            free = ids == 0
            values, counts = np.unique(stuff[free], return_counts=True)
            for value, pixels in zip(values.tolist(), counts.tolist()):
                if value == stuff_ignore_index:
                    continue
                if value not in stuff_ids:
                    problems.append(f"{stuff_path}: image {image_id}: segment of "
                                    f"index {value} ({pixels} pixels, {_first_pixel(free & (stuff == value))}): index "
                                    f"missing from the stuff category table (left unlabelled)")
                    outcome.skipped_segments += 1
                    continue
                kept.append({"id": 0, "category_id": stuff_ids[value], "isthing": False,
                             "mask": free & (stuff == value)})
        # Renumber 1..n, so that a segment left out leaves no gap.
        renumbered = np.zeros_like(ids)
        for number, segment in enumerate(kept, start=1):
            renumbered[segment.pop("mask") if "mask" in segment else ids == segment["id"]] = number
            segment["id"] = number
        outcome.entry = writer.write(source, file_name, image_id, renumbered, kept)
        return outcome

    for outcome in _map_images(convert_one, sorted(images), num_workers):
        writer.collect(outcome, problems)
    return writer.finish(problems, skip_problems,
                         "COCO instances input")


# ---------------------------------------------------------------------------------------------------------------
# semantic-masks


def convert_semantic_masks(
    image_dir: str | Path,
    mask_dir: str | Path,
    categories: str | Path | Iterable[dict],
    out_dir: str | Path,
    split: str = "train",
    things: str = "components",
    ignore_index: int = 255,
    void_color: tuple[int, int, int] = (0, 0, 0),
    skip_problems: bool = False,
    overwrite: bool = False,
    num_workers: int = 1,
) -> ConversionReport:
    """Convert semantic masks (`mask_dir/<image stem>.png`) and their images into COCO-panoptic under `out_dir`
    (rules in the module docstring). `categories` is a category table (`read_category_table`): with `index` values
    the PNGs are read as index maps (palette PNGs by their indices), otherwise as colours. Category ids are 1..K in
    table order. Raises `ConversionError` listing every problem (unless `skip_problems`); returns the report."""
    if things not in THING_RULES:
        raise ValueError(f"things must be one of {THING_RULES}, got {things!r}.")
    table = read_category_table(categories)
    table_name = str(categories) if isinstance(categories, (str, Path)) else "the category table"
    by_index = all(row["index"] is not None for row in table)
    if not by_index and not all(row["color"] is not None for row in table):
        raise ConversionError([(f"{table_name}: give every row an `index` (index PNGs) or every row a `color` "
                                f"(colour PNGs)")], "category table")
    if by_index:
        clashes = [_ignore_index_problem(table_name, number, row, "ignore_index", "--ignore-index")
                   for number, row in enumerate(table, start=1) if row["index"] == ignore_index]
        if clashes:  # a setting, not a problem of one image: refused even with skip_problems
            raise ConversionError(clashes, "category table")
    coco = [_coco_category(number, row["name"], row["isthing"], row["color"] or label_color(number - 1))
            for number, row in enumerate(table, start=1)]
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    problems: list[str] = []
    image_files, mask_files, skipped = _paired_label_files(image_dir, mask_dir, "mask", "semantic masks input",
                                                           problems)
    writer = _PanopticWriter(out_dir, split, "semantic-masks", coco, overwrite)
    writer.report.skipped_images += skipped
    structure = np.ones((3, 3), dtype=bool)  # 8-connected components
    def convert_one(item: tuple[int, str]) -> _ImageOutcome:
        outcome, (image_id, stem) = _ImageOutcome(), item
        problems = outcome.problems  # this image's; `collect` adds them to the conversion's, in order
        count = len(problems)
        path, where, picture, mask = _open_pair(stem, image_files, mask_files, mask_dir, "mask", problems)
        if mask is not None:
            mask = _without_alpha(mask, where, by_index, ignore_index if by_index else void_color, problems)
        if mask is not None:
            if by_index and mask.ndim != 2:
                problems.append(f"{where}: an index PNG needs one channel, got shape {mask.shape} (a colour PNG? give "
                                f"the table `color`s instead of `index`es)")
            elif not by_index and (mask.ndim != 3 or mask.shape[2] < 3):
                mask = np.asarray(PIL.Image.open(mask_files[stem]).convert("RGB"))
            if not _size_matches(picture, *mask.shape[:2]):
                problems.append(f"{where}: mask size {mask.shape[0]} x {mask.shape[1]} differs from the image's "
                                f"{_size_text(picture)} (H x W)")
        if len(problems) > count:
            outcome.skipped_images += 1
            return outcome
        if by_index:
            values = mask.astype(np.int64)
            lookup = {row["index"]: number for number, row in enumerate(table, start=1)}
            void = values == ignore_index
        else:
            rgb = mask[..., :3].astype(np.int64)
            values = rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]
            lookup = {c[0] * 65536 + c[1] * 256 + c[2]: number for number, c in
                      enumerate((row["color"] for row in table), start=1)}
            void_key = void_color[0] * 65536 + void_color[1] * 256 + void_color[2] if void_color else -1
            void = (values == void_key) if void_key not in lookup else np.zeros(values.shape, bool)
        ids = np.zeros(values.shape, dtype=np.int64)
        segments = []
        present, counts = np.unique(values[~void], return_counts=True)
        for value, pixels in zip(present.tolist(), counts.tolist()):
            region = values == value
            if value not in lookup:
                shown = (f"index {value}" if by_index else
                         f"colour ({value // 65536}, {value // 256 % 256}, {value % 256})")
                problems.append(f"{where}: segment of unknown {shown} ({pixels} pixels, {_first_pixel(region)}): "
                                f"missing from {table_name} (left unlabelled)")
                outcome.skipped_segments += 1
                continue
            category_id = lookup[value]
            isthing = table[category_id - 1]["isthing"]
            if isthing and things == "components":
                components, number = ndimage.label(region, structure=structure)
                for component in range(1, number + 1):
                    segments.append({"id": len(segments) + 1, "category_id": category_id, "isthing": True})
                    ids[components == component] = len(segments)
            else:
                segments.append({"id": len(segments) + 1, "category_id": category_id, "isthing": isthing})
                ids[region] = len(segments)
        outcome.entry = writer.write(path, f"{stem}{path.suffix}", image_id, ids, segments)
        return outcome

    for outcome in _map_images(convert_one, enumerate(sorted(image_files), start=1), num_workers):
        writer.collect(outcome, problems)
    return writer.finish(problems, skip_problems, "semantic masks input")


# ---------------------------------------------------------------------------------------------------------------
# instance-annotations


def convert_instance_annotations(
    image_dir: str | Path,
    annotation_dir: str | Path,
    semantic_class_to_id: str | Path | dict[str, int],
    out_dir: str | Path,
    split: str = "train",
    stuff_classes: Iterable[str] = (),
    do_reduce_labels: bool = False,
    skip_problems: bool = False,
    overwrite: bool = False,
    num_workers: int = 1,
    ignore_index: int | None = 255,
) -> ConversionReport:
    """Convert 3-channel instance annotations (`annotation_dir/<image stem>.png`: semantic class, instance id,
    zeros; transformers' run_instance_segmentation.py layout) and their images into COCO-panoptic under `out_dir`
    (rules in the module docstring). `semantic_class_to_id` maps class names to the channel-0 values (a dict or a
    JSON file); category ids are 1..K in class-id order. Pixels of class `ignore_index` (255, as `--dataset_name`'s
    instance layout reads it; None: none) are unlabelled, and a class given that id is refused. Raises
    `ConversionError` listing every problem (unless `skip_problems`); returns the report."""
    source = str(semantic_class_to_id) if isinstance(semantic_class_to_id, (str, Path)) else "semantic_class_to_id"
    mapping = (_read_json(Path(semantic_class_to_id), "semantic_class_to_id")
               if isinstance(semantic_class_to_id, (str, Path)) else dict(semantic_class_to_id))
    if not isinstance(mapping, dict) or not mapping or not all(_is_int(v) and 0 <= v <= 255 for v in mapping.values()):
        raise ConversionError([(f"{source}: must map class names to ids in 0..255 (the PNG's channel 0), got "
                                f"{str(mapping)[:80]}")], "semantic_class_to_id")
    repeated = [value for value, count in Counter(mapping.values()).items() if count > 1]
    stuff_classes = set(stuff_classes)
    unknown_stuff = sorted(stuff_classes - set(mapping))
    clashes = [f"{source}: class {name!r} has id {value}, also the ignore index (ignore_index={value}, CLI "
               f"--ignore-index), whose pixels are unlabelled, so this class would silently vanish; renumber the "
               f"class (in {source} and its PNGs) or pick another ignore index (--ignore-index N)"
               for name, value in mapping.items() if ignore_index is not None and value == ignore_index]
    if repeated or unknown_stuff or clashes:
        raise ConversionError([f"{source}: class id {value} is given to several names" for value in repeated]
                              + [f"stuff_classes: {name!r} is not a class of {source}" for name in unknown_stuff]
                              + clashes, "semantic_class_to_id")
    classes = sorted(((v, k) for k, v in mapping.items() if not (do_reduce_labels and v == 0)))
    category_of = {value: number for number, (value, _) in enumerate(classes, start=1)}
    coco = [_coco_category(number, name, name not in stuff_classes, label_color(number - 1))
            for number, (_, name) in enumerate(classes, start=1)]
    image_dir, annotation_dir = Path(image_dir), Path(annotation_dir)
    problems: list[str] = []
    image_files, annotation_files, skipped = _paired_label_files(
        image_dir, annotation_dir, "annotation", "instance annotations input", problems)
    writer = _PanopticWriter(out_dir, split, "instance-annotations", coco, overwrite)
    writer.report.skipped_images += skipped
    def convert_one(item: tuple[int, str]) -> _ImageOutcome:
        outcome, (image_id, stem) = _ImageOutcome(), item
        problems = outcome.problems  # this image's; `collect` adds them to the conversion's, in order
        count = len(problems)
        path, where, picture, annotation = _open_pair(stem, image_files, annotation_files, annotation_dir,
                                                      "annotation", problems)
        if annotation is not None:
            if annotation.ndim != 3 or annotation.shape[2] != 3:
                problems.append(f"{where}: needs 3 channels (semantic class, instance id, zeros), got shape "
                                f"{annotation.shape}")
            elif annotation[..., 2].any():
                problems.append(f"{where}: channel 2 is not zero ({int((annotation[..., 2] != 0).sum())} pixels, "
                                f"{_first_pixel(annotation[..., 2] != 0)}): not the (class, instance, 0) layout (a "
                                f"COCO-panoptic PNG?)")
            elif not _size_matches(picture, *annotation.shape[:2]):
                problems.append(f"{where}: annotation size {annotation.shape[0]} x {annotation.shape[1]} differs "
                                f"from the image's {_size_text(picture)} (H x W)")
        if len(problems) > count:
            outcome.skipped_images += 1
            return outcome
        semantic, instance = annotation[..., 0].astype(np.int64), annotation[..., 1].astype(np.int64)
        ids = np.zeros(semantic.shape, dtype=np.int64)
        segments = []
        pairs = np.unique(semantic * 256 + instance)
        stuff_done = set()
        for pair in pairs.tolist():
            value, instance_id = divmod(pair, 256)
            if (do_reduce_labels and value == 0) or value == ignore_index:
                continue
            if value not in category_of:
                region = (semantic == value) & (instance == instance_id)
                problems.append(f"{where}: segment of class {value}, instance {instance_id} ({int(region.sum())} "
                                f"pixels, {_first_pixel(region)}): class {value} is missing from {source} "
                                f"(left unlabelled)")
                outcome.skipped_segments += 1
                continue
            category_id = category_of[value]
            isthing = coco[category_id - 1]["isthing"] == 1
            if not isthing:
                if value in stuff_done:
                    continue
                stuff_done.add(value)
                region = semantic == value
            else:
                region = (semantic == value) & (instance == instance_id)
            segments.append({"id": len(segments) + 1, "category_id": category_id, "isthing": isthing,
                             "instance_id": instance_id if isthing else None})
            ids[region] = len(segments)
        outcome.entry = writer.write(path, f"{stem}{path.suffix}", image_id, ids, segments)
        return outcome

    for outcome in _map_images(convert_one, enumerate(sorted(image_files), start=1), num_workers):
        writer.collect(outcome, problems)
    return writer.finish(problems, skip_problems, "instance annotations input")


# ---------------------------------------------------------------------------------------------------------------
# sentences


def _read_sentence_rows(path: Path) -> list[dict]:
    if path.suffix.lower() == ".csv":
        return [{str(k).strip().lower(): v for k, v in row.items() if k is not None}
                for row in _read_csv(path, "sentences")]
    data = _read_json(path, "sentences")
    rows = data.get("sentences", data.get("annotations")) if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ConversionError([(f"{path}: must hold a list of rows (image, sentence, and segment_id, annotation_id, "
                                f"instance_id or polygon)")], "sentences")
    return rows


def _polygon_of(value) -> list[list[float]] | None:
    """A polygon given as [x, y, ...], [[x, y, ...], ...], or text of either (JSON or numbers separated by spaces)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else [float(v) for v in text.replace(",", " ").split()]
        except ValueError:
            return None
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        value = [value]
    return value if isinstance(value, list) else None


def _image_finder(images: list[dict], panoptic_json: Path):
    """`find(key) -> (image id, None)` or `(None, problem)` for a sentence row's `image`: an image's exact
    `file_name` wins; otherwise its bare file name, its stem (the file name without suffix, with or without its
    subfolder) or its id. A key that names different images by these (`2` for the image `2.jpg` whose id is 3
    while image 2 is `10.jpg`, since converters number images in file-name order) is refused as ambiguous, naming
    both, rather than attached to either."""
    exact, names = {}, defaultdict(dict)  # key -> {image id: how the key names it}
    for image in images:
        file_name = image["file_name"]
        exact[file_name] = image["id"]
        path = Path(file_name)
        for key, how in ((path.name, "file name"), (_without_suffix(file_name), "stem"), (path.stem, "stem"),
                         (str(image["id"]), "id")):
            names[key].setdefault(image["id"], how)
    file_of = {image["id"]: image["file_name"] for image in images}

    def find(key: str) -> tuple[int | None, str | None]:
        if key in exact:
            return exact[key], None
        found = names.get(key, {})
        if not found and key:
            found = names.get(Path(key).name) or names.get(Path(key).stem) or {}
        if len(found) == 1:
            return next(iter(found)), None
        if not found:
            return None, f"image {key!r} is not in {panoptic_json} (give its file name, stem or id)"
        shown = " and ".join(f"image {image_id} ({file_of[image_id]}) by its {how}"
                             for image_id, how in sorted(found.items()))
        return None, f"image {key!r} is ambiguous: it names {shown}; give the image's file name as in {panoptic_json}"

    return find


def add_sentences(
    data_dir: str | Path,
    sentences: str | Path,
    split: str = "train",
    skip_problems: bool = False,
) -> ConversionReport:
    """Attach referring sentences (a CSV or JSON of rows with `image`, `sentence`, and `segment_id`, `annotation_id`,
    `instance_id` or `polygon`; see the module docstring) to the segments of a converted folder (`data_dir`, the
    layout the converters write), adding to its `grounding_<split>.json`. A polygon row is attached to the segment it
    overlaps most when the IoU is at least `MIN_GROUNDING_IOU`. A sentence already on its segment is counted as
    present, not added twice. Raises `ConversionError` listing every problem (unless `skip_problems`), writing
    nothing; returns the report."""
    paths = coco_panoptic_paths(data_dir, (split,))[split]
    sentences = Path(sentences)
    found = validate_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"],
                                   paths["grounding_json"] if paths["grounding_json"].exists() else None)
    if found:
        raise ConversionError(found, f"dataset {data_dir} (convert it first, or fix it)")
    panoptic = json.loads(read_utf8(paths["panoptic_json"]))
    grounding = (json.loads(read_utf8(paths["grounding_json"])) if paths["grounding_json"].exists()
                 else {"images": panoptic["images"], "annotations": [], "categories": panoptic["categories"]})
    images = {image["id"]: image for image in panoptic["images"]}
    find_image = _image_finder(panoptic["images"], paths["panoptic_json"])
    annotation_of = {a["image_id"]: a for a in panoptic["annotations"]}
    id_maps: dict[int, np.ndarray] = {}

    def id_map(image_id: int) -> np.ndarray:
        if image_id not in id_maps:
            id_maps.clear()  # rows usually come image by image: keep one map, memory stays flat
            png = paths["panoptic_dir"] / annotation_of[image_id]["file_name"]
            id_maps[image_id] = rgb2id(np.asarray(PIL.Image.open(png).convert("RGB")))
        return id_maps[image_id]

    existing = {(a["image_id"], a.get("segment_id")): a for a in grounding["annotations"] if "segment_id" in a}
    report = ConversionReport("sentences", paths)
    problems: list[str] = []
    attached: dict[tuple[int, int], list[str]] = defaultdict(list)
    for number, row in enumerate(_read_sentence_rows(sentences), start=1):
        where = f"{sentences}: row {number}"
        if not isinstance(row, dict):
            problems.append(f"{where}: must be an object with image, sentence, and segment_id, annotation_id, "
                            f"instance_id or polygon")
            report.skipped_sentences += 1
            continue
        image_key = str(row.get("image", row.get("image_id", "")) or "").strip()
        text = str(row.get("sentence") or "").strip()
        where = f"{where} (image {image_key or '?'})"
        image_id, problem = find_image(image_key)
        if problem:
            problems.append(f"{where}: {problem}")
        if not text:
            problems.append(f"{where}: empty sentence")
        key = next((key for key in ("segment_id", *SOURCE_IDS) if row.get(key) not in (None, "")), None)
        polygon_value = row.get("polygon")
        if key is None and polygon_value in (None, ""):
            problems.append(f"{where}: needs `segment_id` (or `annotation_id`, `instance_id`: the input's ids) or "
                            f"`polygon` to say which segment the sentence describes")
            image_id = None
        if image_id is None or not text:
            report.skipped_sentences += 1
            continue
        segments = {s["id"]: s for s in annotation_of[image_id]["segments_info"]}
        if key is not None:
            by_key, stored_as = defaultdict(list), "id" if key == "segment_id" else key
            for segment in segments.values():
                if stored_as in segment:
                    by_key[segment[stored_as]].append(segment["id"])
            try:
                matches = by_key.get(int(row[key]), [])
            except (TypeError, ValueError):
                matches = []
            if len(matches) != 1:
                label = "segment" if key == "segment_id" else key.replace("_", " ")
                problems.append(f"{where}: {label} {row[key]}: not a segment of this image (its {key}s: "
                                f"{sorted(by_key)})" if not matches else
                                f"{where}: {label} {row[key]}: names {len(matches)} segments of this image (segment "
                                f"ids {matches}); give the segment_id")
                report.skipped_sentences += 1
                continue
            segment_id = matches[0]
        else:
            image = images[image_id]
            polygons = _polygon_of(polygon_value)
            found = ([_polygon_problem(p, image["height"], image["width"]) for p in polygons] if polygons
                     else ["polygon must be [x1, y1, x2, y2, ...] (numbers) or a list of such"])
            if any(found):
                problems.extend(f"{where}: {problem}" for problem in found if problem)
                report.skipped_sentences += 1
                continue
            mask = segmentation_mask(polygons, image["height"], image["width"])
            ids = id_map(image_id)
            inside, counts = np.unique(ids[mask], return_counts=True)
            best, best_iou = None, 0.0
            for candidate, overlap in zip(inside.tolist(), counts.tolist()):
                if candidate in segments:
                    iou = overlap / (mask.sum() + segments[candidate]["area"] - overlap)
                    if iou > best_iou:
                        best, best_iou = candidate, iou
            if best is None or best_iou < MIN_GROUNDING_IOU:
                problems.append(f"{where}: polygon overlaps no segment with IoU >= {MIN_GROUNDING_IOU} (best: segment "
                                f"{best}, IoU {best_iou:.2f})" if best is not None else
                                f"{where}: polygon covers no segment's pixels (empty or over void)")
                report.skipped_sentences += 1
                continue
            segment_id = best
        attached[(image_id, segment_id)].append(text)
    if problems and not skip_problems:
        raise ConversionError(problems, f"sentences of {sentences}")
    report.problems = problems
    next_id = max((a.get("id", 0) for a in grounding["annotations"]), default=0) + 1
    for (image_id, segment_id), texts in attached.items():
        annotation = existing.get((image_id, segment_id))
        if annotation is None:
            segment = next(s for s in annotation_of[image_id]["segments_info"] if s["id"] == segment_id)
            rle = mask_utils.encode(np.asfortranarray((id_map(image_id) == segment_id).astype(np.uint8)))
            annotation = {"id": next_id, "image_id": image_id, "segment_id": segment_id,
                          "category_id": segment["category_id"], "iscrowd": segment.get("iscrowd", 0),
                          "bbox": segment["bbox"], "area": segment["area"],
                          "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                          "sentences": []}
            next_id += 1
            grounding["annotations"].append(annotation)
            existing[(image_id, segment_id)] = annotation
        present = {sentence["raw"] for sentence in annotation["sentences"]}
        new = [text for text in dict.fromkeys(texts) if text not in present]
        annotation["sentences"].extend({"raw": text, "sent": text} for text in new)
        report.sentences += len(new)
        report.groundings += bool(new)
    staged = paths["grounding_json"].with_suffix(".json.converting")
    staged.write_text(json.dumps(grounding))
    found = validate_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"], staged)
    if found:
        staged.unlink()
        raise RuntimeError("The grounding JSON with the sentences fails validation (please report this):\n"
                           + "\n".join(found[:20]))
    staged.replace(paths["grounding_json"])
    return report


# ---------------------------------------------------------------------------------------------------------------
# The command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seem_hf.data.convert", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert labelled data into the COCO-panoptic layout the examples train on (--data_dir), or add "
        "referring sentences to a converted folder. Every problem of the input is printed, one line each naming the "
        "file, the image and the segment; with problems nothing is written (exit status 1) unless --skip-problems.",
    )
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")

    def common(sub, writes: bool = True):
        if writes:
            sub.add_argument("--split", default="train", help="the split to write (default train; run again with "
                             "--split val for the validation split)")
            sub.add_argument("--overwrite", action="store_true", help="replace the split if the folder has it")
            sub.add_argument("--num-workers", type=int, default=1,
                             help="processes converting images side by side (default 1; the output is the same)")
        else:
            sub.add_argument("--split", default="train", help="the split to add to (default train)")
        sub.add_argument("--skip-problems", action="store_true",
                         help="convert what is sound and list what is skipped (default: refuse and write nothing)")

    sub = formats.add_parser("coco-instances", help="a COCO instances JSON (polygons or RLE) and its images")
    sub.add_argument("instances_json", help="the COCO instances JSON (images, annotations, categories)")
    sub.add_argument("image_dir", help="folder of the images (the JSON's images[].file_name)")
    sub.add_argument("out_dir", help="root of the COCO-panoptic folder to write")
    sub.add_argument("--overlap", choices=[rule.replace("_", "-") for rule in OVERLAP_RULES], default="smaller-on-top",
                     help="which instance keeps overlapping pixels (default: the smaller)")
    sub.add_argument("--stuff-dir", help="folder of index PNGs (named like the images) classing the pixels no "
                     "instance covers")
    sub.add_argument("--stuff-categories", help="category table (CSV or JSON: index, name, isthing) of --stuff-dir")
    sub.add_argument("--stuff-ignore-index", type=int, default=255, help="unlabelled value of the stuff maps (255)")
    common(sub)

    sub = formats.add_parser("semantic-masks", help="index or colour PNGs and a category table")
    sub.add_argument("image_dir", help="folder of the images")
    sub.add_argument("mask_dir", help="folder of the masks, <image stem>.png")
    sub.add_argument("categories", help="category table, CSV or JSON: name, isthing, and index or color")
    sub.add_argument("out_dir", help="root of the COCO-panoptic folder to write")
    sub.add_argument("--things", choices=[rule.replace("_", "-") for rule in THING_RULES], default="components",
                     help="split each thing class into connected components (default) or keep one segment per class")
    sub.add_argument("--ignore-index", type=int, default=255, help="unlabelled value of index PNGs (255)")
    sub.add_argument("--void-color", default="0,0,0", help="unlabelled colour of colour PNGs (default 0,0,0; "
                     "'none' when every colour is a category)")
    common(sub)

    sub = formats.add_parser("instance-annotations",
                             help="3-channel PNGs (class, instance id, zeros), as transformers' instance example reads")
    sub.add_argument("image_dir", help="folder of the images")
    sub.add_argument("annotation_dir", help="folder of the annotations, <image stem>.png")
    sub.add_argument("semantic_class_to_id", help="JSON file mapping class names to the PNGs' channel-0 values")
    sub.add_argument("out_dir", help="root of the COCO-panoptic folder to write")
    sub.add_argument("--stuff-classes", default="", help="comma-separated class names that are stuff (one segment "
                     "per class); the others are things")
    sub.add_argument("--do-reduce-labels", action="store_true", help="class 0 is the background: unlabelled")
    sub.add_argument("--ignore-index", type=int, default=255, help="unlabelled class value of channel 0 (255)")
    common(sub)

    sub = formats.add_parser("sentences", help="referring sentences (CSV or JSON) added to a converted folder")
    sub.add_argument("data_dir", help="root of a COCO-panoptic folder (as the converters write)")
    sub.add_argument("sentences", help="CSV or JSON rows: image, sentence, and segment_id, annotation_id (COCO "
                     "instances), instance_id (instance annotations) or polygon")
    common(sub, writes=False)
    parser.epilog = ("the formats and their options (`python -m seem_hf.data.convert FORMAT --help` says what each "
                     "means):\n\n" + "\n".join(choice.format_usage() for choice in formats.choices.values()))
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        if arguments.format == "coco-instances":
            report = convert_coco_instances(
                arguments.instances_json, arguments.image_dir, arguments.out_dir, arguments.split,
                arguments.stuff_dir, arguments.stuff_categories, arguments.stuff_ignore_index,
                arguments.overlap.replace("-", "_"), arguments.skip_problems, arguments.overwrite,
                arguments.num_workers)
        elif arguments.format == "semantic-masks":
            void = None if arguments.void_color.lower() == "none" else _parse_color(arguments.void_color, "", [])
            report = convert_semantic_masks(
                arguments.image_dir, arguments.mask_dir, arguments.categories, arguments.out_dir, arguments.split,
                arguments.things.replace("-", "_"), arguments.ignore_index, void, arguments.skip_problems,
                arguments.overwrite, arguments.num_workers)
        elif arguments.format == "instance-annotations":
            report = convert_instance_annotations(
                arguments.image_dir, arguments.annotation_dir, arguments.semantic_class_to_id, arguments.out_dir,
                arguments.split, [n.strip() for n in arguments.stuff_classes.split(",") if n.strip()],
                arguments.do_reduce_labels, arguments.skip_problems, arguments.overwrite, arguments.num_workers,
                arguments.ignore_index)
        else:
            report = add_sentences(arguments.data_dir, arguments.sentences, arguments.split, arguments.skip_problems)
    except ConversionError as error:
        for problem in error.problems:
            print(problem)
        print(f"{plural(len(error.problems), 'problem')} found; nothing was written (--skip-problems converts the "
              f"rest and lists what it skips).", file=sys.stderr)
        return 1
    except FileExistsError as error:
        print(error, file=sys.stderr)
        return 1
    for problem in report.problems:
        print(f"skipped: {problem}")
    for note in report.notes:
        print(f"note: {note}")
    print(report.summary())
    return 0


__all__ = ["ConversionError", "ConversionReport", "add_sentences", "convert_coco_instances",
           "convert_instance_annotations", "convert_semantic_masks", "read_category_table"]


if __name__ == "__main__":
    sys.exit(main())

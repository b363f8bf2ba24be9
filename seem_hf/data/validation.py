"""Checking a COCO-panoptic dataset, with its optional grounding sentences, against every rule the loader relies on.

`validate_coco_panoptic` returns every problem at once, one line each, naming the file and, where it applies,
the image, segment or grounding annotation; it never raises on bad data (wrong types, missing keys, broken JSON
or images). A dataset it passes is one `load_coco_panoptic` reads. The rules:

- Files: the JSON files exist and parse (a syntax error gives its line and column) into an object with
  `images`, `annotations` and `categories` lists (the grounding JSON: an `annotations` list); every image and
  panoptic PNG exists and decodes.
- Fields, with their types: categories `id` (int), `name` (non-empty text), `isthing` (0/1), `color` (three ints in
  0..255); images `id` (non-negative: it seeds the image's augmentation), `file_name`, `height`, `width` (positive);
  annotations `image_id`, `file_name`, `segments_info` (a list); segments `id` (1 .. 256^3 - 1), `category_id`,
  `area`, `bbox` ([x, y, w, h]), optional `iscrowd` (0/1); grounding annotations `image_id`, `segmentation`
  (polygons or RLE), `sentences` (non-empty `raw` texts), optional `segment_id` and `category_id`.
- Uniqueness: image ids and file names, annotation image ids and PNG names, category ids and names, segment ids
  within an image, grounding annotation ids; every image has an annotation and every annotation an image.
- Consistency with the files: image size = JSON `height` x `width` = PNG size; images in a mode `read_image` reads
  (16-bit and float by its value rule; an EXIF orientation may turn the image to the JSON's size); RGB PNGs (id = R
  + 256 G + 256^2 B; a palette PNG, as optimisers save few-colour PNGs, is read by its colours, as the loader's
  `convert("RGB")` reads it, and so is one with an opaque alpha channel; JPEG data named `.png` is refused: lossy
  compression changes the ids); the PNG's ids = `segments_info`'s; `area` = the segment's pixel count; `bbox` = the
  mask's box (within `BBOX_TOLERANCE` pixels, for the two conventions of the box's far edge); categories exist; a
  grounding annotation's image, segment and category exist and agree, its mask lies on its image (an RLE's runs
  cover its size exactly) and covers pixels (on its segment, when it names one).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import PIL.Image
from tqdm.auto import tqdm

from seem_hf.data.panoptic_format import rgb2id, segmentation_mask
from seem_hf.image_utils import _upright

BBOX_TOLERANCE = 1
"""Pixels a `bbox` side may differ from its mask's box: COCO's converters give `w = x_max - x_min + 1`, some tools
`x_max - x_min`."""
MIN_GROUNDING_IOU = 0.5
"""A grounding annotation that names a segment must overlap it at least this much (IoU): the loader trains on the
segment's mask, so a segmentation elsewhere means the sentence describes something else."""
_MAX_SEGMENT_ID = 256**3 - 1
_READABLE_IMAGE_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "La",
                         "I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
"""PIL modes `seem_hf.image_utils.read_image` reads as RGB (16-bit and float ones by its value rule), in training as
in inference."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_flag(value) -> bool:
    return isinstance(value, bool) or (_is_int(value) and value in (0, 1))


def _show(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_utf8(path: str | Path) -> str:
    """The text of the file `path`, UTF-8 with or without the byte-order mark that Excel and Windows editors write
    (read as plain UTF-8, the mark made a CSV's first column `\ufeffname` and a JSON file unreadable). Raises a
    `ValueError` naming the file and the line and column of the first byte that is not UTF-8 (a file saved as
    Latin-1 or Windows-1252), and how to save it; `OSError` as reading the file does."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line, line_start = data.count(b"\n", 0, error.start) + 1, data.rfind(b"\n", 0, error.start) + 1
        shown = data[line_start:error.start + 1].decode("utf-8", "replace")
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at line {line}, column "
            f"{error.start - line_start + 1}: {shown!r}); save the file as UTF-8 (Excel: 'CSV UTF-8'; an editor: "
            "'save with encoding UTF-8')"
        ) from None


def plural(count: int, noun: str) -> str:
    """`1 problem`, `2 problems`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


_FOLDER_STEMS: dict[tuple[str, int], dict[str, list[str]]] = {}
"""File names of a folder by lower-case stem, per (folder, modification time): `near_names` lists each folder once
while it is unchanged (a run of missing files in one folder of 100k files stays one listing)."""


def near_names(path: Path) -> list[str]:
    """Files beside a missing `path` that a user may have meant: its name in another case (IMG_1.JPG for
    IMG_1.jpg), or its stem with another suffix (1.png for 1.jpg)."""
    folder = Path(path).parent
    try:
        key = (str(folder), folder.stat().st_mtime_ns)
    except OSError:
        return []
    if key not in _FOLDER_STEMS:
        stems: dict[str, list[str]] = {}
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_file():
                        stems.setdefault(Path(entry.name).stem.lower(), []).append(entry.name)
        except OSError:
            pass
        if len(_FOLDER_STEMS) > 64:
            _FOLDER_STEMS.clear()
        _FOLDER_STEMS[key] = stems
    return sorted(_FOLDER_STEMS[key].get(Path(path).stem.lower(), []))


def missing_file(path: Path, what: str, fix: str = "correct the JSON's file_name", other_suffixes: bool = True) -> str:
    """The problem of a missing file (`path: file is missing (what)`), naming the files beside it that differ in case
    or (with `other_suffixes`: not where photos and masks share a folder and a stem) suffix (`near_names`), and the
    fix: rename the file or `fix`."""
    near = [name for name in near_names(path) if other_suffixes or name.lower() == Path(path).name.lower()]
    text = f"{path}: file is missing ({what})"
    if not near:
        return text
    same = [name for name in near if name.lower() == Path(path).name.lower()]
    if same:
        return (text + f"; {same[0]} is there, its name in another case (file names are case-sensitive here): "
                f"rename the file or {fix}")
    return (text + f"; {', '.join(near[:3])} {'is' if len(near) == 1 else 'are'} there, with another suffix: "
            f"{fix} (or convert the file to the format its name says)")


class _Checker:
    """Collects problems; `field` reads one typed field of a JSON object or records why it cannot."""

    def __init__(self):
        self.problems: list[str] = []

    def add(self, text: str) -> None:
        self.problems.append(text)

    def field(self, record: dict, key: str, where: str, check, expected: str, required: bool = True):
        if key not in record:
            if required:
                self.add(f"{where}: missing `{key}` ({expected})")
            return None
        value = record[key]
        if not check(value):
            self.add(f"{where}: `{key}` must be {expected}, got {_show(value)}")
            return None
        return value

    def duplicates(self, values: list, where: str, what: str, why: str) -> None:
        for value, count in Counter(v for v in values if v is not None).items():
            if count > 1:
                self.add(f"{where}: {what} {_show(value)} appears {count} times ({why})")

    def read_json(self, path: Path, required_lists: tuple[str, ...]) -> dict | None:
        if not path.is_file():
            self.add(f"{path}: file is missing")
            return None
        try:
            data = json.loads(read_utf8(path))
        except json.JSONDecodeError as error:
            self.add(f"{path}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}")
            return None
        except ValueError as error:  # not UTF-8: read_utf8 names the file and the byte
            self.add(str(error))
            return None
        except OSError as error:
            self.add(f"{path}: cannot be read ({error})")
            return None
        if not isinstance(data, dict):
            self.add(f"{path}: must hold a JSON object with {list(required_lists)}, got {type(data).__name__}")
            return None
        sound = True
        for key in required_lists:
            if key not in data:
                self.add(f"{path}: missing top-level key `{key}` (a list)")
                sound = False
            elif not isinstance(data[key], list):
                self.add(f"{path}: `{key}` must be a list, got {_show(data[key])}")
                sound = False
        return data if sound else None

    def open_image(self, path: Path, what: str) -> PIL.Image.Image | None:
        if not path.is_file():
            self.add(missing_file(path, what))
            return None
        try:
            image = PIL.Image.open(path)
            image.load()
            return image
        except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as error:
            self.add(f"{path}: cannot be read as an image ({what}: {error})")
            return None


def _check_categories(checker: _Checker, path: Path, categories: list) -> dict[int, dict]:
    known, ids, names = {}, [], []
    for index, category in enumerate(categories):
        where = f"{path}: category #{index}"
        if not isinstance(category, dict):
            checker.add(f"{where}: must be an object, got {_show(category)}")
            continue
        category_id = checker.field(category, "id", where, lambda v: _is_int(v) and v >= 0, "a non-negative integer")
        if category_id is not None:
            where = f"{path}: category {category_id}"
        name = checker.field(category, "name", where, lambda v: isinstance(v, str) and v.strip(), "a non-empty text")
        isthing = checker.field(category, "isthing", where, _is_flag, "0 or 1")
        color = checker.field(
            category, "color", where,
            lambda v: isinstance(v, list) and len(v) == 3 and all(_is_int(c) and 0 <= c <= 255 for c in v),
            "three integers in 0..255",
        )
        ids.append(category_id)
        names.append(name)
        if None not in (category_id, name, isthing, color):
            known.setdefault(category_id, category)
    checker.duplicates(ids, path, "category id", "each category needs its own id")
    checker.duplicates(names, path, "category name", "names are the label set; each must be unique")
    if not categories:
        checker.add(f"{path}: `categories` is empty; the label set needs at least one category")
    return known


def _check_images(checker: _Checker, path: Path, images: list) -> dict[int, dict]:
    """Images whose fields are sound, by id; an id used twice is left out (its pairs cannot be trusted)."""
    sound, ids, names = {}, [], []
    for index, image in enumerate(images):
        where = f"{path}: image #{index}"
        if not isinstance(image, dict):
            checker.add(f"{where}: must be an object, got {_show(image)}")
            continue
        image_id = checker.field(image, "id", where, _is_int, "an integer")
        if image_id is not None:
            where = f"{path}: image {image_id}"
        file_name = checker.field(image, "file_name", where, lambda v: isinstance(v, str) and v.strip(),
                                  "a non-empty file name")
        if image_id is not None and image_id < 0:
            # Augmentation seeds numpy's generator with [seed, image_id, epoch], which takes no negative number.
            checker.add(f"{where}{f' ({file_name})' if file_name else ''}: `id` must be a non-negative integer "
                        f"(it seeds the image's augmentation), got {image_id}; renumber the images (and the "
                        f"annotations' image_id) from 0 or 1")
            image_id = None
        if file_name is not None:
            where = f"{where} ({file_name})"
        height = checker.field(image, "height", where, lambda v: _is_int(v) and v > 0, "a positive integer")
        width = checker.field(image, "width", where, lambda v: _is_int(v) and v > 0, "a positive integer")
        ids.append(image_id)
        names.append(file_name)
        if None not in (image_id, file_name, height, width):
            sound.setdefault(image_id, image)
    checker.duplicates(ids, path, "image id", "each image needs its own id, or annotations pair with the wrong picture")
    checker.duplicates(names, path, "image file_name", "two image entries name the same picture")
    repeated = {value for value, count in Counter(ids).items() if count > 1}
    return {image_id: image for image_id, image in sound.items() if image_id not in repeated}


def _check_segment_fields(checker: _Checker, segment, where: str, categories: dict) -> dict | None:
    if not isinstance(segment, dict):
        checker.add(f"{where}: must be an object, got {_show(segment)}")
        return None
    segment_id = checker.field(segment, "id", where, lambda v: _is_int(v) and 1 <= v <= _MAX_SEGMENT_ID,
                               f"an integer in 1..{_MAX_SEGMENT_ID} (0 is void in the PNG)")
    category_id = checker.field(segment, "category_id", where, _is_int, "an integer")
    if category_id is not None and category_id not in categories:
        checker.add(f"{where}: unknown category_id {category_id} (not among the JSON's categories)")
        category_id = None
    area = checker.field(segment, "area", where, lambda v: _is_number(v) and v >= 0 and float(v).is_integer(),
                         "a whole number of pixels")
    bbox = checker.field(
        segment, "bbox", where,
        lambda v: isinstance(v, list) and len(v) == 4 and all(map(_is_number, v)) and v[2] >= 0 and v[3] >= 0,
        "[x, y, width, height] with width and height >= 0",
    )
    iscrowd = checker.field(segment, "iscrowd", where, _is_flag, "0 or 1", required=False)
    if None in (segment_id, category_id, area, bbox) or ("iscrowd" in segment and iscrowd is None):
        return None
    return segment


def _mask_box(mask: np.ndarray) -> list[int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def _check_files(checker: _Checker, image: dict, image_path: Path | None, png_path: Path, segments: dict,
                 listed: set) -> np.ndarray | None:
    """Image and PNG against the JSON, and the PNG's segments against `segments` (the sound entries of
    `segments_info`, by id) and `listed` (every id it lists); returns the PNG's id map when it could be read."""
    expected = (image["height"], image["width"])
    if image_path is not None:
        picture = checker.open_image(image_path, f"image {image['id']}")
        if picture is not None:
            if picture.mode not in _READABLE_IMAGE_MODES:
                checker.add(f"{image_path}: image {image['id']}: mode {picture.mode} is not read as an image; save "
                            f"it as 8-bit RGB")
            if picture.size[::-1] != expected and _upright(picture).size[::-1] != expected:
                checker.add(f"{image_path}: image {image['id']}: size {picture.size[::-1]} (H, W) differs from the "
                            f"JSON's height x width {expected}")
    png = checker.open_image(png_path, f"panoptic PNG of image {image['id']}")
    if png is None:
        return None
    if png.format != "PNG":
        checker.add(f"{png_path}: image {image['id']}: panoptic PNG holds {png.format} data, not PNG"
                    + (" (lossy: JPEG compression blurs the colours that encode the segment ids)"
                       if png.format == "JPEG" else "")
                    + "; write the id map (segment id = R + 256 G + 256^2 B) as a lossless PNG")
        return None
    if png.mode == "P":
        # Optimisers save few-colour RGB PNGs with a palette; the loader's convert("RGB") reads their colours exactly.
        png = png.convert("RGB")
    if png.mode in ("RGBA", "PA"):
        # An opaque alpha channel (image editors, some exporters) carries nothing: the loader's convert("RGB") reads
        # the ids. Transparent pixels are refused: whether they are void or the segment their colour says is unknown.
        alpha = np.asarray(png.getchannel("A"))
        transparent = int((alpha != 255).sum())
        if transparent:
            checker.add(f"{png_path}: image {image['id']}: panoptic PNG of mode {png.mode} has {transparent} "
                        "transparent or translucent pixels: whether they are void or the segment their colour encodes "
                        "cannot be told; save the id map as 8-bit RGB (void pixels black)")
            return None
        png = png.convert("RGB")
    if png.mode != "RGB":
        checker.add(f"{png_path}: image {image['id']}: panoptic PNG must be RGB (segment id = R + 256 G + 256^2 B), "
                    f"got mode {png.mode}" + (" (a one-channel label map? the converters turn those into panoptic "
                                               "PNGs: python -m seem_hf.data.convert semantic-masks)"
                                               if png.mode in ("L", "I;16", "I") else
                                               "; save it as 8-bit RGB" if png.mode in ("RGBA", "LA", "PA") else ""))
        return None
    if png.size[::-1] != expected:
        checker.add(f"{png_path}: image {image['id']}: PNG size {png.size[::-1]} (H, W) differs from the JSON's "
                    f"height x width {expected}")
    ids = rgb2id(np.asarray(png))
    present, counts = np.unique(ids, return_counts=True)
    pixels = {int(i): int(c) for i, c in zip(present, counts) if i != 0}
    for segment_id in sorted(set(pixels) - listed):
        checker.add(f"{png_path}: image {image['id']}: segment {segment_id}: {pixels[segment_id]} pixels in the PNG "
                    f"but not in segments_info")
    for segment_id, segment in segments.items():
        label = f"{png_path}: image {image['id']}: segment {segment_id}"
        if segment_id not in pixels:
            checker.add(f"{label}: in segments_info but has no pixel in the PNG")
            continue
        if segment["area"] != pixels[segment_id]:
            checker.add(f"{label}: area {_show(segment['area'])} in the JSON, {pixels[segment_id]} pixels in the PNG")
        box = _mask_box(ids == segment_id)
        if max(abs(float(a) - b) for a, b in zip(segment["bbox"], box)) > BBOX_TOLERANCE:
            checker.add(f"{label}: bbox {_show(segment['bbox'])} in the JSON, the mask's box is {box} [x, y, w, h]")
    return ids


def _check_grounding_fields(checker: _Checker, path: Path, index: int, annotation, images: dict,
                            categories: dict, segments_of: dict) -> tuple | None:
    """The fields of one grounding annotation; returns (image, segmentation, segment id or None) when sound."""
    where = f"{path}: grounding annotation #{index}"
    if not isinstance(annotation, dict):
        checker.add(f"{where}: must be an object, got {_show(annotation)}")
        return None
    if _is_int(annotation.get("id")):
        where = f"{path}: grounding annotation {annotation['id']}"
    image_id = checker.field(annotation, "image_id", where, _is_int, "an integer")
    if image_id is not None:
        where = f"{where} (image {image_id})"
    segment_id = checker.field(annotation, "segment_id", where, _is_int, "an integer", required=False)
    category_id = checker.field(annotation, "category_id", where, _is_int, "an integer", required=False)
    sentences = checker.field(annotation, "sentences", where, lambda v: isinstance(v, list) and v,
                              "a non-empty list of {'raw': text}")
    for number, sentence in enumerate(sentences or []):
        if not isinstance(sentence, dict) or not isinstance(sentence.get("raw"), str):
            checker.add(f"{where}: sentence #{number} must be {{'raw': text}}, got {_show(sentence)}")
        elif not sentence["raw"].strip():
            checker.add(f"{where}: sentence #{number} is empty")
    segmentation = annotation.get("segmentation")
    if "segmentation" not in annotation:
        checker.add(f"{where}: missing `segmentation` (polygons [[x, y, ...], ...] or an RLE "
                    f"{{'size': [height, width], 'counts': ...}})")
        segmentation = None
    elif isinstance(segmentation, list):
        if not segmentation:
            checker.add(f"{where}: empty polygon list")
            segmentation = None
        for polygon in segmentation or []:
            if not isinstance(polygon, list) or not all(map(_is_number, polygon)):
                checker.add(f"{where}: a polygon must be a list of numbers [x1, y1, x2, y2, ...], got {_show(polygon)}")
                segmentation = None
            elif len(polygon) < 6 or len(polygon) % 2:
                checker.add(f"{where}: polygon with {len(polygon)} coordinates; a polygon needs at least 3 (x, y) "
                            f"points")
                segmentation = None
    elif isinstance(segmentation, dict):
        counts = segmentation.get("counts")
        if not (isinstance(counts, str) or (isinstance(counts, list) and all(_is_int(c) and c >= 0 for c in counts))):
            checker.add(f"{where}: RLE `counts` must be a compressed text or a list of run lengths, "
                        f"got {_show(counts)}")
            segmentation = None
    else:
        checker.add(f"{where}: segmentation must be a polygon list or an RLE dict, got {_show(segmentation)}")
        segmentation = None
    image = images.get(image_id) if image_id is not None else None
    if image_id is not None and image is None:
        checker.add(f"{where}: image_id {image_id} is not among the panoptic JSON's images (or its entry is broken)")
    segments, listed = segments_of.get(image_id, ({}, set()))
    if segment_id is not None and image is not None and image_id in segments_of and segment_id not in listed:
        checker.add(f"{where}: segment_id {segment_id} is not a segment of image {image_id} in the panoptic JSON")
        segment_id = None
    if category_id is not None:
        if category_id not in categories:
            checker.add(f"{where}: unknown category_id {category_id}")
        elif segment_id in segments and segments[segment_id]["category_id"] != category_id:
            checker.add(f"{where}: category_id {category_id}, but its segment {segment_id} has category "
                        f"{segments[segment_id]['category_id']}")
    if isinstance(segmentation, dict) and image is not None:
        size = segmentation.get("size")
        if size != [image["height"], image["width"]]:
            checker.add(f"{where}: RLE size {_show(size)} differs from the image's [height, width] "
                        f"{[image['height'], image['width']]}")
            segmentation = None
    if image is None or segmentation is None or sentences is None:
        return None
    return image, segmentation, segment_id, where


def _check_grounding_mask(checker: _Checker, grounding: tuple, ids: np.ndarray | None) -> None:
    image, segmentation, segment_id, where = grounding
    try:
        mask = segmentation_mask(segmentation, image["height"], image["width"])
    except Exception as error:  # pycocotools raises several types on malformed RLE
        checker.add(f"{where}: segmentation cannot be decoded ({type(error).__name__}: {error})")
        return
    if not mask.any():
        checker.add(f"{where}: segmentation covers no pixel of the image")
        return
    if segment_id is not None and ids is not None and ids.shape == mask.shape:
        segment = ids == segment_id
        iou = (mask & segment).sum() / max((mask | segment).sum(), 1)
        if iou < MIN_GROUNDING_IOU:
            checker.add(f"{where}: segmentation overlaps its segment {segment_id} with IoU {iou:.2f} "
                        f"(< {MIN_GROUNDING_IOU}); the loader trains on the segment's mask")


def _missing_folder(folder: Path, what: str, count: int, panoptic_json: Path) -> str:
    """The problem of a missing folder, with what its parent holds (the folder a typo'd name meant)."""
    parent = folder.parent
    if parent.is_dir():
        there = sorted(entry.name for entry in parent.iterdir() if entry.is_dir() and not entry.name.startswith("."))
        beside = f"{parent} holds the folders {there}" if there else f"{parent} holds no folder"
    else:
        beside = f"{parent} is missing too"
    return (f"{folder}: {what} is missing ({plural(count, 'annotation')} of {panoptic_json.name} name files in it); "
            f"{beside}")


def validate_coco_panoptic(
    image_dir: str | Path | None,
    panoptic_dir: str | Path,
    panoptic_json: str | Path,
    grounding_json: str | Path | None = None,
) -> list[str]:
    """Every problem of a COCO-panoptic dataset (the rules are in this module's docstring), each a line naming the
    file and, where it applies, the image, segment or grounding annotation. Empty when the dataset is sound.
    Never raises on bad data. `image_dir=None` skips the image files (sizes are then checked between the JSON
    and the PNGs only)."""
    panoptic_dir, panoptic_json = Path(panoptic_dir), Path(panoptic_json)
    checker = _Checker()
    data = checker.read_json(panoptic_json, ("images", "annotations", "categories"))
    if data is None:
        return checker.problems
    categories = _check_categories(checker, panoptic_json, data["categories"])
    images = _check_images(checker, panoptic_json, data["images"])
    listed_ids = {image.get("id") for image in data["images"] if isinstance(image, dict) and _is_int(image.get("id"))}

    # Annotation fields and uniqueness first, so that files are read only for sound pairs.
    pairs, annotated_ids, png_names = [], [], []
    segments_of: dict[int, tuple[dict[int, dict], set]] = {}  # image id -> (sound segments by id, listed ids)
    for index, annotation in enumerate(data["annotations"]):
        where = f"{panoptic_json}: annotation #{index}"
        if not isinstance(annotation, dict):
            checker.add(f"{where}: must be an object, got {_show(annotation)}")
            continue
        image_id = checker.field(annotation, "image_id", where, _is_int, "an integer")
        file_name = checker.field(annotation, "file_name", where, lambda v: isinstance(v, str) and v.strip(),
                                  "a non-empty PNG file name")
        segment_list = checker.field(annotation, "segments_info", where, lambda v: isinstance(v, list), "a list")
        annotated_ids.append(image_id)
        png_names.append(file_name)
        if file_name is not None:
            where = f"{panoptic_dir / file_name}: image {image_id if image_id is not None else '?'}"
        if image_id is not None and image_id not in listed_ids:
            checker.add(f"{where}: image_id {image_id} is not among the JSON's images")
        segments, segment_ids = {}, []
        for number, segment in enumerate(segment_list or []):
            segment_id = segment.get("id") if isinstance(segment, dict) and _is_int(segment.get("id")) else None
            label = f"{where}: segment {segment_id}" if segment_id is not None else f"{where}: segments_info #{number}"
            checked = _check_segment_fields(checker, segment, label, categories)
            segment_ids.append(segment_id)
            if checked is not None:
                segments.setdefault(segment_id, checked)
        checker.duplicates(segment_ids, where, "segment id", "segment ids must be unique within an image")
        if image_id is not None and segment_list is not None:
            segments_of.setdefault(image_id, (segments, set(segment_ids)))
        pairs.append((image_id, file_name, segments, set(segment_ids)))
    checker.duplicates(annotated_ids, panoptic_json, "annotation image_id",
                       "one annotation per image; a second one pairs a PNG with the wrong picture")
    checker.duplicates(png_names, panoptic_json, "annotation file_name", "two annotations name the same PNG")
    repeated = {value for value, count in Counter(annotated_ids).items() if count > 1}
    for image_id in sorted(listed_ids - set(annotated_ids)):
        image = images.get(image_id, {})
        checker.add(f"{panoptic_json}: image {image_id} ({image.get('file_name', '?')}) has no panoptic annotation")

    groundings: dict[int, list[tuple]] = {}
    if grounding_json is not None:
        grounding_json = Path(grounding_json)
        grounding_data = checker.read_json(grounding_json, ("annotations",))
        if grounding_data is not None:
            annotations = grounding_data["annotations"]
            checker.duplicates([a.get("id") if isinstance(a, dict) and _is_int(a.get("id")) else None
                                for a in annotations], grounding_json, "grounding annotation id",
                               "problems and results name annotations by id")
            for index, annotation in enumerate(annotations):
                grounding = _check_grounding_fields(checker, grounding_json, index, annotation, images, categories,
                                                    segments_of)
                if grounding is not None:
                    groundings.setdefault(grounding[0]["id"], []).append(grounding)

    image_dir = Path(image_dir) if image_dir is not None else None
    # A missing folder (a typo'd split name) is one problem, not one per file it should hold.
    folders = {folder: folder.is_dir() for folder in (image_dir, panoptic_dir) if folder is not None}
    for folder, what in ((image_dir, "image folder"), (panoptic_dir, "panoptic PNG folder")):
        if pairs and folder is not None and not folders[folder]:
            checker.add(_missing_folder(folder, what, len(pairs), panoptic_json))
    checked_images = set()
    for image_id, file_name, segments, listed in tqdm(pairs, desc=f"checking {panoptic_json.name}",
                                                     disable=len(pairs) < 100):
        image = images.get(image_id)
        if image is None or file_name is None or image_id in repeated:
            continue
        checked_images.add(image_id)
        ids = None
        if folders[panoptic_dir]:
            ids = _check_files(checker, image, image_dir / image["file_name"] if folders.get(image_dir) else None,
                               panoptic_dir / file_name, segments, listed)
        for grounding in groundings.get(image_id, []):
            _check_grounding_mask(checker, grounding, ids)
    for image_id, items in groundings.items():
        if image_id not in checked_images:
            for grounding in items:
                _check_grounding_mask(checker, grounding, None)
    return checker.problems


VALIDATION_CACHE_ENV = "SEEM_HF_VALIDATION_CACHE"
"""Where the datasets that passed are remembered (`off`: nowhere); by default `seem_hf/validated` under
Hugging Face's cache home."""


def dataset_fingerprint(image_dir: str | Path | None, panoptic_dir: str | Path, panoptic_json: str | Path,
                        grounding_json: str | Path | None = None) -> str:
    """SHA-256 of what a validation depends on: the rules (this module's source), the JSON files' paths, sizes and
    modification times, and the relative path, size and modification time of every file in the two folders and
    their subfolders (file names such as `city/1.png` are legal). Any edit, added or removed file changes it;
    reading the folders' entries costs about a second per 100k files."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in (panoptic_json, grounding_json):
        if path is not None:
            stat = Path(path).stat()
            digest.update(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns};".encode())
    for folder in (image_dir, panoptic_dir):
        if folder is None:
            digest.update(b"-;")
            continue
        digest.update(f"{Path(folder).resolve()};".encode())
        for name, stat in sorted(_files_below(Path(folder))):
            digest.update(f"{name}|{stat.st_size}|{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def _files_below(folder: Path):
    """(relative posix path, stat) of every file under `folder`, following linked folders once each (a link loop
    ends there). Raises `OSError` when `folder` cannot be read."""
    seen = set()
    pending = [(folder, "")]
    while pending:
        directory, prefix = pending.pop()
        stat = directory.stat()
        if (stat.st_dev, stat.st_ino) in seen:
            continue
        seen.add((stat.st_dev, stat.st_ino))
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir():
                    pending.append((Path(entry.path), f"{prefix}{entry.name}/"))
                elif entry.is_file():
                    yield f"{prefix}{entry.name}", entry.stat()


def validate_coco_panoptic_once(image_dir: str | Path | None, panoptic_dir: str | Path, panoptic_json: str | Path,
                                grounding_json: str | Path | None = None) -> list[str]:
    """`validate_coco_panoptic`, skipped for a dataset that passed before with the same files (`dataset_fingerprint`):
    a training run on COCO's 118k images would otherwise decode every image and PNG (about 45 minutes on 2 cores)
    before each start. A pass is remembered in `$SEEM_HF_VALIDATION_CACHE` (see `VALIDATION_CACHE_ENV`); problems
    never are, so a dataset with problems is checked, and reported, every time."""
    from seem_hf.caching import cache_home

    folder = cache_home(VALIDATION_CACHE_ENV, "validated")
    try:
        marker = None if folder is None else folder / dataset_fingerprint(image_dir, panoptic_dir, panoptic_json,
                                                                          grounding_json)
    except OSError:  # a missing file or folder: the validation names it
        marker = None
    if marker is not None and marker.is_file():
        return []
    problems = validate_coco_panoptic(image_dir, panoptic_dir, panoptic_json, grounding_json)
    if not problems and marker is not None:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"panoptic_json": str(panoptic_json), "image_dir": str(image_dir),
                                          "panoptic_dir": str(panoptic_dir), "grounding_json": str(grounding_json)}))
        except OSError:  # a read-only cache home: validate again next time
            pass
    return problems


__all__ = ["BBOX_TOLERANCE", "MIN_GROUNDING_IOU", "VALIDATION_CACHE_ENV", "dataset_fingerprint", "missing_file",
           "plural", "read_utf8", "validate_coco_panoptic", "validate_coco_panoptic_once"]

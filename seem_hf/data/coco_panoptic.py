"""Reading COCO-panoptic datasets with grounding sentences (the checks are in `seem_hf.data.validation`).

A dataset is an image folder, a folder of panoptic PNGs (segment id = R + 256 G + 256^2 B, 0 = void), the
panoptic JSON (`images`, `annotations` with `segments_info`, `categories` with id, name, isthing, color) and,
optionally, a grounding JSON of COCO-style annotations (`image_id`, polygon or RLE `segmentation`,
`sentences[].raw`). `validate_coco_panoptic` lists every problem at once, each naming the file, the image and
the segment; `load_coco_panoptic` refuses a dataset with problems and otherwise returns a `datasets.Dataset`,
one row per image, whose images and PNGs are decoded only when read.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
from tqdm.auto import tqdm

from seem_hf.data.categories import LabelVocabulary
from seem_hf.data.panoptic_format import rgb2id, segmentation_mask
from seem_hf.data.validation import plural, read_utf8, validate_coco_panoptic, validate_coco_panoptic_once


def _refuse(problems: list[str], image_dir, panoptic_dir, panoptic_json, grounding_json) -> None:
    """Raise a `ValueError` listing `problems` (the first 100) and the command that lists them all."""
    if not problems:
        return
    shown = "\n".join(problems[:100])
    more = f"\n... and {len(problems) - 100} more" if len(problems) > 100 else ""
    command = " ".join(
        ["python -m seem_hf.data.validate", str(image_dir) if image_dir is not None else "IMAGE_DIR", str(panoptic_dir),
         str(panoptic_json)] + (["--grounding", str(grounding_json)] if grounding_json is not None else [])
    )
    raise ValueError(
        f"{plural(len(problems), 'problem')} in the dataset of {panoptic_json}:\n{shown}{more}\n"
        f"Fix them and check again with: {command}"
    )


PANOPTIC_FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "panoptic": datasets.Image(),
        "image_id": datasets.Value("int64"),
        "height": datasets.Value("int32"),
        "width": datasets.Value("int32"),
        "segments": [
            {
                "id": datasets.Value("int64"),
                "category_id": datasets.Value("int64"),
                "label": datasets.Value("int32"),
                "isthing": datasets.Value("bool"),
                "iscrowd": datasets.Value("bool"),
                "bbox": datasets.Sequence(datasets.Value("float32"), length=4),
                "area": datasets.Value("int64"),
            }
        ],
        "groundings": [
            {
                "segment_id": datasets.Value("int64"),
                "category_id": datasets.Value("int64"),
                "segmentation": datasets.Value("string"),
                "sentences": [datasets.Value("string")],
            }
        ],
    }
)
"""The columns of `load_coco_panoptic`'s rows (and of `seem_hf.data.ShapesStream`'s)."""


@contextlib.contextmanager
def _naming(where: str, image_dir, panoptic_dir, panoptic_json, grounding_json):
    """Turn an error while reading a record into one that names it and the command that checks the dataset (the
    validator passes only what the loader reads; this is the last line of defence, not the check)."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        if isinstance(error, ValueError) and "python -m seem_hf.data.validate" in str(error):
            raise  # already named by an inner record
        command = " ".join(
            ["python -m seem_hf.data.validate", str(image_dir), str(panoptic_dir), str(panoptic_json)]
            + (["--grounding", str(grounding_json)] if grounding_json is not None else [])
        )
        detail = f"missing field {error}" if isinstance(error, KeyError) else f"{type(error).__name__}: {error}"
        raise ValueError(f"{where}: cannot be read ({detail}). List every problem with: {command}") from error


def grounding_row(annotation: dict) -> dict:
    """One grounding annotation (COCO-style, with `sentences[].raw`) as an entry of a row's `groundings`."""
    return {
        "segment_id": int(annotation.get("segment_id", -1)),
        "category_id": int(annotation.get("category_id", -1)),
        "segmentation": json.dumps(annotation["segmentation"]),
        "sentences": [sentence["raw"] for sentence in annotation["sentences"]],
    }


def panoptic_row(image: dict, annotation: dict, image_file, panoptic_file, contiguous: dict[int, int],
                 categories: dict[int, dict], groundings: list[dict], naming=None) -> dict:
    """One row of `load_coco_panoptic` from an `images` entry, its `annotations` entry and its grounding rows.
    `image_file` and `panoptic_file` are paths or decoded images; `naming(where)` wraps the reading of each record
    (a context manager whose errors name it)."""
    naming = naming or (lambda where: contextlib.nullcontext())
    png = str(panoptic_file) if isinstance(panoptic_file, (str, Path)) else annotation.get("file_name")
    segments = []
    with naming(f"{png}: image {image.get('id')}"):
        for number, s in enumerate(annotation["segments_info"]):
            with naming(f"{png}: image {image['id']}: segment {s.get('id', f'#{number}')}"):
                segments.append({
                    "id": int(s["id"]),
                    "category_id": int(s["category_id"]),
                    "label": contiguous[s["category_id"]],
                    "isthing": bool(categories[s["category_id"]]["isthing"]),
                    "iscrowd": bool(s.get("iscrowd", 0)),
                    "bbox": [float(v) for v in s["bbox"]],
                    "area": int(s["area"]),
                })
        return {
            "image": str(image_file) if isinstance(image_file, (str, Path)) else image_file,
            "panoptic": str(panoptic_file) if isinstance(panoptic_file, (str, Path)) else panoptic_file,
            "image_id": int(image["id"]),
            "height": int(image["height"]),
            "width": int(image["width"]),
            "segments": segments,
            "groundings": groundings,
        }


def labels_by_name(categories: list[dict], vocabulary: LabelVocabulary, where: str, reference: str,
                   check_isthing: bool = True) -> dict[int, int]:
    """{category id: label of the category of the same name in `vocabulary`} for COCO-panoptic `categories` (any
    ids, any order) of another split. `where` and `reference` name the two (files or splits) in the error raised
    when a category's name is missing from `vocabulary` or, with `check_isthing`, is a thing in one and stuff in
    the other: a model's labels are the training split's, so every other split is read in them by name."""
    label_of = {category.name: label for label, category in enumerate(vocabulary.categories)}
    missing, flipped, mapping = [], [], {}
    for category in categories:
        name = category["name"]
        if name not in label_of:
            missing.append(name)
            continue
        ours, theirs = bool(category["isthing"]), vocabulary.categories[label_of[name]].isthing
        if check_isthing and ours != theirs:
            flipped.append(f"{name!r} is {'a thing' if ours else 'stuff'} in {where} but "
                           f"{'a thing' if theirs else 'stuff'} in {reference}")
        mapping[int(category["id"])] = label_of[name]
    if missing or flipped:
        problems = ([f"{where} has categor{'y' if len(missing) == 1 else 'ies'} {missing} that {reference} lacks "
                     f"(it has {list(label_of)})"] if missing else []) + flipped
        raise ValueError(
            f"The categories of {where} do not fit those of {reference}: " + "; ".join(problems) + ". A model learns "
            f"the categories of {reference} and every other split is read in them by name (ids and order may "
            f"differ): give {where} the same names and thing/stuff flags, or add the missing categories to "
            f"{reference}."
        )
    return mapping


def load_coco_panoptic(
    image_dir: str | Path,
    panoptic_dir: str | Path,
    panoptic_json: str | Path,
    grounding_json: str | Path | None = None,
    vocabulary: LabelVocabulary | None = None,
    vocabulary_from: str | Path | None = None,
) -> datasets.Dataset:
    """A `datasets.Dataset` with one row per annotated image: `image` and `panoptic` (decoded when read),
    `image_id`, `height`, `width`, `segments` (per segment: `id`, `category_id`, contiguous `label`,
    `isthing`, `iscrowd`, `bbox` [x, y, w, h], `area`) and `groundings` (per grounding annotation:
    `segment_id` when given, `category_id`, `segmentation` as JSON text, `sentences`). The label vocabulary
    is in `dataset.info.description` as JSON (see `vocabulary_of`). Raises a `ValueError` listing every
    problem `validate_coco_panoptic` finds (a dataset that passed before with the same files is not checked again:
    `validate_coco_panoptic_once`).

    With `vocabulary` (the training split's, read from `vocabulary_from`, a name for errors), the segments are
    labelled by it, category by category name, as evaluation rows must be: the JSON's categories may come in
    another order or with other ids, but a category `vocabulary` lacks, or one that is a thing in one and stuff in
    the other, raises a `ValueError` naming both files (`labels_by_name`)."""
    _refuse(validate_coco_panoptic_once(image_dir, panoptic_dir, panoptic_json, grounding_json),
            image_dir, panoptic_dir, panoptic_json, grounding_json)
    data = json.loads(read_utf8(panoptic_json))
    if vocabulary is None:
        vocabulary, contiguous = LabelVocabulary.from_coco(data["categories"])
    else:
        contiguous = labels_by_name(data["categories"], vocabulary, str(panoptic_json),
                                    str(vocabulary_from or "the training categories"))
    categories = {c["id"]: c for c in data["categories"]}
    images = {image["id"]: image for image in data["images"]}

    def naming(where):
        return _naming(where, image_dir, panoptic_dir, panoptic_json, grounding_json)

    groundings: dict[int, list] = {}
    if grounding_json is not None:
        for index, annotation in enumerate(json.loads(read_utf8(grounding_json))["annotations"]):
            with naming(f"{grounding_json}: grounding annotation #{index}"):
                groundings.setdefault(annotation["image_id"], []).append(grounding_row(annotation))
    rows = []
    for annotation in sorted(data["annotations"], key=lambda a: a["image_id"]):
        image = images[annotation["image_id"]]
        rows.append(
            panoptic_row(image, annotation, Path(image_dir) / image["file_name"],
                         Path(panoptic_dir) / annotation["file_name"], contiguous, categories,
                         groundings.get(image["id"], []), naming=naming)
        )
    info = datasets.DatasetInfo(description=json.dumps({"categories": vocabulary.coco_categories()}),
                                features=PANOPTIC_FEATURES)
    columns = {name: [row[name] for row in rows] for name in PANOPTIC_FEATURES}  # from_list cannot take zero rows
    return datasets.Dataset.from_dict(columns, features=PANOPTIC_FEATURES, info=info)


def vocabulary_of(dataset) -> LabelVocabulary:
    """The label vocabulary a dataset from `load_coco_panoptic` was read with (or a `ShapesStream`'s)."""
    if isinstance(getattr(dataset, "vocabulary", None), LabelVocabulary):
        return dataset.vocabulary
    return LabelVocabulary.from_coco(json.loads(dataset.info.description)["categories"])[0]


def panoptic_targets(example: dict) -> dict[str, np.ndarray]:
    """Per-segment targets of one row: `masks` (N, H, W) bool, `labels` (N,) contiguous ids, `isthing`,
    `iscrowd` (N,) bool, `boxes` (N, 4) [x, y, w, h], in `segments` order."""
    ids = rgb2id(np.asarray(example["panoptic"].convert("RGB")))
    segments = example["segments"]
    return {
        "masks": np.stack([ids == s["id"] for s in segments]) if segments else np.zeros((0, *ids.shape), bool),
        "labels": np.array([s["label"] for s in segments], dtype=np.int64),
        "isthing": np.array([s["isthing"] for s in segments], dtype=bool),
        "iscrowd": np.array([s["iscrowd"] for s in segments], dtype=bool),
        "boxes": np.array([s["bbox"] for s in segments], dtype=np.float32).reshape(-1, 4),
    }


def grounding_targets(example: dict, segment_masks: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
    """The referring targets of one row: `masks` (G, H, W) bool and the `sentences` of each, one per grounding
    annotation. An annotation naming a `segment_id` of the image takes that segment's mask (`segment_masks`, in
    `segments` order); any other is decoded from its own `segmentation` (RLE or polygons, via pycocotools)."""
    height, width = segment_masks.shape[1:] if segment_masks.ndim == 3 else (example["height"], example["width"])
    index_of = {segment["id"]: index for index, segment in enumerate(example["segments"])}
    masks, sentences = [], []
    for grounding in example.get("groundings") or ():
        if grounding["segment_id"] in index_of:
            masks.append(segment_masks[index_of[grounding["segment_id"]]])
        else:
            masks.append(grounding_mask(grounding, height, width))
        sentences.append(list(grounding["sentences"]))
    return (np.stack(masks) if masks else np.zeros((0, height, width), bool)), sentences


def semantic_from_panoptic(ids: np.ndarray, labels: dict[int, int], ignore_index: int = 255) -> np.ndarray:
    """(H, W) label per pixel from a segment-id map and `labels` (segment id -> label; crowd segments left out):
    void, crowd and unlisted pixels become `ignore_index`."""
    if not labels:
        return np.full(ids.shape, ignore_index, dtype=np.int64)
    lookup_ids = np.array(sorted(labels), dtype=np.int64)
    lookup_labels = np.array([labels[i] for i in lookup_ids.tolist()], dtype=np.int64)
    position = np.searchsorted(lookup_ids, ids).clip(max=len(lookup_ids) - 1)
    return np.where(lookup_ids[position] == ids, lookup_labels[position], ignore_index)


def semantic_map(example: dict, ignore_index: int = 255) -> np.ndarray:
    """(H, W) contiguous label per pixel of a `load_coco_panoptic` row; void and crowd pixels are `ignore_index`."""
    ids = rgb2id(np.asarray(example["panoptic"].convert("RGB")))
    labels = {s["id"]: s["label"] for s in example["segments"] if not s["iscrowd"]}
    return semantic_from_panoptic(ids, labels, ignore_index)


def write_semantic_maps(
    panoptic_dir: str | Path, panoptic_json: str | Path, out_dir: str | Path, ignore_index: int = 255
) -> list[Path]:
    """Write one semantic PNG per panoptic annotation into `out_dir` (same relative paths): contiguous label ids
    in category-id order, void and crowd as `ignore_index`; 8-bit when the labels fit, 16-bit otherwise.
    Checks the annotation and the PNGs first (`validate_coco_panoptic` without the images) and raises a
    `ValueError` listing the problems, writing nothing, when there are any."""
    _refuse(validate_coco_panoptic(None, panoptic_dir, panoptic_json), None, panoptic_dir, panoptic_json, None)
    data = json.loads(read_utf8(panoptic_json))
    _, contiguous = LabelVocabulary.from_coco(data["categories"])
    if not len(contiguous) <= ignore_index <= 65535:
        raise ValueError(
            f"ignore_index {ignore_index} must lie in {len(contiguous)}..65535: labels are 0..{len(contiguous) - 1} "
            f"and the maps are 8- or 16-bit PNGs."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for annotation in tqdm(data["annotations"], desc="semantic maps", disable=len(data["annotations"]) < 100):
        ids = rgb2id(np.asarray(PIL.Image.open(Path(panoptic_dir) / annotation["file_name"]).convert("RGB")))
        labels = {s["id"]: contiguous[s["category_id"]] for s in annotation["segments_info"] if not s.get("iscrowd")}
        semantic = semantic_from_panoptic(ids, labels, ignore_index)
        dtype = np.uint8 if max(ignore_index, len(contiguous)) <= 255 else np.uint16
        # the annotation's relative path: "city1/a.png" and "city2/a.png" must not overwrite each other
        path = out_dir / Path(annotation["file_name"]).with_suffix(".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        PIL.Image.fromarray(semantic.astype(dtype)).save(path)
        written.append(path)
    return written


def grounding_mask(grounding: dict, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of a grounding row (its `segmentation`, JSON text of polygons or RLE)."""
    return segmentation_mask(json.loads(grounding["segmentation"]), height, width)


__all__ = [
    "grounding_mask",
    "load_coco_panoptic",
    "panoptic_targets",
    "semantic_from_panoptic",
    "semantic_map",
    "validate_coco_panoptic",
    "write_semantic_maps",
    "vocabulary_of",
]

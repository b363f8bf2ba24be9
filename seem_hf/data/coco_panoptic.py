"""Reading COCO-panoptic datasets with grounding sentences, and checking them.

A dataset is an image folder, a folder of panoptic PNGs (segment id = R + 256 G + 256^2 B, 0 = void), the
panoptic JSON (`images`, `annotations` with `segments_info`, `categories` with id, name, isthing, color) and,
optionally, a grounding JSON of COCO-style annotations (`image_id`, polygon or RLE `segmentation`,
`sentences[].raw`). `validate_coco_panoptic` lists every problem at once, each naming the file and the
segment; `load_coco_panoptic` refuses a dataset with problems and otherwise returns a `datasets.Dataset`,
one row per image, whose images and PNGs are decoded only when read.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
from pycocotools import mask as mask_utils
from tqdm.auto import tqdm

from seem_hf.data.categories import LabelVocabulary
from seem_hf.data.panoptic_format import rgb2id

_CATEGORY_KEYS = ("id", "name", "isthing", "color")


def _read_json(path: Path, problems: list[str]) -> dict | None:
    if not path.is_file():
        problems.append(f"{path}: file is missing")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        problems.append(f"{path}: not valid JSON ({error})")
        return None
    missing = [key for key in ("images", "annotations", "categories") if key not in data]
    if missing:
        problems.append(f"{path}: missing top-level keys {missing}")
        return None
    return data


def _open_image(path: Path, problems: list[str]) -> PIL.Image.Image | None:
    if not path.is_file():
        problems.append(f"{path}: file is missing")
        return None
    try:
        image = PIL.Image.open(path)
        image.load()
        return image
    except (OSError, SyntaxError) as error:
        problems.append(f"{path}: cannot be read as an image ({error})")
        return None


def _check_categories(path: Path, categories: list, problems: list[str]) -> dict[int, dict]:
    known = {}
    for index, category in enumerate(categories):
        missing = [key for key in _CATEGORY_KEYS if key not in category]
        if missing:
            problems.append(f"{path}: category #{index} lacks {missing}")
            continue
        if category["id"] in known:
            problems.append(f"{path}: category id {category['id']} appears twice")
        known[category["id"]] = category
    return known


def _check_grounding(path: Path, images: dict, problems: list[str]) -> None:
    data = _read_json(path, problems)
    if data is None:
        return
    for annotation in data["annotations"]:
        label = f"{path}: grounding annotation {annotation.get('id', '?')}"
        image = images.get(annotation.get("image_id"))
        if image is None:
            problems.append(f"{label}: image_id {annotation.get('image_id')} is not in the panoptic JSON")
            continue
        segmentation = annotation.get("segmentation")
        if isinstance(segmentation, list):
            if not segmentation:
                problems.append(f"{label}: empty polygon list")
            for polygon in segmentation:
                if len(polygon) < 6 or len(polygon) % 2:
                    problems.append(
                        f"{label}: polygon with {len(polygon)} coordinates; a polygon needs at least 3 (x, y) points"
                    )
        elif isinstance(segmentation, dict):
            if list(segmentation.get("size", [])) != [image["height"], image["width"]]:
                problems.append(
                    f"{label}: RLE size {segmentation.get('size')} differs from the image's "
                    f"{[image['height'], image['width']]}"
                )
        else:
            problems.append(f"{label}: segmentation must be a polygon list or an RLE dict")
        sentences = annotation.get("sentences")
        if not sentences or not all(isinstance(s, dict) and isinstance(s.get("raw"), str) for s in sentences):
            problems.append(f"{label}: needs a non-empty `sentences` list of {{'raw': text}}")


def validate_coco_panoptic(
    image_dir: str | Path,
    panoptic_dir: str | Path,
    panoptic_json: str | Path,
    grounding_json: str | Path | None = None,
) -> list[str]:
    """Every problem of a COCO-panoptic dataset, each a line naming the file and, where it applies, the segment:
    missing or corrupt files, images and PNGs of different sizes, PNG ids missing from `segments_info`,
    `segments_info` entries with no pixel, unknown category ids, areas that disagree with the PNG, images
    without annotation, and grounding annotations with bad polygons, masks or sentences. Empty when the
    dataset is sound."""
    image_dir, panoptic_dir, panoptic_json = Path(image_dir), Path(panoptic_dir), Path(panoptic_json)
    problems: list[str] = []
    data = _read_json(panoptic_json, problems)
    if data is None:
        return problems
    categories = _check_categories(panoptic_json, data["categories"], problems)
    images = {image["id"]: image for image in data["images"]}
    annotated = set()
    annotations = data["annotations"]
    for annotation in tqdm(annotations, desc=f"checking {panoptic_json.name}", disable=len(annotations) < 100):
        png_path = panoptic_dir / annotation.get("file_name", "<no file_name>")
        image = images.get(annotation.get("image_id"))
        if image is None:
            problems.append(f"{png_path}: image_id {annotation.get('image_id')} is not among the JSON's images")
            continue
        annotated.add(image["id"])
        segments = annotation.get("segments_info", [])
        for segment_id, count in Counter(s["id"] for s in segments).items():
            if count > 1:
                problems.append(f"{png_path}: segment {segment_id}: listed {count} times in segments_info")
        for segment in segments:
            if segment.get("category_id") not in categories:
                problems.append(f"{png_path}: segment {segment['id']}: unknown category_id {segment.get('category_id')}")
        png = _open_image(png_path, problems)
        picture = _open_image(image_dir / image["file_name"], problems)
        if png is None:
            continue
        if png.mode != "RGB":
            problems.append(f"{png_path}: panoptic PNG must be RGB, got mode {png.mode}")
            continue
        if picture is not None and picture.size != png.size:
            problems.append(
                f"{png_path}: size {png.size[::-1]} (H, W) differs from its image {image['file_name']} "
                f"{picture.size[::-1]}"
            )
        ids, counts = np.unique(rgb2id(np.asarray(png)), return_counts=True)
        pixels = {int(i): int(c) for i, c in zip(ids, counts) if i != 0}
        listed = {s["id"]: s for s in segments}
        for segment_id in sorted(set(pixels) - set(listed)):
            problems.append(
                f"{png_path}: segment {segment_id}: {pixels[segment_id]} pixels in the PNG but not in segments_info"
            )
        for segment_id in sorted(set(listed) - set(pixels)):
            problems.append(f"{png_path}: segment {segment_id}: in segments_info but has no pixel in the PNG")
        for segment_id in sorted(set(listed) & set(pixels)):
            area = listed[segment_id].get("area")
            if area is not None and area != pixels[segment_id]:
                problems.append(
                    f"{png_path}: segment {segment_id}: area {area} in the JSON, {pixels[segment_id]} pixels in the PNG"
                )
    for image_id in sorted(set(images) - annotated):
        problems.append(f"{image_dir / images[image_id]['file_name']}: image {image_id} has no panoptic annotation")
    if grounding_json is not None:
        _check_grounding(Path(grounding_json), images, problems)
    return problems


def load_coco_panoptic(
    image_dir: str | Path,
    panoptic_dir: str | Path,
    panoptic_json: str | Path,
    grounding_json: str | Path | None = None,
) -> datasets.Dataset:
    """A `datasets.Dataset` with one row per annotated image: `image` and `panoptic` (decoded when read),
    `image_id`, `height`, `width`, `segments` (per segment: `id`, `category_id`, contiguous `label`,
    `isthing`, `iscrowd`, `bbox` [x, y, w, h], `area`) and `groundings` (per grounding annotation:
    `segment_id` when given, `category_id`, `segmentation` as JSON text, `sentences`). The label vocabulary
    is in `dataset.info.description` as JSON (see `vocabulary_of`). Raises a `ValueError` listing every
    problem `validate_coco_panoptic` finds."""
    problems = validate_coco_panoptic(image_dir, panoptic_dir, panoptic_json, grounding_json)
    if problems:
        shown = "\n".join(problems[:100])
        more = f"\n... and {len(problems) - 100} more" if len(problems) > 100 else ""
        raise ValueError(f"{len(problems)} problems in the dataset of {panoptic_json}:\n{shown}{more}")
    data = json.loads(Path(panoptic_json).read_text(encoding="utf-8"))
    vocabulary, contiguous = LabelVocabulary.from_coco(data["categories"])
    isthing = {c["id"]: bool(c["isthing"]) for c in data["categories"]}
    images = {image["id"]: image for image in data["images"]}
    groundings: dict[int, list] = {}
    if grounding_json is not None:
        for annotation in json.loads(Path(grounding_json).read_text(encoding="utf-8"))["annotations"]:
            groundings.setdefault(annotation["image_id"], []).append(
                {
                    "segment_id": int(annotation.get("segment_id", -1)),
                    "category_id": int(annotation.get("category_id", -1)),
                    "segmentation": json.dumps(annotation["segmentation"]),
                    "sentences": [sentence["raw"] for sentence in annotation["sentences"]],
                }
            )
    rows = []
    for annotation in sorted(data["annotations"], key=lambda a: a["image_id"]):
        image = images[annotation["image_id"]]
        rows.append(
            {
                "image": str(Path(image_dir) / image["file_name"]),
                "panoptic": str(Path(panoptic_dir) / annotation["file_name"]),
                "image_id": int(image["id"]),
                "height": int(image["height"]),
                "width": int(image["width"]),
                "segments": [
                    {
                        "id": int(s["id"]),
                        "category_id": int(s["category_id"]),
                        "label": contiguous[s["category_id"]],
                        "isthing": isthing[s["category_id"]],
                        "iscrowd": bool(s.get("iscrowd", 0)),
                        "bbox": [float(v) for v in s["bbox"]],
                        "area": int(s["area"]),
                    }
                    for s in annotation["segments_info"]
                ],
                "groundings": groundings.get(image["id"], []),
            }
        )
    features = datasets.Features(
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
    info = datasets.DatasetInfo(description=json.dumps({"categories": vocabulary.coco_categories()}), features=features)
    return datasets.Dataset.from_list(rows, features=features, info=info)


def vocabulary_of(dataset: datasets.Dataset) -> LabelVocabulary:
    """The label vocabulary a dataset from `load_coco_panoptic` was read with."""
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
    """Write one semantic PNG per panoptic annotation into `out_dir` (same file names): contiguous label ids
    in category-id order, void and crowd as `ignore_index`; 8-bit when the labels fit, 16-bit otherwise."""
    data = json.loads(Path(panoptic_json).read_text(encoding="utf-8"))
    _, contiguous = LabelVocabulary.from_coco(data["categories"])
    if len(contiguous) > 65535 or (len(contiguous) >= ignore_index and ignore_index <= 255):
        raise ValueError(f"{len(contiguous)} labels do not fit below ignore_index {ignore_index}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for annotation in tqdm(data["annotations"], desc="semantic maps", disable=len(data["annotations"]) < 100):
        ids = rgb2id(np.asarray(PIL.Image.open(Path(panoptic_dir) / annotation["file_name"]).convert("RGB")))
        labels = {s["id"]: contiguous[s["category_id"]] for s in annotation["segments_info"] if not s.get("iscrowd")}
        semantic = semantic_from_panoptic(ids, labels, ignore_index)
        dtype = np.uint8 if max(ignore_index, len(contiguous)) <= 255 else np.uint16
        path = out_dir / Path(annotation["file_name"]).with_suffix(".png").name
        PIL.Image.fromarray(semantic.astype(dtype)).save(path)
        written.append(path)
    return written


def grounding_mask(grounding: dict, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of a grounding annotation (polygons or RLE)."""
    segmentation = json.loads(grounding["segmentation"])
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation, counts=segmentation["counts"].encode("ascii"))
    return mask_utils.decode(rle).astype(bool)


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

"""Training from `datasets` datasets as users hold them: a Hub name or a local folder (`save_to_disk`'s, or files
`load_dataset` reads), in one of three layouts recognised from the columns.

- `panoptic`: the package's own rows (`seem_hf.data.load_coco_panoptic`, `seem_hf.data.PANOPTIC_FEATURES`):
  `image`, `panoptic` (a COCO-panoptic PNG), `segments` and, optionally, `groundings` (referring sentences).
- `semantic`: `image` + `label`, a map of one class id per pixel, as transformers' `run_semantic_segmentation.py`
  reads (255 is unlabelled; `--do_reduce_labels` makes 0 unlabelled and shifts the others down by one).
- `instance`: `image` + `annotation`, 3 channels (semantic class id, instance id, zeros) and, optionally,
  `semantic_class_to_id` (name -> class id), as transformers' `run_instance_segmentation.py` reads. Each
  (class, instance) pair is one segment; instance id 0 marks pixels of no instance, which form one segment per
  class (a stuff region). Class ids absent from the label names and 255 are unlabelled.

Every layout becomes the rows `load_coco_panoptic` gives (`PanopticRows`), so that the augmentation, the collators
and the three examples take it unchanged. Semantic maps become stuff-only panoptic rows: each class present in an
image is one segment, so SEEM and DETR-panoptic learn classes and masks but no instances.

Label names come from the training split. Panoptic layout, in this order: the vocabulary `load_coco_panoptic` stores
in the dataset's description (kept by `save_to_disk`), the `ClassLabel` of `segments.label` (`for_the_hub` casts it
before `push_to_hub`, whose cards do not keep the description), or an `id2label.json` ({"0": "name", ...}) in the
dataset's folder or Hub repository, as transformers' examples read it. Semantic and instance layouts: the
`semantic_class_to_id` column (the union of every row's), else `id2label.json`, else a `ClassLabel` of the
annotation column itself (a `ClassLabel` of another column, such as a scene category, names no pixel). The run's
first line says which. The evaluation split is read in the training split's labels by name (`labels_by_name`): a
class it has that the training split lacks is refused before training.

Images and annotations may be `datasets.Image` features, undeclared `{"bytes", "path"}` structs or file paths
(`read_image_files`). A local folder laid out as ADE20K's (`images/training/*.jpg` beside
`annotations/training/*.png`) is read as splits of image + label pairs (`paired_image_folders`).

The layout is decided from the data where the columns leave it open: a single-channel annotation is a semantic
map, three channels whose third is zero are transformers' instance annotation; the column's name decides only
what the first row cannot (and `layout=`, `--dataset_layout`, forces one).
"""

from __future__ import annotations

import colorsys
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import torch

from seem_hf.data.categories import CategorySpec, LabelVocabulary
from seem_hf.data.panoptic_format import id2rgb, rgb2id
from seem_hf.data.transforms import keep_stored_images, open_stored_image
from seem_hf.data.validation import plural, read_utf8
from seem_hf.image_utils import image_size

IGNORE_INDEX = 255
"""Unlabelled pixels of the semantic and instance layouts."""

LAYOUTS = {
    "panoptic": "the package's own panoptic rows (seem_hf.data.load_coco_panoptic): image, panoptic, segments "
                "[, groundings]",
    "semantic": "semantic maps, as transformers' run_semantic_segmentation.py: image + label (a class id per pixel)",
    "instance": "3-channel instance annotations, as transformers' run_instance_segmentation.py: image + annotation "
                "(semantic class, instance id, zeros) [+ semantic_class_to_id]",
}
"""The layouts `detect_layout` recognises, with what each holds."""

_DEFAULT_ANNOTATION = {"panoptic": "panoptic", "semantic": "label", "instance": "annotation"}


@dataclass(frozen=True)
class DatasetLayout:
    """A recognised layout (`name`, one of `LAYOUTS`) and the columns it reads."""

    name: str
    image_column: str
    annotation_column: str

    def describe(self) -> str:
        """One line for the run's log: the layout, its columns and what the panoptic models learn from it."""
        text = f"layout '{self.name}' ({LAYOUTS[self.name]}; columns {self.image_column!r}, {self.annotation_column!r})"
        if self.name == "semantic":
            text += (". SEEM and DETR-panoptic train on it as stuff-only panoptic: every class present in an image is "
                     "one segment, so they learn classes and masks but no instances")
        return text


def _layout_from_data(column: str, annotation, columns: list[str]) -> str:
    """`semantic` or `instance` for annotation column `column` from its first value `annotation` (None: unknown):
    one channel is a semantic map; three channels whose third is zero and whose first two differ somewhere are
    transformers' instance annotation (class, instance, zeros); equal non-zero channels are a grey map saved as
    colour. What the data leaves open (no value, or an all-zero map) goes by the name: `annotation` or a
    `semantic_class_to_id` column means instance."""
    by_name = "instance" if column == "annotation" or "semantic_class_to_id" in columns else "semantic"
    if annotation is None:
        return by_name
    annotation = open_stored_image(annotation)
    if isinstance(annotation, PIL.Image.Image) and annotation.mode in ("1", "L", "P", "I", "I;16", "F"):
        return "semantic"
    values = np.asarray(annotation)
    if getattr(annotation, "mode", None) in ("LA", "La", "PA", "RGBA", "RGBa") and values.ndim == 3:
        values = values[..., :-1]  # an alpha channel holds no id (PanopticRows refuses a transparent one)
    if values.ndim == 2 or (values.ndim == 3 and values.shape[-1] == 1):
        return "semantic"
    if values.ndim != 3 or not values.any():
        return by_name
    grey = bool((values == values[..., :1]).all())
    if grey:
        return "semantic"
    if values.shape[-1] == 3 and not values[..., 2].any():
        return "instance"
    return by_name


def detect_layout(column_names, image_column: str = "image", annotation_column: str | None = None,
                  first_annotation=None, layout: str | None = None) -> DatasetLayout:
    """The layout of a dataset with these columns. `annotation_column` names the annotation when it is not the
    layout's usual one (`panoptic`, `label` or `annotation`). Between the semantic and instance layouts the data
    decides: `first_annotation` (the first row's annotation, when known) is read as `_layout_from_data` says, the
    column's name breaking ties. `layout` (one of `LAYOUTS`, `--dataset_layout`) forces one. Raises a `ValueError`
    listing the columns found and the layouts accepted when none fits."""
    columns = list(column_names)
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"--dataset_layout {layout!r} is none of {sorted(LAYOUTS)}.")
    if image_column in columns:
        panoptic_column = annotation_column or "panoptic"
        if layout in (None, "panoptic") and "segments" in columns and panoptic_column in columns:
            return DatasetLayout("panoptic", image_column, panoptic_column)
        if layout != "panoptic":
            usual = [_DEFAULT_ANNOTATION[layout]] if layout else []
            candidates = [annotation_column] if annotation_column is not None else [*usual, "annotation", "label"]
            column = next((candidate for candidate in candidates if candidate in columns), None)
            if column is not None:
                return DatasetLayout(layout or _layout_from_data(column, first_annotation, columns), image_column,
                                     column)
    accepted = "\n".join(f"  {name}: {text}" for name, text in LAYOUTS.items())
    raise ValueError(
        f"The dataset's columns {columns} fit none of the layouts accepted (looked for image column {image_column!r}"
        f"{'' if annotation_column is None else f' and annotation column {annotation_column!r}'}"
        f"{'' if layout is None else f' in layout {layout!r}'}):\n{accepted}\n"
        "Name other columns with --image_column and --annotation_column, or convert the data first "
        "(python -m seem_hf.data.convert)."
    )


_IMAGE_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Texts ending so (in any case) in an image or annotation column are image files (`read_image_files`)."""


def _is_file_struct(feature) -> bool:
    """Whether a feature is the `{"bytes", "path"}` struct that `datasets.Image` stores, left undeclared."""
    return (isinstance(feature, dict) and set(feature) == {"bytes", "path"}
            and all(isinstance(part, datasets.Value) for part in feature.values())
            and feature["bytes"].dtype in ("binary", "large_binary")
            and feature["path"].dtype in ("string", "large_string", "null"))


def read_image_files(dataset, image_column: str = "image", annotation_column: str | None = None,
                     folder: Path | None = None):
    """`dataset` (a `Dataset` or `IterableDataset`) with its images held as files cast to `datasets.Image`, as
    `load_dataset` gives them when the features say so: `{"bytes", "path"}` structs in any column (parquet written by
    pandas or pyarrow, without `datasets`' features), and file paths (texts ending in an image suffix, as a CSV or
    JSON of paths holds) in the image column and the annotation columns the layouts read. Relative paths not found
    from the working directory are read against the dataset's `folder` (paths relative to the CSV, as imagefolder's
    metadata files give them) when the first one is there. Anything else comes back unchanged (a column of class
    ids or names is then refused as no map per pixel)."""
    features = dataset.features
    if features is None:
        return dataset
    for column, feature in features.items():
        if _is_file_struct(feature):
            dataset = dataset.cast_column(column, datasets.Image())
    candidates = dict.fromkeys(c for c in (image_column, annotation_column, *_DEFAULT_ANNOTATION.values()) if c)
    texts = [column for column in candidates if isinstance(features.get(column), datasets.Value)
             and features[column].dtype in ("string", "large_string")]
    if not texts:
        return dataset
    if isinstance(dataset, datasets.Dataset):
        first = dataset.select_columns(texts)[0] if len(dataset) else {}
    else:
        first = next(iter(dataset.select_columns(texts)), {})
    for column in texts:
        value = first.get(column)
        if not (isinstance(value, str) and value.strip().lower().endswith(_IMAGE_FILE_SUFFIXES)):
            continue
        path = Path(value)
        root = None
        if not path.exists():
            root = _folder_holding(path, folder)
            if root is None:
                looked = ("" if path.is_absolute() or folder is None else
                          f", nor under {folder} or the folders in it that hold a metadata file")
                raise ValueError(
                    f"column {column!r} names image files, and its first, {value!r}, is not there (looked from the "
                    f"working directory {Path.cwd()}{looked}). Give paths that exist: absolute, or relative to the "
                    "dataset's folder or to the metadata file that lists them (as datasets' imagefolder reads "
                    "`file_name` and `<column>_file_name`).")
        if root is not None:
            def in_folder(paths, root=root.resolve()):
                return [None if p is None else {"path": str(root / p), "bytes": None} for p in paths]

            # A table's map writes no cache file here. A stream's map yields its values as returned (undecoded
            # files, which PanopticRows opens) and forgets its features unless told them.
            features = dataset.features.copy()
            features[column] = datasets.Image()
            arguments = (dict(keep_in_memory=True) if isinstance(dataset, datasets.Dataset)
                         else dict(features=features))
            dataset = dataset.map(lambda paths, column=column: {column: in_folder(paths)}, input_columns=[column],
                                  batched=True, **arguments)
        dataset = dataset.cast_column(column, datasets.Image())
    return dataset


_METADATA_FILES = ("metadata.csv", "metadata.jsonl", "metadata.json", "metadata.parquet")
"""The files datasets' imagefolder reads its extra columns from; their paths are relative to their own folder."""


def _folder_holding(path: Path, folder: Path | None) -> Path | None:
    """The folder a relative image `path` of dataset `folder` is read against: `folder` itself (a CSV of paths
    beside its files), else the first of its subfolders (three levels down, hidden ones left out) that holds a
    metadata file or a CSV, JSON or parquet file (imagefolder's metadata, a split's table) and `path` under it.
    None when no folder holds it (or `path` is absolute)."""
    if folder is None or path.is_absolute():
        return None
    folder = Path(folder)
    if (folder / path).exists():
        return folder
    for depth in range(1, 4):
        for candidate in sorted(folder.glob("/".join(["*"] * depth))):
            if (candidate.is_dir() and not any(part.startswith(".") for part in candidate.relative_to(folder).parts)
                    and any(child.suffix.lower() in (".csv", ".jsonl", ".json", ".parquet") or child.name in
                            _METADATA_FILES for child in candidate.iterdir() if child.is_file())
                    and (candidate / path).exists()):
                return candidate
    return None


def _imagefolder_hint(dataset, folder: Path | None) -> str:
    """What to tell a user whose local folder `load_dataset` read as an image classification dataset (the
    imagefolder builder without metadata: every picture, maps included, is an `image`, and the folders' names are
    a `label` ClassLabel); empty otherwise."""
    info = getattr(dataset, "info", None)
    if folder is None or getattr(info, "builder_name", None) != "imagefolder":
        return ""
    if any(next(Path(folder).glob(f"**/{name}"), None) is not None for name in _METADATA_FILES):
        return ""
    return (f" load_dataset read {folder} as an image folder without a metadata file: every picture in it, label "
            "maps included, became a row of column 'image' (and the folders' names a ClassLabel 'label'). Pair "
            "each image with its map in a metadata.csv in each split folder (`file_name,label_file_name` then one "
            "line per image, e.g. `images/1.jpg,masks/1.png`), as datasets' imagefolder reads it, or lay them out as "
            "ADE20K does (images/training/1.jpg beside annotations/training/1.png), keep id2label.json in the "
            "dataset's folder, or save the pairs with save_to_disk (docs/your_data.md).")


_LABEL_FOLDERS = ("annotations", "labels", "masks")
"""Folders of label maps beside `images/` that `paired_image_folders` reads (ADEChallengeData2016's `annotations`)."""


def _split_name(folder_name: str) -> str | None:
    """The split a folder of this name holds, as `load_dataset` names it (`training` is `train`, `val`
    `validation`); None for a name that is no split's."""
    from datasets.data_files import SPLIT_KEYWORDS

    return next((str(split) for split, keywords in SPLIT_KEYWORDS.items() if folder_name.lower() in keywords), None)


def paired_image_folders(folder: Path, max_listed: int = 20) -> datasets.DatasetDict | None:
    """The splits of a folder laid out as ADEChallengeData2016 and many semantic segmentation datasets on disk are:
    `images/<split>/<name>.jpg` beside `annotations/<split>/<name>.png` (or `labels/`, `masks/`; any image suffix),
    each image paired with the label map of the same path below its split folder, as columns `image` and `label`
    (files, read when a row is). Split folders are named as `load_dataset` names them (`training` is split `train`,
    `val` is `validation`, another name is a split of that name); without split folders the pairs are one `train`
    split. An image split folder without its label folder (a test set) is no split. None when the folder is not so
    laid out (no `images/` beside a label folder) or holds an imagefolder metadata file, which `load_dataset`
    reads. Raises a `ValueError` listing, by file, the images without a label map, the label maps without an image
    and files that share a name."""
    from seem_hf.data.convert import _files_by_stem

    folder = Path(folder)
    images = folder / "images"
    labels = [folder / name for name in _LABEL_FOLDERS if (folder / name).is_dir()]
    if not images.is_dir() or not labels or any(next(folder.glob(f"**/{name}"), None) is not None
                                                for name in _METADATA_FILES):
        return None
    if len(labels) > 1:
        raise ValueError(f"{folder}: {' and '.join(f'{label.name}/' for label in labels)} both sit beside images/; "
                         "keep the folder of label maps to pair with the images, and move the other out.")
    labels = labels[0]
    named = sorted({child.name for root in (images, labels) for child in root.iterdir()
                    if child.is_dir() and not child.name.startswith(".")})
    if any(_split_name(name) for name in named):
        loose = [path for root in (images, labels) for path in sorted(root.iterdir())
                 if path.is_file() and path.suffix.lower() in _IMAGE_FILE_SUFFIXES]
        if loose:
            raise ValueError(f"{folder}: images/ and {labels.name}/ hold split folders ({', '.join(named)}) and "
                             f"{plural(len(loose), 'image file')} beside them (such as "
                             f"{loose[0].relative_to(folder)}), which would be in no split: move them into a split "
                             "folder.")
        pairs = [(_split_name(name) or name, images / name, labels / name) for name in named
                 if (labels / name).is_dir()]
    else:
        pairs = [("train", images, labels)]
    splits: dict[str, datasets.Dataset] = {}
    problems = []
    for split, image_dir, label_dir in pairs:
        if split in splits:
            problems.append(f"{image_dir.relative_to(folder)}: a second folder of split {split!r}; merge the two")
            continue
        image_files = _files_by_stem(image_dir, _IMAGE_FILE_SUFFIXES) if image_dir.is_dir() else {}
        label_files = _files_by_stem(label_dir, _IMAGE_FILE_SUFFIXES)
        problems += [" and ".join(str(path.relative_to(folder)) for path in paths) + " share one name: keep one"
                     for paths in (*image_files.values(), *label_files.values()) if len(paths) > 1]
        for stem in sorted(set(image_files) ^ set(label_files)):
            found, other, lacking = ((image_files, label_dir, "label map") if stem in image_files else
                                     (label_files, image_dir, "image"))
            problems.append(f"{found[stem][0].relative_to(folder)} has no {lacking} "
                            f"({(other / stem).relative_to(folder)}.*)")
        stems = sorted(set(image_files) & set(label_files))
        splits[split] = datasets.Dataset.from_dict(
            {"image": [str(image_files[stem][0].absolute()) for stem in stems],
             "label": [str(label_files[stem][0].absolute()) for stem in stems]},
            features=datasets.Features({"image": datasets.Image(), "label": datasets.Image()}),
        )
    if problems:
        listed = "\n".join(f"  {problem}" for problem in problems[:max_listed])
        more = f"\n  ... and {len(problems) - max_listed} more" if len(problems) > max_listed else ""
        raise ValueError(
            f"{folder}: images/ and {labels.name}/ pair each image with the label map of the same name in the same "
            f"split folder; {plural(len(problems), 'problem')}:\n{listed}{more}\nAdd the missing files, or move "
            "the unpaired ones out of the folder."
        )
    return datasets.DatasetDict(splits)


def _first_annotation(dataset: datasets.Dataset, column_names: list[str], annotation_column: str | None):
    """The first row's value of the column `detect_layout` would read as a semantic or instance annotation (one
    image decoded), or None when there is no such column or no row."""
    candidates = [annotation_column] if annotation_column is not None else ["annotation", "label"]
    column = next((candidate for candidate in candidates if candidate in column_names), None)
    if column is None or len(dataset) == 0 or "segments" in column_names:
        return None
    return dataset.select_columns([column])[0][column]


def load_dataset_dict(name: str, config_name: str | None = None) -> tuple[datasets.DatasetDict, Path | None]:
    """The dataset `name` as a `DatasetDict`, and its local folder (None for a Hub dataset): a folder written by
    `save_to_disk` (`load_from_disk`), another local folder (`load_dataset`: parquet, image folders, ...), or a Hub
    dataset (`load_dataset(name, config_name)`)."""
    path = Path(name).expanduser()
    if path.exists():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            loaded = datasets.load_from_disk(str(path))
        else:
            loaded = paired_image_folders(path) if path.is_dir() else None
            if loaded is None:
                loaded = datasets.load_dataset(str(path), config_name)
        folder = path
    else:
        try:
            loaded = datasets.load_dataset(name, config_name)
        except Exception as error:  # offline, a typo, a private repository: say which and what to check
            raise ValueError(
                f"--dataset_name {name!r} is no local folder, and the Hub did not give it ({type(error).__name__}: "
                f"{error}). Check the path, or the Hub name and your connection (HF_HUB_OFFLINE, `hf auth login`)."
            ) from error
        folder = None
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    return loaded, folder


def _palette(index: int) -> tuple[int, int, int]:
    """A distinct display colour per label (golden-ratio hues), for label sets that carry none."""
    red, green, blue = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.65, 0.9)
    return round(red * 255), round(green * 255), round(blue * 255)


def _id2label_path(folder: Path | None, name: str) -> Path | None:
    """The `id2label.json` of the dataset's folder or Hub repository (downloaded); None when there is none."""
    if folder is not None:
        path = folder / "id2label.json"
        return path if path.exists() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(name, "id2label.json", repo_type="dataset"))
    except (OSError, EntryNotFoundError):  # no such file, repository or connection: no names from there
        return None


def _id2label_file(folder: Path | None, name: str) -> tuple[Path | None, dict[int, str] | None]:
    """(path, {int: name}) of the `id2label.json` of the dataset's folder or Hub repository; (None, None) when there
    is none."""
    path = _id2label_path(folder, name)
    return (None, None) if path is None else (path, read_id2label(path))


def _check_ignore_index(id2class: dict[int, str], source: str, where: str, do_reduce_labels: bool) -> None:
    """Refuse label names of the semantic and instance layouts that give a class `IGNORE_INDEX`: the maps' 255 marks
    unlabelled pixels (as transformers' examples read them), so naming it would either train every unlabelled pixel
    as that class or leave the class without a pixel; which one the user meant cannot be told."""
    if IGNORE_INDEX not in id2class:
        return
    label = id2class[IGNORE_INDEX]
    shifted = " (after --do_reduce_labels' shift, which keeps 255 unlabelled)" if do_reduce_labels else ""
    raise ValueError(
        (f"{where}: " if where else "")
        + f"the label names ({source}) name id {IGNORE_INDEX} {label!r}, but {IGNORE_INDEX} marks unlabelled "
        f"pixels in the semantic and instance layouts{shifted}, as transformers' examples read them: its pixels "
        f"cannot be both. If {IGNORE_INDEX} is unlabelled, remove {label!r} from the label names; if {label!r} is a "
        f"class, renumber its pixels and its id below {IGNORE_INDEX} (the maps and the names alike)."
    )


_ID2LABEL_FORM = '{"0": "name", "1": "name", ...} (class id -> name, as transformers\' segmentation examples read it)'


def read_id2label(path: str | Path) -> dict[int, str]:
    """An `id2label.json` as {class id: name}. Raises a `ValueError` naming the file and what is wrong with it: not
    UTF-8 or not JSON, not an object of `_ID2LABEL_FORM`, keys that are no non-negative integers (a label2id file
    {"name": 0} is named as one), names that are not non-empty texts, or one name for several ids."""
    try:
        data = json.loads(read_utf8(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}; "
                         f"id2label.json holds {_ID2LABEL_FORM}.") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: must hold a non-empty JSON object {_ID2LABEL_FORM}, got "
                         f"{json.dumps(data)[:60]}.")
    keys = [key for key in data if not (key.strip().isdigit() and key.strip().isascii())]
    if keys and len(keys) == len(data) and all(isinstance(value, int) for value in data.values()):
        raise ValueError(f"{path}: holds names -> ids ({json.dumps(dict(list(data.items())[:2]))[:-1]}, ...}}, a "
                         f"label2id), but id2label.json maps ids to names: write {_ID2LABEL_FORM}.")
    problems = [f"key {key!r} is no class id (a non-negative integer)" for key in keys] + [
        f"id {key}: name {json.dumps(value)[:40]} is no non-empty text" for key, value in data.items()
        if not (isinstance(value, str) and value.strip())]
    ids_of: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, str):
            ids_of.setdefault(value, []).append(key)
    problems += [f"name {value!r} has ids {ids} (each class needs its own name)" for value, ids in ids_of.items()
                 if len(ids) > 1]
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems) + f". id2label.json holds {_ID2LABEL_FORM}.")
    return {int(key): value for key, value in data.items()}


_BACKGROUND_NAMES = {"background", "bg", "_background_", "__background__", "unlabeled", "unlabelled", "void",
                     "ignore", "none"}
"""Names a label file gives the background class: with `--do_reduce_labels` that class is dropped before the names
are read, so a name list that starts with one is counted from the stored ids, one off."""


def _check_reduced_names(id2class: dict[int, str], source: str, where: str) -> None:
    """Refuse label names for `--do_reduce_labels` that name id 0 as the background: names are read after the
    shift (id 0 = the class stored as 1, as transformers' examples read them), so each class would take its
    neighbour's name."""
    first = id2class.get(0)
    if first is not None and first.strip().lower() in _BACKGROUND_NAMES:
        raise ValueError(
            f"{where}: --do_reduce_labels drops stored class 0 (the background) and reads class k as k - 1, so the "
            f"label names ({source}) are those of the shifted ids, as transformers' examples read them: 0 is the "
            f"class stored as 1. They name 0 {first!r}: every class would take the name of the one stored below it. "
            f"Remove {first!r} and number the other names from 0, or drop --do_reduce_labels (0 is then a class, "
            f"named {first!r})."
        )


def _segment_feature(features: datasets.Features) -> dict:
    feature = features["segments"]
    return feature[0] if isinstance(feature, list) else feature.feature


_SEGMENT_FIELDS = ("id", "label", "isthing")
"""Fields each segment of a panoptic-layout row must carry (`iscrowd` defaults to false; `bbox` and `area` are read
from the PNG when left out)."""


def _check_segment_fields(features: datasets.Features, where: str) -> None:
    """Refuse panoptic rows whose `segments` lack a field of `_SEGMENT_FIELDS`, naming those it has."""
    try:
        segment = _segment_feature(features)
    except (AttributeError, IndexError, KeyError, TypeError):
        segment = None
    fields = list(segment) if isinstance(segment, dict) else None
    missing = [name for name in _SEGMENT_FIELDS if fields is None or name not in fields]
    if missing:
        raise ValueError(
            f"{where}: column 'segments' must be a list of segments with {list(_SEGMENT_FIELDS)} (optional iscrowd, "
            f"bbox, area: seem_hf.data.PANOPTIC_FEATURES); "
            + (f"its segments have {fields}, without {missing}" if fields is not None else
               f"it holds {type(features['segments']).__name__} values")
            + ". `id` is the segment's id in the PNG (R + 256 G + 256^2 B), `label` its class (an index into the "
            "label names), `isthing` whether the class has instances."
        )


def _class_label_names(features: datasets.Features, layout: DatasetLayout) -> list[str] | None:
    """Label names carried by a `ClassLabel` of the annotation itself, if any: `segments.label` of the panoptic
    layout, the annotation column (at any nesting) of the others. A `ClassLabel` of any other column (a scene
    category, the weather) names no pixel and is not read."""
    if layout.name == "panoptic":
        label = _segment_feature(features).get("label")
        return list(label.names) if isinstance(label, datasets.ClassLabel) else None
    feature = features[layout.annotation_column]
    while not isinstance(feature, datasets.ClassLabel):
        if isinstance(feature, list) and len(feature) == 1:
            feature = feature[0]
        elif hasattr(feature, "feature"):
            feature = feature.feature
        else:
            return None
    return list(feature.names)


def _thing_labels(dataset: datasets.Dataset) -> set[int]:
    """Labels that some segment of a panoptic-layout dataset marks as a thing (read from the arrow table: no image
    is decoded)."""
    import pyarrow.compute as pc

    segments = pc.list_flatten(dataset.data.column("segments"))
    labels = pc.struct_field(segments, "label").to_numpy(zero_copy_only=False)
    isthing = pc.struct_field(segments, "isthing").to_numpy(zero_copy_only=False)
    return {int(label) for label in np.unique(labels[isthing.astype(bool)])}


def _reduced(class_to_id: dict[str, int]) -> dict[str, int]:
    """`semantic_class_to_id` with `--do_reduce_labels`: class 0 (background) dropped, the others shifted down."""
    return {name: index - 1 for name, index in class_to_id.items() if index != 0}


def _row_class_to_id(mapping, do_reduce_labels: bool) -> dict[str, int]:
    """One row's `semantic_class_to_id` (a struct gives every row every name, None where a row has none). A class
    given `IGNORE_INDEX`, the id of unlabelled pixels, is refused (`_check_ignore_index`)."""
    class_to_id = {str(key): int(value) for key, value in dict(mapping or {}).items() if value is not None}
    _check_ignore_index({class_id: class_name for class_name, class_id in class_to_id.items()},
                        "column 'semantic_class_to_id'", "", False)
    return _reduced(class_to_id) if do_reduce_labels else class_to_id


def union_class_to_id(dataset: datasets.Dataset, where: str, do_reduce_labels: bool = False) -> dict[str, int]:
    """The union of every row's `semantic_class_to_id` (read without the images), so that a class no early row
    names still counts. Raises a `ValueError` naming `where` and the rows when one name has several ids, or one id
    several names: the annotation's class ids would then mean different classes in different rows."""
    table = dataset.select_columns(["semantic_class_to_id"]).with_format("arrow")[:]
    ids_of: dict[str, dict[int, int]] = {}
    for row, mapping in enumerate(table.column("semantic_class_to_id").to_pylist()):
        try:
            row_class_to_id = _row_class_to_id(mapping, do_reduce_labels)
        except ValueError as error:
            raise ValueError(f"{where}, row {row}: {error}") from None
        for class_name, class_id in row_class_to_id.items():
            ids_of.setdefault(class_name, {}).setdefault(class_id, row)
    class_to_id, names_of = {}, {}
    for class_name, rows in ids_of.items():
        if len(rows) > 1:
            raise ValueError(
                f"{where}: column 'semantic_class_to_id' gives class {class_name!r} different ids in different rows ("
                + ", ".join(f"{class_id} in row {row}" for class_id, row in sorted(rows.items()))
                + "): one class must keep one id in every row. Fix the mapping of those rows."
            )
        class_to_id[class_name] = next(iter(rows))
        names_of.setdefault(class_to_id[class_name], []).append(class_name)
    shared = {class_id: names for class_id, names in names_of.items() if len(names) > 1}
    if shared:
        raise ValueError(f"{where}: column 'semantic_class_to_id' gives one id to several classes ("
                         + ", ".join(f"id {class_id}: {names}" for class_id, names in sorted(shared.items()))
                         + "): each class needs its own id. Fix the mapping of the rows that name them.")
    return class_to_id


@dataclass(frozen=True)
class DatasetLabels:
    """What `dataset_vocabulary` reads from a split: the `vocabulary`, the annotation's class id of each label
    (`class_ids`: semantic and instance layouts; empty for the panoptic layout, whose rows carry labels),
    `source` (where the names came from, for the run's log), and whether thing/stuff was stored with the names
    (`stored_isthing`) rather than read back from the segments."""

    vocabulary: LabelVocabulary
    class_ids: list[int]
    source: str
    stored_isthing: bool = False


def dataset_vocabulary(dataset: datasets.Dataset, layout: DatasetLayout, name: str, folder: Path | None,
                       do_reduce_labels: bool = False, split: str = "train") -> DatasetLabels:
    """The labels of split `split` of dataset `name` (see `DatasetLabels` and the module docstring for where the
    names come from). Raises a `ValueError` saying where label names may come from when the dataset has none."""
    where = f"{name}, split {split!r}"
    if layout.name == "panoptic":
        _check_segment_fields(dataset.features, where)
        description = dataset.info.description
        if description:
            try:
                categories = json.loads(description)["categories"]
            except (ValueError, KeyError, TypeError):
                categories = None
            if categories:
                return DatasetLabels(LabelVocabulary.from_coco(categories)[0], [],
                                     "the categories load_coco_panoptic stored in the description", True)
        names = _class_label_names(dataset.features, layout)
        source = "the ClassLabel of segments.label"
        if names is None:
            path, id2label = _id2label_file(folder, name)
            if id2label is not None and sorted(id2label) != list(range(len(id2label))):
                missing = sorted(set(range(max(id2label) + 1)) - set(id2label))
                raise ValueError(
                    f"{path}: the panoptic layout's segments.label indexes the label names, so they must be numbered "
                    f"0..{len(id2label) - 1} without a gap; ids {missing[:10]} are missing (the names would be read "
                    "in order, each label after a gap taking the next one's name). Name every label from 0 up, or "
                    "renumber the segments' labels."
                )
            names = None if id2label is None else [id2label[index] for index in sorted(id2label)]
            source = "id2label.json"
        if names is None:
            raise ValueError(
                f"{where}: panoptic rows without label names. The package reads them from the description "
                "load_coco_panoptic writes (kept by save_to_disk), from ClassLabel names on segments.label "
                "(seem_hf.data.hf_datasets.for_the_hub casts them before push_to_hub) or from an id2label.json "
                "beside the data."
            )
        things = _thing_labels(dataset)
        return DatasetLabels(LabelVocabulary([CategorySpec(label, _palette(index), index in things)
                                              for index, label in enumerate(names)]), [], source)
    id2class: dict[int, str] | None = None
    source = ""
    if layout.name == "instance" and "semantic_class_to_id" in dataset.column_names:
        class_to_id = union_class_to_id(dataset, where, do_reduce_labels)
        if class_to_id:
            id2class = {class_id: label for label, class_id in class_to_id.items()}
            source = f"the semantic_class_to_id column (union of {len(dataset)} rows)"
    if not id2class:
        path, id2class = _id2label_file(folder, name)
        source = "id2label.json"
        if id2class:
            _check_ignore_index(id2class, str(path), where, do_reduce_labels)
    if not id2class:
        names = _class_label_names(dataset.features, layout)
        id2class = None if names is None else dict(enumerate(names))
        source = f"the ClassLabel of column {layout.annotation_column!r}"
        if id2class:
            _check_ignore_index(id2class, f"{source}, {len(names)} names", where, do_reduce_labels)
    if id2class and do_reduce_labels and not source.startswith("the semantic_class_to_id"):
        _check_reduced_names(id2class, source, where)
    if not id2class:
        place = "beside the data (the dataset folder)" if folder is not None else f"in the Hub repository {name}"
        raise ValueError(
            f"{where}: no label names. Put an id2label.json ({{\"0\": \"name\", ...}}, as transformers' segmentation "
            f"examples read) {place}, or give column {layout.annotation_column!r} a ClassLabel feature"
            + (" or a semantic_class_to_id column." if layout.name == "instance" else ".")
        )
    class_ids = sorted(id2class)
    thing = layout.name == "instance"  # the instance layout has no thing/stuff flag: its classes have instances
    vocabulary = LabelVocabulary([CategorySpec(id2class[class_id], _palette(index), thing)
                                  for index, class_id in enumerate(class_ids)])
    return DatasetLabels(vocabulary, class_ids, source)


def evaluation_labels(training: DatasetLabels, evaluation: DatasetLabels, name: str, train_split: str,
                      evaluation_split: str) -> list[int]:
    """`relabel[label]`: the training label of each label of a panoptic-layout evaluation split, matched by name
    (`labels_by_name`; thing or stuff must agree where both splits store it). Raises a `ValueError` naming both
    splits when the evaluation split has a class the training split lacks."""
    from seem_hf.data.coco_panoptic import labels_by_name

    mapping = labels_by_name(evaluation.vocabulary.coco_categories(), training.vocabulary,
                             f"{name}, split {evaluation_split!r}", f"split {train_split!r}",
                             check_isthing=training.stored_isthing and evaluation.stored_isthing)
    return [mapping[label + 1] for label in range(len(evaluation.vocabulary))]


def _bbox(mask: np.ndarray) -> list[float]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]


def _stable_image_id(value: str) -> int:
    """A non-negative integer for a text image id, the same in every process and run."""
    return int.from_bytes(hashlib.sha256(value.encode("utf-8")).digest()[:8], "big") >> 2


def _size_problem(map_shape: tuple[int, int], image) -> str | None:
    """What is wrong when an annotation of `map_shape` (H, W) does not cover `image` (a PIL image, its pixels as
    stored or turned upright by its EXIF orientation) pixel for pixel; None when it does."""
    if map_shape in ((image.height, image.width), image_size(image)):
        return None
    height, width = map_shape
    swapped = (width, height) in ((image.height, image.width), image_size(image))
    return (f"the annotation is {width}x{height} pixels and the image {image.width}x{image.height}"
            + (" (their sides swapped: one of them was turned, and the other not)" if swapped else "")
            + ": a map gives each pixel of its image a class. Pair the row with the map made for this image, or "
            "resize the map to the image with nearest-neighbour sampling (interpolation blends class ids).")


class PanopticRows(torch.utils.data.Dataset):
    """A split of any recognised layout, read as `load_coco_panoptic` rows (`image`, `panoptic`, `image_id`,
    `height`, `width`, `segments`, `groundings`), decoded when read.

    `class_ids[label]` is the annotation's class id of each contiguous label (semantic and instance layouts); an
    instance row's own `semantic_class_to_id` is read by name against `vocabulary`. Panoptic rows are relabelled
    by `relabel` (an evaluation split's labels in the training split's, `evaluation_labels`) and checked: every
    label below the number of labels, the PNG's segment ids those `segments` lists, each with pixels. Rows without
    an `image_id` column get their position + 1; a text id (a file name) gets a stable integer from its text and
    is kept as `image_name`. Bad data raises an error naming the dataset, the split, the row and the value.

    Semantic and instance rows carry `annotated_pixels="stored"`: their maps follow the image's pixels as stored,
    as transformers' examples read them (no EXIF orientation), which `read_annotated_image` follows when both
    orientations fit."""

    def __init__(self, dataset: datasets.Dataset, layout: DatasetLayout, class_ids: list[int] | None = None,
                 do_reduce_labels: bool = False, name: str = "dataset", split: str = "train",
                 vocabulary: LabelVocabulary | None = None, relabel: list[int] | None = None,
                 label_source: str = "the training split"):
        self.dataset = keep_stored_images(dataset, layout.image_column)
        self.layout, self.do_reduce_labels = layout, do_reduce_labels
        self.name, self.split = name, split
        self.label_of = {int(class_id): label for label, class_id in enumerate(class_ids or [])}
        self.vocabulary, self.relabel, self.label_source = vocabulary, relabel, label_source

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.convert(self.dataset[int(index)], int(index))

    def convert(self, row: dict, index: int) -> dict:
        """`row` (the dataset's row at position `index`) as a `load_coco_panoptic` row; errors name the row."""
        try:
            return self._convert(row, index)
        except ValueError as error:
            raise ValueError(f"{self.name}, split {self.split!r}, row {index}: {error}") from error

    def _value(self, row: dict, column: str):
        """The row's image or annotation in `column`, refused when the row has none (a missing value)."""
        if row.get(column) is None:
            what = "image" if column == self.layout.image_column else "annotation"
            raise ValueError(f"column {column!r} is empty in this row: give the row its {what}, or drop the row.")
        return row[column]

    def _row_labels(self, row: dict) -> tuple[dict[int, int], dict[int, str]]:
        """(class id -> label, class id -> name of a class the labels lack) for one row: the split's `class_ids`,
        or, for an instance row with its own `semantic_class_to_id`, that mapping read by name."""
        mapping = row.get("semantic_class_to_id") if self.layout.name == "instance" else None
        if not mapping or self.vocabulary is None:
            return self.label_of, {}
        label_by_name = {category.name: label for label, category in enumerate(self.vocabulary.categories)}
        label_of, unknown = {}, {}
        for class_name, class_id in _row_class_to_id(mapping, self.do_reduce_labels).items():
            if class_name in label_by_name:
                label_of[class_id] = label_by_name[class_name]
            else:
                unknown[class_id] = class_name
        return label_of, unknown

    def _reduced_ids(self, class_map: np.ndarray) -> np.ndarray:
        """Class ids as the labels read them: with `--do_reduce_labels` transformers' reduce_labels (0, the
        background, becomes 255, every other id one less, 255 stays)."""
        class_map = class_map.astype(np.int64)
        if self.do_reduce_labels:
            class_map = np.where((class_map == 0) | (class_map == IGNORE_INDEX), IGNORE_INDEX, class_map - 1)
        return class_map

    def describe_labels(self, limit: int = 20) -> str:
        """The label set as a message shows it: `class id 'name'` pairs of the annotation's ids (the first `limit`),
        where they came from, and the unlabelled id."""
        names = [category.name for category in self.vocabulary.categories] if self.vocabulary is not None else []
        pairs = [(class_id, names[label] if label < len(names) else f"label {label}")
                 for class_id, label in sorted(self.label_of.items())]
        if self.do_reduce_labels:  # the ids as stored in the maps
            pairs = [(class_id + 1, label) for class_id, label in pairs]
        shown = ", ".join(f"{class_id} {label!r}" for class_id, label in pairs[:limit])
        more = f", ... ({len(pairs)} in all)" if len(pairs) > limit else ""
        unlabelled = "0 and 255 are" if self.do_reduce_labels else "255 is"
        return f"ids {shown}{more}, from {self.label_source}; {unlabelled} unlabelled"

    def _class_problem(self, values, row: dict) -> str | None:
        """What is wrong with a row whose map holds the stored class ids `values` (None when each is a label or
        unlabelled): the ids, as stored, that no label names, with the label set and the ways out."""
        label_of, unnamed = self._row_labels(row)
        stored = sorted(int(value) for value in values)
        reduced = self._reduced_ids(np.asarray(stored, dtype=np.int64)).tolist()
        unknown = [(value, shifted) for value, shifted in zip(stored, reduced)
                   if shifted not in label_of and shifted != IGNORE_INDEX]
        named = {value: unnamed[shifted] for value, shifted in unknown if shifted in unnamed}
        if named:
            return (
                "this row's semantic_class_to_id names classes "
                + ", ".join(f"{class_name!r} (id {value})" for value, class_name in named.items())
                + f" that its pixels use but the labels lack (labels from {self.label_source}: "
                f"{[category.name for category in self.vocabulary.categories]}). Add them to the training split's "
                "rows (a streamed split takes its labels from its first rows: see HEAD_ROWS), or drop these rows."
            )
        if unknown:
            return (
                f"class ids {[value for value, _ in unknown]} in column {self.layout.annotation_column!r} are no "
                f"label (labels: {self.describe_labels()}). Give those pixels a class of the label set or 255 "
                "(unlabelled), or add their names to the label names"
                + ("" if self.do_reduce_labels else "; if 0 means background, pass --do_reduce_labels")
            )
        return None

    def _labels(self, class_map: np.ndarray, row: dict) -> np.ndarray:
        """(H, W) contiguous label per pixel from class ids (-1: unlabelled)."""
        stored = np.unique(class_map)  # once per map: the check and the lookup read the same ids
        problem = self._class_problem(stored.tolist(), row)
        if problem is not None:
            raise ValueError(problem)
        label_of, _ = self._row_labels(row)
        labels = np.full(class_map.shape, -1, dtype=np.int64)
        for value, reduced in zip(stored.tolist(), self._reduced_ids(stored).tolist()):
            if reduced in label_of:
                labels[class_map == value] = label_of[reduced]
        return labels

    def _image_id(self, row: dict, index: int) -> tuple[int, str | None]:
        """(the row's integer image id, its text id when it had one instead)."""
        value = row.get("image_id")
        if value is None:
            return index + 1, None
        if isinstance(value, (bool, np.bool_)):
            raise ValueError(f"column 'image_id' holds {value!r}; give integers or text (a file name).")
        if isinstance(value, (int, np.integer)):
            return int(value), None
        if isinstance(value, float) and value.is_integer():
            return int(value), None
        if isinstance(value, str):
            try:
                return int(value.strip()), None
            except ValueError:
                return _stable_image_id(value), value
        raise ValueError(f"column 'image_id' holds {value!r} ({type(value).__name__}); give integers or text (a file "
                         "name), or drop the column (rows are then numbered by position).")

    def _panoptic(self, row: dict, image, image_id: int, image_name: str | None) -> dict:
        """A panoptic-layout row relabelled (`relabel`) and checked against its PNG."""
        column = self.layout.annotation_column
        count = len(self.vocabulary) if self.vocabulary is not None else None
        segments = []
        for segment in row["segments"]:
            segment = dict(segment)
            label = segment["label"]
            if not isinstance(label, (int, np.integer)) or isinstance(label, (bool, np.bool_)):
                raise ValueError(f"segment {segment['id']} has label {label!r}, not an integer: a label is an index "
                                 "into the label names.")
            label = int(label)
            if self.relabel is not None and 0 <= label < len(self.relabel):
                segment["label"] = label = self.relabel[label]
            elif self.relabel is not None or (count is not None and not 0 <= label < count):
                limit = len(self.relabel) if self.relabel is not None else count
                raise ValueError(
                    f"segment {segment['id']} has label {label}, but the split has {limit} labels (0..{limit - 1}; "
                    f"names from {self.label_source}). Give the segment a label below {limit}, or add its class to "
                    "the label names."
                )
            segments.append(segment)
        panoptic = open_stored_image(self._value(row, column))
        ids = rgb2id(np.asarray(panoptic.convert("RGB")))
        present, areas = np.unique(ids, return_counts=True)
        area_of = dict(zip(present.tolist(), areas.tolist()))
        listed = [int(segment["id"]) for segment in segments]
        repeated = sorted({segment_id for segment_id in listed if listed.count(segment_id) > 1})
        unlisted = {segment_id: area for segment_id, area in area_of.items() if segment_id != 0
                    and segment_id not in listed}
        empty = sorted(segment_id for segment_id in set(listed) if segment_id not in area_of or segment_id == 0)
        problems = ([f"segments lists id(s) {repeated} more than once"] if repeated else []) + (
            [f"the PNG in column {column!r} has segment id(s) "
             + ", ".join(f"{segment_id} ({area} pixels)" for segment_id, area in sorted(unlisted.items()))
             + " that `segments` does not list"] if unlisted else []) + (
            [f"`segments` lists id(s) {empty} that have no pixels in the PNG (0 is void)"] if empty else [])
        if problems:
            raise ValueError(
                "; ".join(problems) + ". The PNG's ids (R + 256 G + 256^2 B, 0 void) and `segments` must list the "
                "same segments, each once: fix the row, or rebuild the dataset with seem_hf.data.load_coco_panoptic "
                "from a folder that python -m seem_hf.data.validate passes."
            )
        for segment in segments:  # what the PNG tells, where the row leaves it out (as COCO leaves iscrowd out)
            crowd = segment.get("iscrowd")
            if crowd is None:
                segment["iscrowd"] = False
            elif isinstance(crowd, (bool, np.bool_)) or (isinstance(crowd, (int, np.integer)) and crowd in (0, 1)):
                segment["iscrowd"] = bool(crowd)
            else:
                raise ValueError(f"segment {segment['id']} has iscrowd {crowd!r}; give true/false (or 0/1).")
            if segment.get("area") is None or segment.get("bbox") is None:
                mask = ids == int(segment["id"])
                segment["area"] = int(mask.sum()) if segment.get("area") is None else segment["area"]
                segment["bbox"] = _bbox(mask) if segment.get("bbox") is None else segment["bbox"]
        converted = {**row, "image": image, "panoptic": panoptic, "image_id": image_id, "segments": segments,
                     "groundings": row.get("groundings") or []}
        if image_name is not None:
            converted["image_name"] = image_name
        return converted

    def check_labels(self, max_listed: int = 10) -> None:
        """Read every row's labels before training, without its image, and raise one `ValueError` listing the rows
        (their place in the split, and the annotation's file where it has one; `max_listed` of them) whose class ids
        `__getitem__` would refuse: a map's ids that no label names (semantic and instance layouts: each
        annotation is decoded, and a split that passed is remembered as `validate_coco_panoptic_once` remembers a
        folder) or a segment's label beyond the label set (panoptic layout: read from the table, no image decoded).
        Otherwise a bad row failed the run when training reached it, possibly hours in."""
        if not isinstance(self.dataset, datasets.Dataset) or len(self.dataset) == 0:
            return
        if self.layout.name == "panoptic":
            problems = self._segment_label_problems()
        else:
            marker = self._checked_marker()
            if marker is not None and marker.is_file():
                return
            problems = self._class_id_problems()
            if not problems and marker is not None:
                try:
                    marker.parent.mkdir(parents=True, exist_ok=True)
                    marker.write_text(json.dumps({"dataset": self.name, "split": self.split}))
                except OSError:  # a read-only cache home: check again next time
                    pass
        if problems:
            listed = "\n".join(f"  {text}" for text in problems[:max_listed])
            more = f"\n  ... and {len(problems) - max_listed} more rows" if len(problems) > max_listed else ""
            raise ValueError(f"{self.name}, split {self.split!r}: {len(problems)} row(s) that the run would refuse "
                             f"when it reached them (checked before training starts):\n{listed}{more}")

    def _row_name(self, position: int, annotation=None) -> str:
        """`row N` for a message, with the row's place in the stored split when a selection or a held-out fraction
        renumbered it, and the annotation's file when it has one."""
        text = f"row {position}"
        indices = getattr(self.dataset, "_indices", None)
        if indices is not None:
            stored = indices.column(0)[position].as_py()
            if stored != position:
                text += f" (row {stored} as stored)"
        if isinstance(annotation, dict) and annotation.get("path"):
            text += f" ({annotation['path']})"
        return text

    def _segment_label_problems(self) -> list[str]:
        """`check_labels` for panoptic rows, from the table: every segment's label an integer below the label count
        (or in `relabel`), its `iscrowd` true/false (or 0/1) where given."""
        count = len(self.relabel) if self.relabel is not None else (
            len(self.vocabulary) if self.vocabulary is not None else None)
        column = self.dataset.select_columns(["segments"]).with_format("arrow")[:].column("segments")
        problems = []
        for position, segments in enumerate(column.to_pylist()):
            texts = []
            labels = [(segment.get("id"), segment.get("label")) for segment in segments or []]
            text_labels = [(segment_id, label) for segment_id, label in labels
                           if not isinstance(label, int) or isinstance(label, bool)]
            if text_labels:
                texts.append(", ".join(f"segment {segment_id} has label {label!r}" for segment_id, label in text_labels)
                             + ", not an integer: a label is an index into the label names")
            beyond = [(segment_id, label) for segment_id, label in labels if (segment_id, label) not in text_labels
                      and count is not None and not 0 <= label < count]
            if beyond:
                texts.append(", ".join(f"segment {segment_id} has label {label}" for segment_id, label in beyond)
                             + f", but the split has {count} labels (0..{count - 1}; names from {self.label_source}). "
                             f"Give the segments a label below {count}, or add their classes to the label names")
            crowds = [(segment.get("id"), segment.get("iscrowd")) for segment in segments or []
                      if segment.get("iscrowd") not in (None, True, False, 0, 1)
                      or isinstance(segment.get("iscrowd"), str)]
            if crowds:
                texts.append(", ".join(f"segment {segment_id} has iscrowd {crowd!r}" for segment_id, crowd in crowds)
                             + "; give true/false (or 0/1)")
            if texts:
                problems.append(f"{self._row_name(position)}: " + "; ".join(texts) + ".")
        return problems

    def _class_id_problems(self) -> list[str]:
        """`check_labels` for semantic and instance rows: each annotation decoded, its class ids read."""
        from tqdm.auto import tqdm

        columns = [self.layout.image_column, self.layout.annotation_column] + (
            ["semantic_class_to_id"] if self.layout.name == "instance"
            and "semantic_class_to_id" in self.dataset.column_names else [])
        annotations = keep_stored_images(self.dataset.select_columns(columns), self.layout.annotation_column)
        problems = []
        for position, row in enumerate(tqdm(annotations, desc=f"checking the class ids of split {self.split!r}",
                                            disable=len(annotations) < 500)):
            stored = row[self.layout.annotation_column]
            try:
                class_map, _ = self._class_map(open_stored_image(self._value(row, self.layout.annotation_column)))
                if class_map.dtype == np.uint8:
                    values = np.flatnonzero(np.bincount(class_map.ravel(), minlength=256)).tolist()
                else:
                    values = np.unique(class_map).tolist()
                problem = self._class_problem(values, row)
                image = open_stored_image(self._value(row, self.layout.image_column), decode=False)
                if problem is None and isinstance(image, PIL.Image.Image):
                    problem = _size_problem(class_map.shape, image)
            except ValueError as error:
                problem = str(error)
            if problem is not None:
                problems.append(f"{self._row_name(position, stored)}: {problem}")
        return problems

    def _checked_marker(self) -> Path | None:
        """Where a semantic or instance split that passed `check_labels` is remembered (None: nowhere): named by
        the rules (this module's source), the split's rows (`datasets`' fingerprint) and how they are read."""
        from seem_hf.caching import cache_home
        from seem_hf.data.validation import VALIDATION_CACHE_ENV

        folder = cache_home(VALIDATION_CACHE_ENV, "validated")
        fingerprint = getattr(self.dataset, "_fingerprint", None)
        if folder is None or fingerprint is None:
            return None
        digest = hashlib.sha256(Path(__file__).read_bytes())
        digest.update(json.dumps([fingerprint, self.layout.name, self.layout.annotation_column,
                                  sorted(self.label_of.items()), self.do_reduce_labels,
                                  None if self.vocabulary is None else
                                  [category.name for category in self.vocabulary.categories]]).encode())
        return folder / f"dataset-rows-{digest.hexdigest()}"

    def _without_alpha(self, annotation) -> np.ndarray:
        """The annotation's values without an alpha channel (PNGs of modes LA, PA, RGBA, as some tools save masks):
        a fully opaque alpha carries nothing and is dropped; transparent pixels are refused, since what the user
        meant them to be (unlabelled, or the class their colour channels hold) cannot be told."""
        mode = getattr(annotation, "mode", None)
        values = np.asarray(annotation)
        if mode not in ("LA", "La", "PA", "RGBA", "RGBa") or values.ndim != 3:
            return values
        alpha = values[..., -1]
        transparent = int((alpha != np.iinfo(alpha.dtype).max).sum()) if alpha.dtype.kind in "ui" else 0
        if transparent:
            raise ValueError(
                f"column {self.layout.annotation_column!r} holds a mode {mode} PNG with {transparent} transparent or "
                "translucent pixels: class ids are read from its colour channels, and whether a transparent pixel is "
                "unlabelled or of the class it holds cannot be told. Save the maps without transparency (mode L or "
                "P; unlabelled pixels 255)."
            )
        values = values[..., :-1]
        return values[..., 0] if values.shape[-1] == 1 else values

    def _class_map(self, annotation) -> tuple[np.ndarray, np.ndarray]:
        """(class ids, instance ids) per pixel of a semantic or instance annotation (an image or array), as stored;
        a colour map in the semantic layout and a map of one channel in the instance layout are refused."""
        layout = self.layout
        annotation = self._without_alpha(annotation)
        if annotation.dtype.kind == "f":
            fractional = ~np.isfinite(annotation) | (annotation != np.round(annotation))
            if fractional.any():
                example = annotation[fractional].flat[0]
                raise ValueError(
                    f"column {layout.annotation_column!r} holds {int(fractional.sum())} pixels whose class id is no "
                    f"whole number (such as {example}): a map resized with interpolation blends the ids of "
                    "neighbouring classes. Resize label maps with nearest-neighbour sampling and save them as integer "
                    "images (PNG mode L, P or I;16)."
                )
        if layout.name == "semantic":
            if annotation.ndim == 3 and not (annotation == annotation[..., :1]).all():
                instance_like = annotation.shape[-1] == 3 and not annotation[..., 2].any()
                raise ValueError(
                    f"column {layout.annotation_column!r} holds colours, not class ids; convert colour-coded masks "
                    "with `python -m seem_hf.data.convert semantic-masks` and its colour table"
                    + ("; if it holds transformers' instance channels (class id, instance id, zeros), pass "
                       "--dataset_layout instance" if not instance_like else
                       "; it looks like transformers' instance channels (class id, instance id, zeros): pass "
                       "--dataset_layout instance")
                )
            class_map = annotation if annotation.ndim == 2 else annotation[..., 0]
            return class_map, np.zeros(class_map.shape, dtype=np.int64)
        if annotation.ndim != 3 or annotation.shape[-1] < 2:
            raise ValueError(f"column {layout.annotation_column!r} holds a {annotation.shape} array; the instance "
                             "layout needs 3 channels (semantic class, instance id, zeros). A map of one class "
                             "id per pixel is the semantic layout: pass --dataset_layout semantic")
        return annotation[..., 0], annotation[..., 1].astype(np.int64)

    def _convert(self, row: dict, index: int) -> dict:
        layout = self.layout
        image = open_stored_image(self._value(row, layout.image_column))
        image_id, image_name = self._image_id(row, index)
        if layout.name == "panoptic":
            return self._panoptic(row, image, image_id, image_name)
        class_map, instances = self._class_map(open_stored_image(self._value(row, layout.annotation_column)))
        labels = self._labels(class_map, row)
        problem = _size_problem(labels.shape, image)
        if problem is not None:
            raise ValueError(problem)
        ids = np.zeros(labels.shape, dtype=np.int64)
        segments = []
        valid = labels >= 0
        pairs = np.unique(np.stack([labels[valid], instances[valid]], 1), axis=0) if valid.any() else []
        for segment_id, (label, instance) in enumerate(pairs, start=1):
            mask = valid & (labels == label) & (instances == instance)
            ids[mask] = segment_id
            segments.append({"id": segment_id, "category_id": int(label) + 1, "label": int(label),
                             "isthing": bool(instance != 0), "iscrowd": False, "bbox": _bbox(mask),
                             "area": int(mask.sum())})
        converted = {"image": image, "panoptic": PIL.Image.fromarray(id2rgb(ids)), "image_id": image_id,
                     "height": labels.shape[0], "width": labels.shape[1], "segments": segments, "groundings": [],
                     "annotated_pixels": "stored"}
        if image_name is not None:
            converted["image_name"] = image_name
        return converted


def _training_layout(train, columns, image_column: str | None, annotation_column: str | None, first,
                     layout: str | None, name: str, folder: Path | None, do_reduce_labels: bool) -> DatasetLayout:
    """The layout of the training split `train` (a map-style or streamed dataset; `columns` its column names or
    features, `first` its first annotation or None) by `detect_layout`, with an image folder's hint
    (`_imagefolder_hint`) ending any error; an annotation column that holds no per-pixel map (a classification
    dataset's `label`) is refused, as is `--do_reduce_labels` on panoptic rows, which it cannot shift."""
    hint = _imagefolder_hint(train, folder)
    try:
        layout = detect_layout(columns, image_column, annotation_column, first, layout)
    except ValueError as error:
        raise ValueError(f"{error}{hint}") from None
    features = train.features
    if do_reduce_labels and layout.name == "panoptic":
        raise ValueError(
            f"{name}: --do_reduce_labels shifts the class ids of semantic and instance maps (0, the background, "
            "unlabelled); panoptic rows carry each segment's label and have no background class, so it would change "
            "nothing. Drop --do_reduce_labels (void pixels are id 0 of the PNG already)."
        )
    feature = features[layout.annotation_column]
    if not isinstance(feature, (datasets.Image, datasets.Array2D, datasets.Array3D, datasets.Sequence, list)):
        raise ValueError(  # noqa: TRY004 (bad data: a ValueError, as every other problem in a dataset)
            f"{name}: column {layout.annotation_column!r} holds {type(feature).__name__} values, not a map per pixel "
            f"(a classification dataset?); the {layout.name} layout needs an image there ({LAYOUTS[layout.name]}). "
            "Name the segmentation map's column with --annotation_column." + hint
        )
    return layout


def find_validation_split(splits, validation_split: str | None, train_split: str) -> tuple[str | None, list[str]]:
    """(the evaluation split's name or None, the names looked for): `validation_split` when given, else
    `validation`, else `val`; never the training split."""
    candidates = [validation_split] if validation_split else ["validation", "val"]
    return next((split for split in candidates if split in splits and split != train_split), None), candidates


@dataclass
class TrainingSplits:
    """What `load_training_splits` returns: `train` and `evaluation` rows (`PanopticRows`; `evaluation` None when
    not asked for), the `vocabulary`, the `layout` and where the label names came from (`label_source`)."""

    train: PanopticRows
    evaluation: PanopticRows | None
    vocabulary: LabelVocabulary
    layout: DatasetLayout
    label_source: str = ""

    def describe(self) -> str:
        """The layout and the origin of the label names, for the run's first line."""
        return f"{self.layout.describe()}; {len(self.vocabulary)} label names from {self.label_source}"


def check_evaluation_classes(train_labels: DatasetLabels, evaluation: datasets.Dataset, layout: DatasetLayout,
                             name: str, folder: Path | None, train_split: str, evaluation_split: str,
                             do_reduce_labels: bool = False) -> list[int] | None:
    """Read an evaluation split's classes against the training split's, by name, before training: for the panoptic
    layout the `relabel` list `PanopticRows` takes (`evaluation_labels`); for the instance layout the union of its
    `semantic_class_to_id` must name no class the training split lacks (each row is then read by name). Raises a
    `ValueError` naming both splits and the classes otherwise."""
    if layout.name == "panoptic":
        own = dataset_vocabulary(evaluation, layout, name, folder, do_reduce_labels, split=evaluation_split)
        return evaluation_labels(train_labels, own, name, train_split, evaluation_split)
    if layout.name == "instance" and "semantic_class_to_id" in evaluation.column_names:
        where = f"{name}, split {evaluation_split!r}"
        known = {category.name for category in train_labels.vocabulary.categories}
        missing = sorted(set(union_class_to_id(evaluation, where, do_reduce_labels)) - known)
        if missing:
            raise ValueError(
                f"{where} has classes {missing} (column 'semantic_class_to_id') that split {train_split!r} lacks "
                f"(its labels, from {train_labels.source}: {sorted(known)}). A model learns the training split's "
                "classes: add rows of them to the training split, or drop them from the evaluation split."
            )
    return None


def load_training_splits(
    name: str,
    config_name: str | None = None,
    train_split: str = "train",
    validation_split: str | None = None,
    train_val_split: float | None = None,
    image_column: str = "image",
    annotation_column: str | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    do_reduce_labels: bool = False,
    evaluate_on: str | None = "validation",
    seed: int = 0,
    layout: str | None = None,
) -> TrainingSplits:
    """The training and evaluation rows of dataset `name` (see `load_dataset_dict`), as the examples'
    `--dataset_name` reads it. `validation_split` defaults to `validation`, else `val`; with `train_val_split` (a
    fraction) and no such split, that fraction of the training split (shuffled with `seed`) is held out.
    `evaluate_on` is `validation`, `train` (the training rows, unaugmented by the caller) or None (no
    evaluation). `max_train_samples` / `max_eval_samples` keep the first rows. `layout` forces one of `LAYOUTS`
    (`--dataset_layout`); by default `detect_layout` reads it from the columns and the first annotation. The
    evaluation split is read in the training split's labels by name (`check_evaluation_classes`)."""
    splits, folder = load_dataset_dict(name, config_name)
    if train_split not in splits:
        raise ValueError(f"{name} has no split {train_split!r} (it has {sorted(splits)}); pick one with --train_split.")
    train = read_image_files(splits[train_split], image_column, annotation_column, folder)
    if layout is None:
        first = _first_annotation(train, train.column_names, annotation_column)
    else:
        first = None
    layout = _training_layout(train, train.column_names, image_column, annotation_column, first, layout, name, folder,
                              do_reduce_labels)
    labels = dataset_vocabulary(train, layout, name, folder, do_reduce_labels, split=train_split)
    evaluation, relabel, evaluation_split = None, None, "evaluation"
    if evaluate_on == "validation":
        found, candidates = find_validation_split(splits, validation_split, train_split)
        if found is not None:
            evaluation = read_image_files(splits[found], image_column, annotation_column, folder)
            evaluation_split = found
            relabel = check_evaluation_classes(labels, evaluation, layout, name, folder, train_split, found,
                                               do_reduce_labels)
        elif train_val_split is not None:
            if not 0 < train_val_split < 1:
                raise ValueError(f"--train_val_split is a fraction between 0 and 1, got {train_val_split}.")
            held_out = train.train_test_split(test_size=train_val_split, seed=seed)
            train, evaluation = held_out["train"], held_out["test"]
        else:
            raise ValueError(
                f"{name} has no validation split {' or '.join(repr(c) for c in candidates)} (it has {sorted(splits)}): "
                "name one with --validation_split, hold out a fraction of the training rows with --train_val_split "
                "0.15, evaluate on the training rows with --eval_split train, or turn evaluation off with "
                "--eval_strategy no."
            )
    if max_train_samples is not None:
        train = train.select(range(min(max_train_samples, len(train))))
    if evaluate_on == "train":
        evaluation = train
    if evaluation is not None and max_eval_samples is not None:
        evaluation = evaluation.select(range(min(max_eval_samples, len(evaluation))))

    def rows(dataset, split, relabel=None):
        return PanopticRows(dataset, layout, labels.class_ids, do_reduce_labels, name=name, split=split,
                            vocabulary=labels.vocabulary, relabel=relabel, label_source=labels.source)

    loaded = TrainingSplits(rows(train, train_split),
                            None if evaluation is None else rows(evaluation, evaluation_split, relabel),
                            labels.vocabulary, layout, labels.source)
    for split_rows in (loaded.train, loaded.evaluation):
        if split_rows is not None:
            split_rows.check_labels()
    return loaded


def for_the_hub(dataset):
    """A `load_coco_panoptic` dataset (or a `DatasetDict` of them) ready for `push_to_hub`: `segments.label`
    becomes a `ClassLabel` of the vocabulary's names, so that the label names travel with the data (a Hub dataset
    card keeps the features, not the description where `load_coco_panoptic` stores the vocabulary). Thing or stuff
    is read back from the training segments' `isthing` (a class that no training segment shows counts as stuff);
    display colours are regenerated. `save_to_disk` keeps the whole vocabulary and needs none of this."""
    if isinstance(dataset, datasets.DatasetDict):
        return datasets.DatasetDict({split: for_the_hub(part) for split, part in dataset.items()})
    from seem_hf.data.coco_panoptic import vocabulary_of

    names = [category.name for category in vocabulary_of(dataset).categories]
    features = dataset.features.copy()
    segment = dict(_segment_feature(features))
    segment["label"] = datasets.ClassLabel(names=names)
    features["segments"] = [segment]
    return dataset.cast(features)


__all__ = [
    "IGNORE_INDEX",
    "LAYOUTS",
    "DatasetLabels",
    "DatasetLayout",
    "PanopticRows",
    "TrainingSplits",
    "check_evaluation_classes",
    "dataset_vocabulary",
    "detect_layout",
    "evaluation_labels",
    "for_the_hub",
    "load_dataset_dict",
    "load_training_splits",
    "paired_image_folders",
    "union_class_to_id",
]

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

Label names come from, in this order: the vocabulary `load_coco_panoptic` stores in the dataset's description
(kept by `save_to_disk`), `ClassLabel` features (`segments.label` of the panoptic layout: `for_the_hub` casts it
before `push_to_hub`, whose cards do not keep the description), a `semantic_class_to_id` column, or an
`id2label.json` ({"0": "name", ...}) in the dataset's folder or Hub repository, as transformers' examples read it.
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import torch

from seem_hf.data.categories import CategorySpec, LabelVocabulary
from seem_hf.data.panoptic_format import id2rgb

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


def detect_layout(column_names, image_column: str = "image", annotation_column: str | None = None) -> DatasetLayout:
    """The layout of a dataset with these columns. `annotation_column` names the annotation when it is not the
    layout's usual one (`panoptic`, `label` or `annotation`). Raises a `ValueError` listing the columns found and
    the layouts accepted when none fits."""
    columns = list(column_names)
    if image_column in columns:
        if "segments" in columns and (annotation_column or "panoptic") in columns:
            return DatasetLayout("panoptic", image_column, annotation_column or "panoptic")
        if annotation_column is not None and annotation_column in columns:
            name = "instance" if annotation_column == "annotation" or "semantic_class_to_id" in columns else "semantic"
            return DatasetLayout(name, image_column, annotation_column)
        if annotation_column is None and "annotation" in columns:
            return DatasetLayout("instance", image_column, "annotation")
        if annotation_column is None and "label" in columns:
            return DatasetLayout("semantic", image_column, "label")
    accepted = "\n".join(f"  {name}: {text}" for name, text in LAYOUTS.items())
    raise ValueError(
        f"The dataset's columns {columns} fit none of the layouts accepted (looked for image column {image_column!r}"
        f"{'' if annotation_column is None else f' and annotation column {annotation_column!r}'}):\n{accepted}\n"
        "Name other columns with --image_column and --annotation_column, or convert the data first "
        "(python -m seem_hf.data.convert)."
    )


def load_dataset_dict(name: str, config_name: str | None = None) -> tuple[datasets.DatasetDict, Path | None]:
    """The dataset `name` as a `DatasetDict`, and its local folder (None for a Hub dataset): a folder written by
    `save_to_disk` (`load_from_disk`), another local folder (`load_dataset`: parquet, image folders, ...), or a Hub
    dataset (`load_dataset(name, config_name)`)."""
    path = Path(name).expanduser()
    if path.exists():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            loaded = datasets.load_from_disk(str(path))
        else:
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


def _id2label_file(folder: Path | None, name: str) -> dict[int, str] | None:
    """`id2label.json` of the dataset's folder or Hub repository, as {int: name}; None when there is none."""
    if folder is not None:
        path = folder / "id2label.json"
        if not path.exists():
            return None
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            path = hf_hub_download(name, "id2label.json", repo_type="dataset")
        except (OSError, EntryNotFoundError):  # no such file, repository or connection: no names from there
            return None
    return {int(key): value for key, value in json.loads(Path(path).read_text(encoding="utf-8")).items()}


def _segment_feature(features: datasets.Features) -> dict:
    feature = features["segments"]
    return feature[0] if isinstance(feature, list) else feature.feature


def _class_label_names(features: datasets.Features, layout: DatasetLayout) -> list[str] | None:
    """Label names carried by `ClassLabel` features, if any."""
    if layout.name == "panoptic":
        label = _segment_feature(features).get("label")
        return list(label.names) if isinstance(label, datasets.ClassLabel) else None
    for feature in features.values():
        inner = getattr(feature, "feature", feature)
        if isinstance(inner, datasets.ClassLabel):
            return list(inner.names)
    return None


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


def dataset_vocabulary(dataset: datasets.Dataset, layout: DatasetLayout, name: str, folder: Path | None,
                       do_reduce_labels: bool = False) -> tuple[LabelVocabulary, list[int]]:
    """The label vocabulary of a training split, and the class id each label stands for in the annotation (for
    the semantic and instance layouts; the panoptic layout's rows carry contiguous labels already). Raises a
    `ValueError` saying where label names may come from when the dataset has none."""
    if layout.name == "panoptic":
        description = dataset.info.description
        if description:
            try:
                categories = json.loads(description)["categories"]
            except (ValueError, KeyError, TypeError):
                categories = None
            if categories:
                return LabelVocabulary.from_coco(categories)[0], []
        names = _class_label_names(dataset.features, layout)
        if names is None:
            id2label = _id2label_file(folder, name)
            names = None if id2label is None else [id2label[index] for index in sorted(id2label)]
        if names is None:
            raise ValueError(
                f"{name}: panoptic rows without label names. The package reads them from the description "
                "load_coco_panoptic writes (kept by save_to_disk), from ClassLabel names on segments.label "
                "(seem_hf.data.hf_datasets.for_the_hub casts them before push_to_hub) or from an id2label.json "
                "beside the data."
            )
        things = _thing_labels(dataset)
        return LabelVocabulary([CategorySpec(label, _palette(index), index in things)
                                for index, label in enumerate(names)]), []
    id2class: dict[int, str] | None = None
    if layout.name == "instance" and "semantic_class_to_id" in dataset.column_names:
        class_to_id = dict(dataset.select_columns("semantic_class_to_id")[0]["semantic_class_to_id"])
        class_to_id = {key: value for key, value in class_to_id.items() if value is not None}
        if do_reduce_labels:
            class_to_id = _reduced(class_to_id)
        id2class = {int(index): label for label, index in class_to_id.items()}
    if id2class is None:
        names = _class_label_names(dataset.features, layout)
        id2class = dict(enumerate(names)) if names is not None else _id2label_file(folder, name)
    if not id2class:
        where = "beside the data (the dataset folder)" if folder is not None else f"in the Hub repository {name}"
        raise ValueError(
            f"{name}: no label names. Put an id2label.json ({{\"0\": \"name\", ...}}, as transformers' segmentation "
            f"examples read) {where}, or give the labels as ClassLabel features"
            + (" or a semantic_class_to_id column." if layout.name == "instance" else ".")
        )
    class_ids = sorted(id2class)
    thing = layout.name == "instance"  # the instance layout has no thing/stuff flag: its classes have instances
    vocabulary = LabelVocabulary([CategorySpec(id2class[class_id], _palette(index), thing)
                                  for index, class_id in enumerate(class_ids)])
    return vocabulary, class_ids


def _bbox(mask: np.ndarray) -> list[float]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]


class PanopticRows(torch.utils.data.Dataset):
    """A split of any recognised layout, read as `load_coco_panoptic` rows (`image`, `panoptic`, `image_id`,
    `height`, `width`, `segments`, `groundings`), decoded when read.

    `class_ids[label]` is the annotation's class id of each contiguous label (semantic and instance layouts). Rows
    without an `image_id` column get their position + 1. A class id that is neither a label nor 255 raises an
    error naming the dataset, the split, the row and the value."""

    def __init__(self, dataset: datasets.Dataset, layout: DatasetLayout, class_ids: list[int] | None = None,
                 do_reduce_labels: bool = False, name: str = "dataset", split: str = "train"):
        self.dataset, self.layout, self.do_reduce_labels = dataset, layout, do_reduce_labels
        self.name, self.split = name, split
        self.label_of = {int(class_id): label for label, class_id in enumerate(class_ids or [])}

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

    def _labels(self, class_map: np.ndarray) -> np.ndarray:
        """(H, W) contiguous label per pixel from class ids (-1: unlabelled)."""
        class_map = class_map.astype(np.int64)
        if self.do_reduce_labels:
            # transformers' reduce_labels: 0 (background) becomes 255, every other id one less, 255 stays.
            class_map = np.where((class_map == 0) | (class_map == IGNORE_INDEX), IGNORE_INDEX, class_map - 1)
        labels = np.full(class_map.shape, -1, dtype=np.int64)
        unknown = []
        for value in np.unique(class_map).tolist():
            if value in self.label_of:
                labels[class_map == value] = self.label_of[value]
            elif value != IGNORE_INDEX:
                unknown.append(value)
        if unknown:
            known = sorted(self.label_of)
            raise ValueError(
                f"class ids {unknown} in column {self.layout.annotation_column!r} are no label "
                f"(labels: ids {known[0]}..{known[-1]}; 255 is unlabelled)"
                + ("" if self.do_reduce_labels else "; if 0 means background, pass --do_reduce_labels")
            )
        return labels

    def _convert(self, row: dict, index: int) -> dict:
        layout = self.layout
        image = row[layout.image_column]
        image_id = int(row.get("image_id", index + 1))
        if layout.name == "panoptic":
            return {**row, "image": image, "panoptic": row[layout.annotation_column], "image_id": image_id,
                    "groundings": row.get("groundings") or []}
        annotation = np.asarray(row[layout.annotation_column])
        if layout.name == "semantic":
            if annotation.ndim == 3 and not (annotation == annotation[..., :1]).all():
                raise ValueError(
                    f"column {layout.annotation_column!r} holds colours, not class ids; convert colour-coded masks "
                    "with `python -m seem_hf.data.convert semantic-masks` and its colour table"
                )
            labels = self._labels(annotation if annotation.ndim == 2 else annotation[..., 0])
            instances = np.zeros_like(labels)
        else:
            if annotation.ndim != 3 or annotation.shape[-1] < 2:
                raise ValueError(f"column {layout.annotation_column!r} holds a {annotation.shape} array; the instance "
                                 "layout needs 3 channels (semantic class, instance id, zeros)")
            labels = self._labels(annotation[..., 0])
            instances = annotation[..., 1].astype(np.int64)
        if labels.shape != (image.height, image.width):
            raise ValueError(f"the annotation is {labels.shape[1]}x{labels.shape[0]} and the image "
                             f"{image.width}x{image.height}")
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
        return {"image": image, "panoptic": PIL.Image.fromarray(id2rgb(ids)), "image_id": image_id,
                "height": image.height, "width": image.width, "segments": segments, "groundings": []}


def _check_annotation_feature(features: datasets.Features, layout: DatasetLayout, name: str) -> None:
    """Refuse an annotation column that holds no per-pixel map (a classification dataset's `label`)."""
    feature = features[layout.annotation_column]
    if not isinstance(feature, (datasets.Image, datasets.Array2D, datasets.Array3D, datasets.Sequence, list)):
        raise ValueError(  # noqa: TRY004 (bad data: a ValueError, as every other problem in a dataset)
            f"{name}: column {layout.annotation_column!r} holds {type(feature).__name__} values, not a map per pixel "
            f"(a classification dataset?); the {layout.name} layout needs an image there ({LAYOUTS[layout.name]}). "
            "Name the segmentation map's column with --annotation_column."
        )


def find_validation_split(splits, validation_split: str | None, train_split: str) -> tuple[str | None, list[str]]:
    """(the evaluation split's name or None, the names looked for): `validation_split` when given, else
    `validation`, else `val`; never the training split."""
    candidates = [validation_split] if validation_split else ["validation", "val"]
    return next((split for split in candidates if split in splits and split != train_split), None), candidates


@dataclass
class TrainingSplits:
    """What `load_training_splits` returns: `train` and `evaluation` rows (`PanopticRows`; `evaluation` None when
    not asked for), the `vocabulary` and the `layout`."""

    train: PanopticRows
    evaluation: PanopticRows | None
    vocabulary: LabelVocabulary
    layout: DatasetLayout


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
) -> TrainingSplits:
    """The training and evaluation rows of dataset `name` (see `load_dataset_dict`), as the examples'
    `--dataset_name` reads it. `validation_split` defaults to `validation`, else `val`; with `train_val_split` (a
    fraction) and no such split, that fraction of the training split (shuffled with `seed`) is held out.
    `evaluate_on` is `validation`, `train` (the training rows, unaugmented by the caller) or None (no
    evaluation). `max_train_samples` / `max_eval_samples` keep the first rows."""
    splits, folder = load_dataset_dict(name, config_name)
    if train_split not in splits:
        raise ValueError(f"{name} has no split {train_split!r} (it has {sorted(splits)}); pick one with --train_split.")
    train = splits[train_split]
    layout = detect_layout(train.column_names, image_column, annotation_column)
    _check_annotation_feature(train.features, layout, name)
    vocabulary, class_ids = dataset_vocabulary(train, layout, name, folder, do_reduce_labels)
    evaluation = None
    if evaluate_on == "validation":
        found, candidates = find_validation_split(splits, validation_split, train_split)
        if found is not None:
            evaluation = splits[found]
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

    def rows(dataset, split):
        return PanopticRows(dataset, layout, class_ids, do_reduce_labels, name=name, split=split)

    return TrainingSplits(rows(train, train_split), None if evaluation is None else rows(evaluation, "evaluation"),
                     vocabulary, layout)


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
    "DatasetLayout",
    "PanopticRows",
    "TrainingSplits",
    "dataset_vocabulary",
    "detect_layout",
    "for_the_hub",
    "load_dataset_dict",
    "load_training_splits",
]

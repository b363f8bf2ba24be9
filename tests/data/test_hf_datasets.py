"""`--dataset_name` data (`seem_hf.data.hf_datasets`): the three layouts recognised from the columns and read as the
package's panoptic rows, label names from where users keep them, the package's own dataset round-tripped through
`save_to_disk` and the Hub's parquet files, and the errors for data that fits no layout."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
from transformers import TrainingArguments

from seem_hf import DetrPanopticImageProcessor
from seem_hf.data import SHAPES_VOCABULARY, load_coco_panoptic, make_shapes_dataset, panoptic_targets
from seem_hf.data.coco_panoptic import semantic_map
from seem_hf.data.hf_datasets import detect_layout, for_the_hub, load_training_splits
from seem_hf.testing import FIXTURES
from seem_hf.training import DetrPanopticCollator
from seem_hf.training.arguments import DataArguments, training_datasets

NAMES = [category.name for category in SHAPES_VOCABULARY.categories]


def _splits(root: Path) -> dict[str, datasets.Dataset]:
    """The bundled shapes data (2 + 2 images at 64 px) read by `load_coco_panoptic`, per split."""
    paths = make_shapes_dataset(root, num_train=2, num_val=2, image_size=64, seed=0)
    return {split: load_coco_panoptic(p["image_dir"], p["panoptic_dir"], p["panoptic_json"], p["grounding_json"])
            for split, p in paths.items()}


def _instance_annotation(row: dict) -> np.ndarray:
    """transformers' instance layout of a panoptic row: channel 0 the label (255 unlabelled), channel 1 the
    segment id for things and 0 for stuff, channel 2 zeros."""
    targets = panoptic_targets(row)
    annotation = np.zeros((*targets["masks"].shape[1:], 3), dtype=np.uint8)
    annotation[..., 0] = 255
    for mask, segment in zip(targets["masks"], row["segments"]):
        annotation[mask, 0] = segment["label"]
        annotation[mask, 1] = segment["id"] if segment["isthing"] else 0
    return annotation


def write_layouts(root: Path) -> dict[str, Path]:
    """`datasets` folders (save_to_disk) of the bundled shapes data in each layout, under `root`: `panoptic` (the
    package's rows), `semantic` (image + label, with an id2label.json) and `instance` (image + 3-channel
    annotation + semantic_class_to_id)."""
    splits = _splits(root / "shapes")
    folders = {name: root / name for name in ("panoptic", "semantic", "instance")}
    datasets.DatasetDict({"train": splits["train"], "validation": splits["val"]}).save_to_disk(folders["panoptic"])
    semantic, instance = {}, {}
    for split, name in (("train", "train"), ("val", "validation")):
        rows = list(splits[split])
        semantic[name] = datasets.Dataset.from_dict(
            {"image": [row["image"] for row in rows],
             "label": [PIL.Image.fromarray(semantic_map(row).astype(np.uint8)) for row in rows]},
            features=datasets.Features({"image": datasets.Image(), "label": datasets.Image()}),
        )
        instance[name] = datasets.Dataset.from_dict(
            {"image": [row["image"] for row in rows],
             "annotation": [PIL.Image.fromarray(_instance_annotation(row)) for row in rows],
             "semantic_class_to_id": [{name: index for index, name in enumerate(NAMES)}] * len(rows)},
        ).cast_column("image", datasets.Image()).cast_column("annotation", datasets.Image())
    datasets.DatasetDict(semantic).save_to_disk(folders["semantic"])
    (folders["semantic"] / "id2label.json").write_text(json.dumps(dict(enumerate(NAMES))))
    datasets.DatasetDict(instance).save_to_disk(folders["instance"])
    return folders


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    return write_layouts(tmp_path_factory.mktemp("layouts"))


def _arguments(tmp_path, **overrides) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none", use_cpu=True,
                             **{"eval_strategy": "no", **overrides})


def _batches(dataset, count: int = 2) -> list[dict]:
    collate = DetrPanopticCollator(DetrPanopticImageProcessor.from_pretrained(FIXTURES / "tiny-random-detr_panoptic"))
    return [collate([dataset[index] for index in range(start, start + 2)]) for start in range(0, count, 2)]


def test_the_package_s_dataset_saved_to_disk_trains_as_its_folder_does(tmp_path, capsys):
    """Issue 22, item 2: load_coco_panoptic -> save_to_disk -> --dataset_name gives the same rows, the same
    augmented samples (groundings included) and the same batches as --data_dir on the folder."""
    paths = make_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=2, image_size=64, seed=0)
    loaded = {split: load_coco_panoptic(p["image_dir"], p["panoptic_dir"], p["panoptic_json"], p["grounding_json"])
              for split, p in paths.items()}
    datasets.DatasetDict({"train": loaded["train"], "validation": loaded["val"]}).save_to_disk(tmp_path / "saved")
    arguments = _arguments(tmp_path, eval_strategy="steps")
    folder = training_datasets(DataArguments(data_dir=str(tmp_path / "shapes"), image_size=64), arguments)
    named = training_datasets(DataArguments(dataset_name=str(tmp_path / "saved"), image_size=64), arguments)
    assert "layout 'panoptic'" in capsys.readouterr().out.splitlines()[0]
    assert named[2].coco_categories() == folder[2].coco_categories()  # names, ids, thing/stuff and colours
    for ours, theirs in zip(named[:2], folder[:2]):
        assert len(ours) == len(theirs) == 2
        for index in range(2):
            a, b = ours[index], theirs[index]
            assert a["image_id"] == b["image_id"] and a["sentences"] == b["sentences"] and a["sentences"]
            # The same decoding and augmentation of the same bytes (the JPEG and PNG are embedded as they were
            # read): equal exactly.
            for key in ("image", "masks", "labels", "isthing", "iscrowd", "valid", "grounding_masks"):
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        for batch_a, batch_b in zip(_batches(ours), _batches(theirs)):
            assert torch.equal(batch_a["pixel_values"], batch_b["pixel_values"])
            for labels_a, labels_b in zip(batch_a["labels"], batch_b["labels"]):
                for key in labels_a:
                    assert torch.equal(labels_a[key], labels_b[key]), key


def test_published_parquet_keeps_the_labels_through_for_the_hub(tmp_path):
    """What push_to_hub uploads (parquet shards; the card keeps the features, not the description) read back by
    load_dataset: for_the_hub's ClassLabel carries the names, the segments carry thing or stuff."""
    loaded = _splits(tmp_path / "shapes")
    published = for_the_hub(datasets.DatasetDict({"train": loaded["train"], "validation": loaded["val"]}))
    (tmp_path / "hub" / "data").mkdir(parents=True)
    for split, part in published.items():
        part.to_parquet(tmp_path / "hub" / "data" / f"{split}-00000-of-00001.parquet")
    splits = load_training_splits(str(tmp_path / "hub"))
    assert splits.layout.name == "panoptic"
    assert splits.vocabulary.id2label == SHAPES_VOCABULARY.id2label
    # Thing or stuff comes from the training segments (a class no training segment shows counts as stuff).
    shown = {s["label"] for row in loaded["train"] for s in row["segments"] if s["isthing"]}
    assert shown and splits.vocabulary.thing_label_ids == sorted(shown)
    original = loaded["train"][1]
    row = splits.train[1]
    assert row["segments"] == original["segments"] and row["groundings"] == original["groundings"]
    np.testing.assert_array_equal(np.asarray(row["panoptic"]), np.asarray(original["panoptic"]))
    # Without for_the_hub the names are lost: the error says where they may come from.
    loaded["train"].to_parquet(tmp_path / "bare" / "train.parquet")
    with pytest.raises(ValueError, match="for_the_hub"):
        load_training_splits(str(tmp_path / "bare"), evaluate_on=None)


@pytest.mark.parametrize("layout", ["semantic", "instance"])
def test_semantic_and_instance_layouts_read_as_panoptic_rows(layouts, layout, tmp_path, capsys):
    original = datasets.load_from_disk(str(layouts["panoptic"]))["train"]
    train, evaluation, vocabulary = training_datasets(
        DataArguments(dataset_name=str(layouts[layout]), image_size=64), _arguments(tmp_path, eval_strategy="steps")
    )
    first_line = capsys.readouterr().out.splitlines()[0]
    assert f"layout '{layout}'" in first_line and ("stuff-only panoptic" in first_line) == (layout == "semantic")
    assert vocabulary.id2label == SHAPES_VOCABULARY.id2label and len(train) == len(evaluation) == 2
    row = train.dataset[0]
    reference = panoptic_targets(original[0])
    ours = panoptic_targets(row)
    if layout == "semantic":  # one segment per class present: the union of that class's segments
        for label in np.unique(reference["labels"]):
            union = reference["masks"][reference["labels"] == label].any(0)
            np.testing.assert_array_equal(ours["masks"][list(ours["labels"]).index(label)], union)
        assert not ours["isthing"].any() and len(ours["labels"]) == len(set(ours["labels"].tolist()))
    else:  # every segment, things apart and stuff one per class, as the panoptic rows have them
        assert sorted(map(bytes, np.packbits(ours["masks"], axis=-1))) == sorted(
            map(bytes, np.packbits(reference["masks"], axis=-1)))
        assert sorted(ours["isthing"].tolist()) == sorted(reference["isthing"].tolist())
    assert train[0]["masks"].shape[1:] == (64, 64)  # augmented like any row


def test_reduce_labels_split_and_sample_limits(tmp_path):
    """--do_reduce_labels as transformers' (0 unlabelled, the others one less), --train_val_split without a
    validation split, --max_train_samples, and an unknown class id named with its row."""
    label = np.array([[0, 1], [2, 255]], dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    rows = {"image": [PIL.Image.new("RGB", (16, 16))] * 4, "label": [PIL.Image.fromarray(label)] * 4}
    data = datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).cast_column("label",
                                                                                             datasets.Image())
    data.save_to_disk(tmp_path / "data")
    (tmp_path / "data" / "id2label.json").write_text(json.dumps({"0": "road", "1": "car"}))
    splits = load_training_splits(str(tmp_path / "data"), train_val_split=0.25, do_reduce_labels=True,
                                  max_train_samples=2)
    assert len(splits.train) == 2 and len(splits.evaluation) == 1
    segments = splits.train[0]["segments"]
    assert [(s["label"], s["area"]) for s in segments] == [(0, 64), (1, 64)]  # 0 and 255 unlabelled
    with pytest.raises(ValueError, match=r"row 0: class ids \[2\] .* pass --do_reduce_labels"):
        load_training_splits(str(tmp_path / "data"), evaluate_on=None).train[0]
    with pytest.raises(ValueError, match="--train_val_split 0.15"):
        load_training_splits(str(tmp_path / "data"))


def test_a_dataset_fitting_no_layout_is_refused_with_its_columns_and_the_layouts(tmp_path):
    datasets.Dataset.from_dict({"picture": ["a.jpg"], "mask": ["a.png"]}).save_to_disk(tmp_path / "odd")
    with pytest.raises(ValueError) as error:
        training_datasets(DataArguments(dataset_name=str(tmp_path / "odd")), _arguments(tmp_path))
    text = str(error.value)
    assert "['picture', 'mask']" in text and "--image_column" in text
    assert all(name in text for name in ("panoptic:", "semantic:", "instance:"))
    assert detect_layout(["picture", "mask"], "picture", "mask").name == "semantic"
    picture = PIL.Image.new("RGB", (8, 8))
    classification = datasets.Dataset.from_dict({"image": [picture], "label": [3]}).cast_column(
        "image", datasets.Image())
    classification.save_to_disk(tmp_path / "classification")
    with pytest.raises(ValueError, match="column 'label' holds Value values, not a map per pixel"):
        load_training_splits(str(tmp_path / "classification"), evaluate_on=None)
    nameless = datasets.Dataset.from_dict({"image": [picture], "label": [picture]})
    nameless.cast_column("image", datasets.Image()).cast_column("label", datasets.Image()).save_to_disk(
        tmp_path / "nameless")
    with pytest.raises(ValueError, match="no label names. Put an id2label.json"):
        load_training_splits(str(tmp_path / "nameless"), evaluate_on=None)
    (tmp_path / "nameless" / "id2label.json").write_text(json.dumps({"0": "thing"}))
    colours = load_training_splits(str(tmp_path / "nameless"), evaluate_on=None).train
    colours.dataset = colours.dataset.map(lambda row: {"label": PIL.Image.new("RGB", (8, 8), (0, 9, 0))})
    with pytest.raises(ValueError, match="row 0: column 'label' holds colours.*semantic-masks"):
        colours[0]
    with pytest.raises(ValueError, match="'someone/not-here' is no local folder, and the Hub did not give it"):
        load_training_splits("someone/not-here", evaluate_on=None)  # the tests run offline (HF_HUB_OFFLINE=1)
    with pytest.raises(ValueError, match="keep one"):
        training_datasets(DataArguments(dataset_name=str(tmp_path / "odd"), data_dir=str(tmp_path)),
                          _arguments(tmp_path))

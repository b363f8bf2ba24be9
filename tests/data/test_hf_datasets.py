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
from seem_hf.data import (
    SHAPES_VOCABULARY,
    LargeScaleJitter,
    load_coco_panoptic,
    make_shapes_dataset,
    panoptic_targets,
)
from seem_hf.data.coco_panoptic import semantic_map
from seem_hf.data.hf_datasets import detect_layout, for_the_hub, load_training_splits
from seem_hf.data.streaming import load_streaming_splits
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


def _semantic_dataset(labels: list[np.ndarray], **columns) -> datasets.Dataset:
    images = [PIL.Image.new("RGB", label.shape[:2][::-1]) for label in labels]
    data = datasets.Dataset.from_dict({"image": images, **columns,
                                       "annotation" if labels[0].ndim == 3 else "label": [
                                           PIL.Image.fromarray(label) for label in labels]})
    for column in ("image", "annotation", "label"):
        if column in data.column_names:
            data = data.cast_column(column, datasets.Image())
    return data


def test_a_panoptic_evaluation_split_is_read_in_the_training_labels_by_name(tmp_path):
    """A validation split whose stored categories come in another order is relabelled by name; one with a class the
    training split lacks is refused before training, naming both splits and the class."""
    loaded = _splits(tmp_path / "shapes")
    categories = json.loads(loaded["val"].info.description)["categories"]
    reordered = list(reversed(categories))
    relabel = {old: new for new, old in enumerate(range(len(categories) - 1, -1, -1))}

    def with_categories(dataset, categories, relabel):
        segments = [[{**segment, "label": relabel[segment["label"]]} for segment in row] for row in dataset["segments"]]
        changed = dataset.remove_columns("segments").add_column("segments", segments,
                                                                  feature=dataset.features["segments"])
        changed.info.description = json.dumps({"categories": categories})
        return changed

    val = with_categories(loaded["val"], [{**c, "id": i + 1} for i, c in enumerate(reordered)], relabel)
    datasets.DatasetDict({"train": loaded["train"], "validation": val}).save_to_disk(tmp_path / "reordered")
    splits = load_training_splits(str(tmp_path / "reordered"))
    assert [s["label"] for s in splits.evaluation[0]["segments"]] == [s["label"] for s in loaded["val"][0]["segments"]]
    extra = with_categories(loaded["val"], categories + [{**categories[0], "id": 99, "name": "truck"}],
                            dict(enumerate(range(len(categories)))))
    datasets.DatasetDict({"train": loaded["train"], "validation": extra}).save_to_disk(tmp_path / "extra")
    with pytest.raises(ValueError, match=r"split 'validation' has category \['truck'\] that split 'train' lacks"):
        load_training_splits(str(tmp_path / "extra"))


def test_panoptic_rows_are_checked_against_their_png(tmp_path):
    """A label past the label names, PNG pixels of an unlisted segment and a listed segment without pixels are
    errors naming the split, the row and the segment (not a crash in the loss, nor silently void or dropped)."""
    from seem_hf.data import id2rgb

    ids = np.ones((32, 32), np.int64)
    ids[4:12, 4:12] = 2
    row = {"image": PIL.Image.new("RGB", (32, 32)), "panoptic": PIL.Image.fromarray(id2rgb(ids)), "image_id": 1,
           "height": 32, "width": 32}

    def segment(segment_id, label):
        return {"id": segment_id, "category_id": label + 1, "label": label, "isthing": label == 1, "iscrowd": False,
                "bbox": [0.0, 0.0, 1.0, 1.0], "area": 1}

    cases = {"label": ([segment(1, 0), segment(2, 7)], r"row 0: segment 2 has label 7, but the split has 2 labels"),
             "unlisted": ([segment(1, 0)], r"row 0: the PNG in column 'panoptic' has segment id\(s\) 2 \(64 pixels\)"),
             "empty": ([segment(1, 0), segment(2, 1), segment(5, 1)], r"row 0: `segments` lists id\(s\) \[5\] that "
                                                                       "have no pixels")}
    for case, (segments, message) in cases.items():
        datasets.Dataset.from_list([{**row, "segments": segments}]).save_to_disk(tmp_path / case)
        (tmp_path / case / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
        with pytest.raises(ValueError, match=message):  # a label past the names: while loading, before training
            load_training_splits(str(tmp_path / case), evaluate_on=None).train[0]


def test_only_the_annotation_s_class_label_names_pixels(tmp_path):
    """A ClassLabel of another column (a scene category) names no label; id2label.json wins over the annotation's
    own ClassLabel, and the run's description says where the names came from."""
    label = np.zeros((16, 16), np.uint8)
    label[:8] = 1
    data = _semantic_dataset([label, label], scene=[0, 1]).cast_column(
        "scene", datasets.ClassLabel(names=["airport", "bathroom", "kitchen"]))
    data.save_to_disk(tmp_path / "scenes")
    (tmp_path / "scenes" / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
    splits = load_training_splits(str(tmp_path / "scenes"), evaluate_on=None)
    assert splits.vocabulary.id2label == {0: "sea", 1: "boat"} and "from id2label.json" in splits.describe()
    data.save_to_disk(tmp_path / "unnamed")
    with pytest.raises(ValueError, match="no label names"):
        load_training_splits(str(tmp_path / "unnamed"), evaluate_on=None)
    named = datasets.Dataset.from_dict({"image": data["image"], "label": [label.tolist()] * 2}).cast_column(
        "image", datasets.Image()).cast_column("label", datasets.Sequence(datasets.Sequence(
            datasets.ClassLabel(names=["water", "ship"]))))
    named.save_to_disk(tmp_path / "named")
    splits = load_training_splits(str(tmp_path / "named"), evaluate_on=None)
    assert splits.vocabulary.id2label == {0: "water", 1: "ship"} and "ClassLabel of column 'label'" in splits.describe()


def test_the_layout_is_read_from_the_data(tmp_path):
    """A 2-D map in a column named `annotation` (ADE20K's layout) is semantic; transformers' 3-channel instance
    annotation in a column named `label` is instance; --dataset_layout forces one; the errors name it."""
    semantic = np.zeros((16, 16), np.uint8)
    semantic[:8] = 1
    instance = np.zeros((16, 16, 3), np.uint8)
    instance[:8, :, 0], instance[:8, :8, 1] = 1, 1
    assert detect_layout(["image", "annotation"], first_annotation=PIL.Image.fromarray(semantic)).name == "semantic"
    assert detect_layout(["image", "annotation"], annotation_column="annotation",
                         first_annotation=semantic).name == "semantic"
    assert detect_layout(["image", "label"], first_annotation=PIL.Image.fromarray(instance)).name == "instance"
    assert detect_layout(["image", "label"], first_annotation=np.zeros((4, 4, 3), np.uint8)).name == "semantic"
    assert detect_layout(["image", "annotation"], layout="semantic").name == "semantic"
    data = datasets.Dataset.from_dict({"image": [PIL.Image.new("RGB", (16, 16))], "annotation": [
        PIL.Image.fromarray(semantic)]}).cast_column("image", datasets.Image()).cast_column("annotation",
                                                                                          datasets.Image())
    data.save_to_disk(tmp_path / "ade")
    (tmp_path / "ade" / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
    splits = load_training_splits(str(tmp_path / "ade"), evaluate_on=None)
    assert splits.layout.name == "semantic" and [s["area"] for s in splits.train[0]["segments"]] == [128, 128]
    with pytest.raises(ValueError, match="row 0: .*the semantic layout: pass --dataset_layout semantic"):
        load_training_splits(str(tmp_path / "ade"), evaluate_on=None, layout="instance")  # read before training


def test_instance_class_names_are_the_union_of_every_row_s(tmp_path):
    """semantic_class_to_id naming other classes in later rows: every class counts; one name with two ids is
    refused naming the rows; an evaluation split with a class the training split lacks is refused before training."""
    def annotation(class_id):
        values = np.zeros((16, 16, 3), np.uint8)
        values[..., 0] = 1
        values[4:8, 4:8, 0], values[4:8, 4:8, 1] = class_id, 1
        return values

    train = _semantic_dataset([annotation(2), annotation(3)], semantic_class_to_id=[
        {"road": 1, "car": 2}, {"road": 1, "bike": 3}])
    datasets.DatasetDict({"train": train, "validation": train}).save_to_disk(tmp_path / "union")
    splits = load_training_splits(str(tmp_path / "union"))
    assert splits.vocabulary.id2label == {0: "road", 1: "car", 2: "bike"}
    assert [s["label"] for s in splits.train[1]["segments"]] == [0, 2]
    conflict = _semantic_dataset([annotation(2), annotation(2)], semantic_class_to_id=[
        {"road": 1, "car": 2}, {"road": 1, "car": 3}])
    conflict.save_to_disk(tmp_path / "conflict")
    with pytest.raises(ValueError, match=r"gives class 'car' different ids in different rows \(2 in row 0, 3 in row 1"):
        load_training_splits(str(tmp_path / "conflict"), evaluate_on=None)
    other = _semantic_dataset([annotation(4)], semantic_class_to_id=[{"road": 1, "truck": 4}])
    datasets.DatasetDict({"train": train, "validation": other}).save_to_disk(tmp_path / "extra")
    with pytest.raises(ValueError, match=r"split 'validation' has classes \['truck'\] .* that split 'train' lacks"):
        load_training_splits(str(tmp_path / "extra"))


def test_text_image_ids_get_a_stable_integer_and_are_kept(tmp_path):
    label = np.zeros((16, 16), np.uint8)
    _semantic_dataset([label, label], image_id=["a.jpg", "7"]).save_to_disk(tmp_path / "named")
    (tmp_path / "named" / "id2label.json").write_text(json.dumps({"0": "sea"}))
    rows = load_training_splits(str(tmp_path / "named"), evaluate_on=None).train
    first = rows[0]
    assert first["image_name"] == "a.jpg" and first["image_id"] >= 0 and first["image_id"] == rows[0]["image_id"]
    assert rows[1]["image_id"] == 7 and "image_name" not in rows[1]


def test_datasets_rows_follow_the_stored_pixels_where_both_orientations_fit(tmp_path):
    """A square image turned by its EXIF orientation with a label map made on its stored pixels (as the academic
    datasets on the Hub are): datasets would decode it upright; the rows read it as stored."""
    import io

    from seem_hf.data.transforms import augment_panoptic_row

    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[:, :32] = (255, 0, 0)
    label = np.zeros((64, 64), np.uint8)
    label[:, :32] = 1
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    encoded = io.BytesIO()
    PIL.Image.fromarray(pixels).save(encoded, format="PNG", exif=exif)
    data = datasets.Dataset.from_dict({"image": [{"bytes": encoded.getvalue(), "path": None}],
                                       "label": [PIL.Image.fromarray(label)]})
    data.cast_column("image", datasets.Image()).cast_column("label", datasets.Image()).save_to_disk(tmp_path / "d")
    (tmp_path / "d" / "id2label.json").write_text(json.dumps({"0": "blue", "1": "red"}))
    row = load_training_splits(str(tmp_path / "d"), evaluate_on=None).train[0]
    item = augment_panoptic_row(row, LargeScaleJitter(64, 1.0, 1.0, 0.0), 0, 0)
    red = item["masks"][list(item["labels"]).index(1)]
    assert (item["image"][red][:, 0] == 255).all()


def test_a_folder_s_val_categories_are_read_in_the_training_labels_by_name(tmp_path):
    """--data_dir: a val JSON listing the training classes under other ids trains with the training labels; a class
    the training JSON lacks, or a thing that is stuff in training, is refused naming both files."""
    paths = make_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=2, image_size=64, seed=0)
    val_json = paths["val"]["panoptic_json"]
    original = json.loads(val_json.read_text())
    expected = [[s["label"] for s in row["segments"]] for row in load_coco_panoptic(
        paths["val"]["image_dir"], paths["val"]["panoptic_dir"], val_json)]
    count = len(original["categories"])
    swapped = json.loads(json.dumps(original))
    for category in swapped["categories"]:
        category["id"] = count + 1 - category["id"]
    for annotation in swapped["annotations"]:
        for segment in annotation["segments_info"]:
            segment["category_id"] = count + 1 - segment["category_id"]
    val_json.write_text(json.dumps(swapped))
    paths["val"]["grounding_json"].unlink()  # its category ids would need the same swap
    arguments = _arguments(tmp_path, eval_strategy="steps")
    _, evaluation, vocabulary = training_datasets(DataArguments(data_dir=str(tmp_path / "shapes"), image_size=64),
                                                  arguments)
    assert vocabulary.id2label == SHAPES_VOCABULARY.id2label
    assert [[s["label"] for s in row["segments"]] for row in evaluation.dataset] == expected
    renamed = json.loads(json.dumps(original))
    renamed["categories"][0]["name"] = "truck"
    flipped = json.loads(json.dumps(original))
    flipped["categories"][0]["isthing"] = 1 - flipped["categories"][0]["isthing"]
    for changed, message in ((renamed, r"has category \['truck'\] that the training split \(.*panoptic_train.json\) "
                                       "lacks"),
                             (flipped, f"{NAMES[0]!r} is (a thing|stuff) in .*panoptic_val.json but")):
        val_json.write_text(json.dumps(changed))
        with pytest.raises(ValueError, match=message):
            training_datasets(DataArguments(data_dir=str(tmp_path / "shapes"), image_size=64), arguments)


def test_a_malformed_id2label_json_is_named_with_the_form_it_needs(tmp_path):
    """id2label.json written as a label2id, a list, broken JSON, in Windows-1252, or with one name twice used to fail
    with Python's own error (`invalid literal for int()`, `'list' object has no attribute 'items'`, a bare
    UnicodeDecodeError, 'Duplicate category names') naming no file. Each names the file and the form it needs; a
    byte-order mark (Windows editors) is read."""
    label = PIL.Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8).repeat(4, 0).repeat(4, 1))
    data = datasets.Dataset.from_dict({"image": [PIL.Image.new("RGB", (8, 8))] * 2, "label": [label] * 2})
    data.cast_column("image", datasets.Image()).cast_column("label", datasets.Image()).save_to_disk(tmp_path / "data")
    path = tmp_path / "data" / "id2label.json"
    for content, expected in (
        (json.dumps({"sea": 0, "boat": 1, "rock": 2}), 'holds names -> ids ({"sea": 0, "boat": 1, ...}, a label2id)'),
        (json.dumps(["sea", "boat", "rock"]), 'must hold a non-empty JSON object {"0": "name"'),
        ('{"0": "sea", "1": "boat",', "not valid JSON at line 1, column 26"),
        (json.dumps({"0": "sea", "x": "boat", "2": ""}), "key 'x' is no class id (a non-negative integer); id 2: name "
                                                         '"" is no non-empty text'),
        (json.dumps({"0": "sea", "1": "boat", "2": "sea"}), "name 'sea' has ids ['0', '2']"),
        ('{"0": "sea", "1": "caf\xe9", "2": "rock"}'.encode("cp1252"),
         "not UTF-8 text (byte 0xe9 at line 1, column 23"),
    ):
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(ValueError) as error:
            load_training_splits(str(tmp_path / "data"), evaluate_on=None)
        assert str(error.value).startswith(f"{path}: ") and expected in str(error.value), str(error.value)
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"0": "sea", "1": "boat", "2": "rock"}).encode())
    assert load_training_splits(str(tmp_path / "data"), evaluate_on=None).vocabulary.id2label == {
        0: "sea", 1: "boat", 2: "rock"}


def test_reduce_labels_with_names_counted_from_the_background_is_refused(tmp_path):
    """transformers' examples read id2label after --do_reduce_labels' shift (0 = the class stored as 1). Names that
    start with the background, counted from the stored ids, used to train every class under its neighbour's name
    (the pixels stored as 1 named 'background'); refused, saying both ways out."""
    label = PIL.Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8).repeat(4, 0).repeat(4, 1))
    data = datasets.Dataset.from_dict({"image": [PIL.Image.new("RGB", (8, 8))] * 2, "label": [label] * 2})
    data.cast_column("image", datasets.Image()).cast_column("label", datasets.Image()).save_to_disk(tmp_path / "data")
    (tmp_path / "data" / "id2label.json").write_text(json.dumps({"0": "Background", "1": "boat", "2": "rock"}))
    with pytest.raises(ValueError, match="They name 0 'Background': every class would take the name of the one "
                                         "stored below it. Remove 'Background' and number the other names from 0, or "
                                         "drop --do_reduce_labels"):
        load_training_splits(str(tmp_path / "data"), evaluate_on=None, do_reduce_labels=True)
    kept = load_training_splits(str(tmp_path / "data"), evaluate_on=None)  # without the shift: 0 is a class
    assert [(kept.vocabulary.id2label[s["label"]], s["area"]) for s in kept.train[0]["segments"]] == [
        ("Background", 16), ("boat", 32), ("rock", 16)]
    (tmp_path / "data" / "id2label.json").write_text(json.dumps({"0": "boat", "1": "rock"}))
    reduced = load_training_splits(str(tmp_path / "data"), evaluate_on=None, do_reduce_labels=True)
    assert [(reduced.vocabulary.id2label[s["label"]], s["area"]) for s in reduced.train[0]["segments"]] == [
        ("boat", 32), ("rock", 16)]


def test_images_given_as_file_paths_or_undeclared_bytes_are_read(tmp_path, monkeypatch):
    """A CSV of image and label file paths (relative to the CSV's folder), and parquet written without `datasets`'
    features (pyarrow, pandas: `{"bytes", "path"}` structs), were refused as 'not a map per pixel (a classification
    dataset?)'. Both are read as images, streamed or not; a column of class names stays refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    label = np.zeros((16, 16), np.uint8)
    label[4:12, 4:12] = 1
    (tmp_path / "csv" / "files").mkdir(parents=True)
    for index in range(2):
        PIL.Image.new("RGB", (16, 16), (20, 40, 60)).save(tmp_path / "csv" / "files" / f"{index}.jpg")
        PIL.Image.fromarray(label).save(tmp_path / "csv" / "files" / f"{index}.png")
    (tmp_path / "csv" / "train.csv").write_text("image,label\nfiles/0.jpg,files/0.png\nfiles/1.jpg,files/1.png\n")
    (tmp_path / "pq").mkdir()
    files = {column: [{"bytes": (tmp_path / "csv" / "files" / f"{index}.{suffix}").read_bytes(), "path": None}
                      for index in range(2)] for column, suffix in (("image", "jpg"), ("label", "png"))}
    pq.write_table(pa.table(files), tmp_path / "pq" / "train.parquet")
    for folder in ("csv", "pq"):
        (tmp_path / folder / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
    monkeypatch.chdir(tmp_path / "pq")  # the CSV's paths are relative to its own folder, not to the working one
    for folder in ("csv", "pq"):
        for streaming in (False, True):
            splits = (load_streaming_splits if streaming else load_training_splits)(str(tmp_path / folder),
                                                                                  evaluate_on=None)
            row = next(iter(splits.train.dataset)) if streaming else splits.train[0]
            if streaming:
                row = splits.train.convert(row, 0)
            assert splits.layout.name == "semantic", (folder, streaming)
            assert [(segment["label"], segment["area"]) for segment in row["segments"]] == [(0, 192), (1, 64)]
    (tmp_path / "names").mkdir()
    (tmp_path / "names" / "train.csv").write_text("image,label\n../csv/files/0.jpg,boat\n")
    with pytest.raises(ValueError, match="column 'label' holds Value values, not a map per pixel"):
        load_training_splits(str(tmp_path / "names"), evaluate_on=None)


def test_class_ids_are_read_before_training_and_a_pass_is_remembered(tmp_path, monkeypatch):
    """Every split's maps are read when the splits load (an evaluation split's stray id named with its rows, as
    stored, and the ids as the maps store them under --do_reduce_labels); semantic_class_to_id naming 255 (the
    unlabelled id) is refused with its row; a split that passed is not decoded again until its rows change."""
    from seem_hf.data.hf_datasets import PanopticRows

    label = np.array([[1, 2], [255, 2]], np.uint8).repeat(8, 0).repeat(8, 1)
    stray = label.copy()
    stray[0, 0] = 9
    train, validation = _semantic_dataset([label] * 2), _semantic_dataset([label, stray, stray])
    datasets.DatasetDict({"train": train, "validation": validation}).save_to_disk(tmp_path / "data")
    (tmp_path / "data" / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
    with pytest.raises(ValueError) as error:
        load_training_splits(str(tmp_path / "data"), do_reduce_labels=True)
    assert ("split 'validation': 2 row(s) that the run would refuse when it reached them (checked before training "
            "starts):\n  row 1: class ids [9] in column 'label' are no label (labels: ids 1 'sea', 2 'boat', from "
            "id2label.json; 0 and 255 are unlabelled)") in str(error.value), str(error.value)
    assert "\n  row 2: class ids [9]" in str(error.value)
    held_out = load_training_splits(str(tmp_path / "data"), do_reduce_labels=True, validation_split="none",
                                    train_val_split=0.5, evaluate_on="validation", max_eval_samples=1)
    assert len(held_out.evaluation) == 1  # the training split alone passes

    instance = np.zeros((16, 16, 3), np.uint8)
    instance[:8, :, 0] = 1
    classes = [{"sea": 0, "boat": 1}, {"sea": 0, "void": 255}]
    _semantic_dataset([instance] * 2, semantic_class_to_id=classes).save_to_disk(tmp_path / "instance")
    with pytest.raises(ValueError, match=r"instance, split 'train', row 1: the label names \(column "
                                         r"'semantic_class_to_id'\) name id 255 'void', but 255 marks unlabelled"):
        load_training_splits(str(tmp_path / "instance"), evaluate_on=None)

    monkeypatch.setenv("SEEM_HF_VALIDATION_CACHE", str(tmp_path / "cache"))
    reads = []
    original = PanopticRows._class_id_problems
    monkeypatch.setattr(PanopticRows, "_class_id_problems", lambda self: reads.append(self.split) or original(self))
    for _ in range(2):
        load_training_splits(str(tmp_path / "data"), evaluate_on=None, do_reduce_labels=True)
    assert reads == ["train"]
    load_training_splits(str(tmp_path / "data"), evaluate_on=None, do_reduce_labels=True, max_train_samples=1)
    assert reads == ["train", "train"]


def test_label_maps_as_tools_save_them(tmp_path):
    """A grey label map saved with an opaque alpha channel (RGBA or LA PNGs) was refused as colours, and in a column
    named `annotation` read as instance channels; it is read by its ids. Transparent pixels, ids made fractional by
    a bilinear resize (a float map) and a map of another size than its image (found only when training reached the
    row, with no word of the fix) are refused before training, naming the row."""
    label = np.zeros((16, 16), np.uint8)
    label[4:12, 4:12] = 1
    opaque = np.full_like(label, 255)
    maps = {"rgba": PIL.Image.fromarray(np.dstack([label, label, label, opaque]), "RGBA"),
            "la": PIL.Image.fromarray(np.dstack([label, opaque]), "LA")}
    for name, annotation in maps.items():
        for column in ("label", "annotation"):
            data = datasets.Dataset.from_dict({"image": [PIL.Image.new("RGB", (16, 16))], column: [annotation]})
            data.cast_column("image", datasets.Image()).cast_column(column, datasets.Image()).save_to_disk(
                tmp_path / f"{name}_{column}")
            (tmp_path / f"{name}_{column}" / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
            splits = load_training_splits(str(tmp_path / f"{name}_{column}"), evaluate_on=None)
            assert splits.layout.name == "semantic", (name, column)
            assert [(s["label"], s["area"]) for s in splits.train[0]["segments"]] == [(0, 192), (1, 64)]
    transparent = np.dstack([label, label, label, opaque])
    transparent[:2, :, 3] = 0
    smooth = label.astype(np.float32)
    smooth[3, 3] = 0.5
    cases = {"transparent": (PIL.Image.fromarray(transparent, "RGBA"), (16, 16),
                             "holds a mode RGBA PNG with 32 transparent or translucent pixels"),
             "float": (PIL.Image.fromarray(smooth, "F"), (16, 16),
                       "holds 1 pixels whose class id is no whole number (such as 0.5)"),
             "size": (PIL.Image.fromarray(label[:, :12]), (16, 12), "the annotation is 12x16 pixels and the image "
                      "16x12 (their sides swapped"),
             "other": (PIL.Image.fromarray(label), (20, 16), "the annotation is 16x16 pixels and the image 20x16: a "
                       "map gives each pixel of its image a class")}
    for name, (annotation, size, message) in cases.items():
        good = PIL.Image.fromarray(label)
        data = datasets.Dataset.from_dict({"image": [PIL.Image.new("RGB", (16, 16)), PIL.Image.new("RGB", size)],
                                           "label": [good, annotation]})
        data.cast_column("image", datasets.Image()).cast_column("label", datasets.Image()).save_to_disk(
            tmp_path / name)
        (tmp_path / name / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
        with pytest.raises(ValueError) as error:
            load_training_splits(str(tmp_path / name), evaluate_on=None)
        assert "split 'train': 1 row(s) that the run would refuse" in str(error.value), str(error.value)
        assert "\n  row 1: " in str(error.value) and message in str(error.value), str(error.value)


def test_panoptic_rows_refuse_label_names_with_a_gap(tmp_path):
    """Panoptic rows' segments.label indexes the names of id2label.json, which were read in id order: {"0": "sea",
    "2": "boat"} named label 1 'boat' (and label 2 was past the set). A gap is refused, naming the file and the ids."""
    from seem_hf.data import id2rgb

    ids = np.ones((16, 16), np.int64)
    ids[4:12, 4:12] = 2
    segments = [{"id": 1, "category_id": 1, "label": 0, "isthing": False, "iscrowd": False, "bbox": [0.0, 0.0, 16.0,
                 16.0], "area": 192},
                {"id": 2, "category_id": 2, "label": 1, "isthing": True, "iscrowd": False, "bbox": [4.0, 4.0, 8.0,
                 8.0], "area": 64}]
    datasets.Dataset.from_list([{"image": PIL.Image.new("RGB", (16, 16)), "panoptic": PIL.Image.fromarray(id2rgb(ids)),
                                 "segments": segments}]).save_to_disk(tmp_path / "data")
    (tmp_path / "data" / "id2label.json").write_text(json.dumps({"0": "sea", "2": "boat"}))
    with pytest.raises(ValueError, match=r"id2label.json: the panoptic layout's segments.label indexes the label "
                                         r"names, so they must be numbered 0..1 without a gap; ids \[1\] are missing"):
        load_training_splits(str(tmp_path / "data"), evaluate_on=None)
    (tmp_path / "data" / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
    splits = load_training_splits(str(tmp_path / "data"), evaluate_on=None)
    assert [splits.vocabulary.id2label[s["label"]] for s in splits.train[0]["segments"]] == ["sea", "boat"]


def test_rows_naming_missing_files_are_listed_before_training(tmp_path):
    """A CSV of paths whose later rows name files that are not there (one in another case, as exported on Windows)
    failed when training reached them, with 'Cannot read the image ...: [Errno 2]' and 'Replace the file (a broken
    download?)'. Every such row is listed when the data loads, with the file in another case where there is one."""
    label = np.zeros((16, 16), np.uint8)
    label[4:12, 4:12] = 1
    (tmp_path / "data" / "files").mkdir(parents=True)
    for index in range(3):
        PIL.Image.new("RGB", (16, 16)).save(tmp_path / "data" / "files" / f"{index}.jpg")
        PIL.Image.fromarray(label).save(tmp_path / "data" / "files" / f"{index}.png")
    (tmp_path / "data" / "files" / "1.png").unlink()
    (tmp_path / "data" / "train.csv").write_text("image,label\nfiles/0.jpg,files/0.png\nfiles/1.jpg,files/1.png\n"
                                                 "files/2.jpg,files/2.PNG\n")
    (tmp_path / "data" / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
    with pytest.raises(ValueError) as error:
        load_training_splits(str(tmp_path / "data"), evaluate_on=None)
    files = tmp_path / "data" / "files"
    assert (f"split 'train': 2 row(s) that the run would refuse when it reached them (checked before training "
            f"starts):\n  row 1 ({files / '1.png'}): {files / '1.png'}: file is missing (an image of the dataset's "
            f"rows): correct the path, or drop the row.\n  row 2 ({files / '2.PNG'}): {files / '2.PNG'}: file is "
            "missing (an image of the dataset's rows); 2.png is there, its name in another case") in str(error.value)


def test_panoptic_rows_with_only_the_fields_that_matter(tmp_path):
    """Panoptic rows written by hand: segments of `id`, `label` and `isthing` failed deep in the batch with KeyError
    'bbox' (bbox and area are in the PNG, iscrowd defaults to false as in COCO); they train. Segments without
    `isthing` crashed with pyarrow's 'No match for FieldRef.Name(isthing)'; labels or iscrowd given as text ('0')
    were read as other values or failed late. Each is refused naming what the segments need, before training."""
    from seem_hf.data import id2rgb

    ids = np.ones((64, 64), np.int64)
    ids[4:30, 8:40] = 2

    def save(name, segments):
        datasets.Dataset.from_list([{"image": PIL.Image.new("RGB", (64, 64)), "segments": segments,
                                     "panoptic": PIL.Image.fromarray(id2rgb(ids))}]).save_to_disk(tmp_path / name)
        (tmp_path / name / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
        return str(tmp_path / name)

    splits = load_training_splits(save("plain", [{"id": 1, "label": 0, "isthing": False},
                                                 {"id": 2, "label": 1, "isthing": True}]), evaluate_on=None)
    assert [(s["area"], s["bbox"], s["iscrowd"]) for s in splits.train[0]["segments"]] == [
        (64 * 64 - 26 * 32, [0.0, 0.0, 64.0, 64.0], False), (26 * 32, [8.0, 4.0, 32.0, 26.0], False)]
    item = _first_item(splits.train)
    assert item["labels"].tolist() == [0, 1] and item["masks"].sum() == 64 * 64
    with pytest.raises(ValueError, match=r"column 'segments' must be a list of segments with \['id', 'label', "
                                         r"'isthing'\] .*its segments have \['id', 'label'\], without \['isthing'\]"):
        load_training_splits(save("no_isthing", [{"id": 1, "label": 0}, {"id": 2, "label": 1}]), evaluate_on=None)
    with pytest.raises(ValueError, match=r"row 0: segment 1 has label '0', segment 2 has label '1', not an integer: "
                                         r"a label is an index into the label names; segment 1 has iscrowd '0', "
                                         r"segment 2 has iscrowd 'yes'; give true/false \(or 0/1\)."):
        load_training_splits(save("texts", [{"id": 1, "label": "0", "isthing": False, "iscrowd": "0"},
                                            {"id": 2, "label": "1", "isthing": True, "iscrowd": "yes"}]),
                             evaluate_on=None)


def _first_item(rows):
    """The first training item of `rows`, augmented without scaling or flips."""
    from seem_hf.data import AugmentedPanopticDataset

    return AugmentedPanopticDataset(rows, LargeScaleJitter(64, 1.0, 1.0, flip_probability=0.0))[0]


def test_reduce_labels_on_panoptic_rows_is_refused(layouts):
    """--do_reduce_labels with the package's panoptic rows changed nothing without a word (they carry each segment's
    label); refused, streamed or not, naming why."""
    for load in (load_training_splits, load_streaming_splits):
        with pytest.raises(ValueError, match="--do_reduce_labels shifts the class ids of semantic and instance maps"):
            load(str(layouts["panoptic"]), evaluate_on=None, do_reduce_labels=True)


def test_images_cut_short_are_listed_before_training(tmp_path):
    """A JPEG or PNG image cut short (an interrupted download or copy) failed only when training reached its row
    ('image file is truncated', possibly hours in): the rows' images were opened for their size alone. Each file's
    end is now read (a JPEG's end-of-image marker, a PNG's IEND chunk) when the data loads, without decoding, and
    every such row is listed with a WebP cut short (PIL's WebP reader reads the whole file when it opens one); a JPEG
    followed by appended data (as phones write) is whole; embedded bytes are read the same way."""
    rng = np.random.default_rng(0)
    label = np.zeros((48, 64), np.uint8)
    label[8:40, 8:56] = 1
    (tmp_path / "data" / "files").mkdir(parents=True)
    picture = PIL.Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    lines = ["image,label"]
    for index, suffix in enumerate(["jpg", "jpg", "png", "jpg", "webp"]):
        path = tmp_path / "data" / "files" / f"{index}.{suffix}"
        picture.save(path)
        PIL.Image.fromarray(label).save(tmp_path / "data" / "files" / f"{index}_label.png")
        lines.append(f"files/{index}.{suffix},files/{index}_label.png")
    for index in (1, 2, 4):
        path = next((tmp_path / "data" / "files").glob(f"{index}.*"))
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    with open(tmp_path / "data" / "files" / "3.jpg", "ab") as file:
        file.write(b"\x00" * 16 + b"appended by a phone camera: not image data")
    (tmp_path / "data" / "train.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "data" / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
    with pytest.raises(ValueError) as error:
        load_training_splits(str(tmp_path / "data"), evaluate_on=None)
    files = tmp_path / "data" / "files"
    text = str(error.value)
    assert "split 'train': 3 row(s) that the run would refuse when it reached them (checked before training" in text
    for index, kind in ((1, "JPEG"), (2, "PNG")):
        suffix = {"JPEG": "jpg", "PNG": "png"}[kind]
        assert (f"\n  row {index} ({files / f'{index}_label.png'}): Cannot read the image {files / f'{index}.{suffix}'}"
                f": the file ends before its {kind} data do (cut short, as by an interrupted download or copy). "
                "Replace the file (a broken download or export?), or drop the row.") in text, text
    assert f"\n  row 4 ({files / '4_label.png'}): Cannot read the image {files / '4.webp'}: " in text  # PIL reads it
    assert "row 3" not in text and "row 0" not in text

    whole = (files / "0.jpg").read_bytes()
    rows = datasets.Dataset.from_dict({
        "image": [{"bytes": whole, "path": None}, {"bytes": whole[:-200], "path": None}],
        "label": [PIL.Image.fromarray(label)] * 2,
    }).cast_column("image", datasets.Image()).cast_column("label", datasets.Image())
    rows.save_to_disk(tmp_path / "embedded")
    (tmp_path / "embedded" / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
    with pytest.raises(ValueError, match=r"1 row\(s\) .*\n  row 1: Cannot read the image \(embedded bytes\): the file "
                                         r"ends before its JPEG data do"):
        load_training_splits(str(tmp_path / "embedded"), evaluate_on=None)


def test_rows_without_an_image_or_a_map_are_named(tmp_path):
    """A row whose label map is empty (None: a CSV line without its mask path, a missing value in parquet) failed the
    load with numpy's bare 'too many indices for array: array is 0-dimensional'; one whose image is empty loaded and
    failed when training reached it with "'NoneType' object has no attribute 'height'". Both are listed before
    training, naming the row and the column; a panoptic row without its image is named when read."""
    label = np.zeros((16, 16), np.uint8)
    label[4:12, 4:12] = 1
    rows = datasets.Dataset.from_dict({
        "image": [PIL.Image.new("RGB", (16, 16)), None, PIL.Image.new("RGB", (16, 16))],
        "label": [PIL.Image.fromarray(label), PIL.Image.fromarray(label), None],
    }).cast_column("image", datasets.Image()).cast_column("label", datasets.Image())
    rows.save_to_disk(tmp_path / "semantic")
    (tmp_path / "semantic" / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
    with pytest.raises(ValueError) as error:
        load_training_splits(str(tmp_path / "semantic"), evaluate_on=None)
    assert ("split 'train': 2 row(s) that the run would refuse when it reached them (checked before training starts):\n"
            "  row 1: column 'image' is empty in this row: give the row its image, or drop the row.\n"
            "  row 2: column 'label' is empty in this row: give the row its annotation, or drop the row."
            ) in str(error.value), str(error.value)

    panoptic = _splits(tmp_path / "shapes")["train"]
    image = panoptic.features["image"]
    panoptic = panoptic.map(lambda row, index: {"image": None if index == 1 else row["image"]}, with_indices=True,
                            features=panoptic.features).cast_column("image", image)
    datasets.DatasetDict({"train": panoptic}).save_to_disk(tmp_path / "panoptic")
    splits = load_training_splits(str(tmp_path / "panoptic"), evaluate_on=None)
    with pytest.raises(ValueError, match=r"split 'train', row 1: column 'image' is empty in this row: give the row its "
                                         r"image, or drop the row\."):
        splits.train[1]

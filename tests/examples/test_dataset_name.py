"""Issue 22, item 1: each example trains from `--dataset_name`, a `datasets` folder in each layout (the package's
panoptic rows saved with save_to_disk, semantic maps, 3-channel instance annotations), built from the bundled
shapes data, and names the layout in its first line."""

from __future__ import annotations

import json

import datasets
import numpy as np
import PIL.Image
import pytest

from tests.data.test_hf_datasets import write_layouts
from tests.examples.test_example_runs import EXAMPLES, _tiny
from tests.helpers import load_example as _example


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    return write_layouts(tmp_path_factory.mktemp("layouts"))


@pytest.mark.parametrize("layout", ["panoptic", "semantic", "instance"])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_trains_a_step_from_each_layout(layouts, name, layout, tmp_path, capsys):
    output = tmp_path / "run"
    _example(name).main(["--dataset_name", str(layouts[layout]), "--output_dir", str(output), "--max_steps", "1",
                         "--eval_strategy", "no", *_tiny(name)])
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith(f"Dataset {layouts[layout]}: layout '{layout}'"), first_line
    assert ("stuff-only panoptic" in first_line) == (layout == "semantic")
    assert json.loads((output / "trainer_state.json").read_text())["global_step"] == 1
    card = (output / "README.md").read_text()
    assert f"the `datasets` dataset `{layouts[layout]}`" in card


def test_evaluation_uses_the_validation_split_or_a_held_out_fraction(layouts, tmp_path):
    arguments = ["--output_dir", str(tmp_path / "run"), "--max_steps", "1", "--eval_steps", "1",
                 *_tiny("finetune_lseg")]
    metrics = _example("finetune_lseg").main(["--dataset_name", str(layouts["semantic"]), *arguments])
    assert "eval_miou" in metrics
    datasets.load_from_disk(str(layouts["instance"]))["train"].save_to_disk(tmp_path / "train_only")
    metrics = _example("finetune_lseg").main(["--dataset_name", str(tmp_path / "train_only"), "--train_val_split",
                                              "0.5", *arguments])
    assert "eval_miou" in metrics


def _semantic_folder(folder, labels, id2label) -> None:
    """A `save_to_disk` folder of 64 px images with these label maps, and its id2label.json."""
    images = [PIL.Image.new("RGB", (64, 64), (30, 90, 160))] * len(labels)
    data = datasets.Dataset.from_dict({"image": images, "label": [PIL.Image.fromarray(label) for label in labels]})
    data.cast_column("image", datasets.Image()).cast_column("label", datasets.Image()).save_to_disk(folder)
    (folder / "id2label.json").write_text(json.dumps(id2label))


def test_label_maps_are_checked_before_training(tmp_path):
    """A class id no label names, in the last row of a semantic dataset, failed the run only when a batch reached
    the row (hours in, on a large dataset); an id2label.json naming 255 trained every unlabelled pixel as that class.
    Both are refused before training, naming the row or the file, the ids and the label set."""
    label = np.zeros((64, 64), np.uint8)
    label[16:48, 16:48] = 1
    label[:4] = 255
    stray = label.copy()
    stray[60:, 60:] = 7
    arguments = ["--output_dir", str(tmp_path / "run"), "--max_steps", "1", "--eval_strategy", "no",
                 *_tiny("finetune_lseg")]
    _semantic_folder(tmp_path / "stray", [label, label, stray], {"0": "sea", "1": "boat"})
    with pytest.raises(ValueError) as error:
        _example("finetune_lseg").main(["--dataset_name", str(tmp_path / "stray"), *arguments])
    assert "split 'train': 1 row(s) that the run would refuse when it reached them (checked before training " \
           "starts):\n  row 2: class ids [7] in column 'label' are no label (labels: ids 0 'sea', 1 'boat', from " \
           "id2label.json; 255 is unlabelled)" in str(error.value), str(error.value)
    assert not (tmp_path / "run" / "trainer_state.json").exists()

    _semantic_folder(tmp_path / "void", [label, label], {"0": "sea", "1": "boat", "255": "void"})
    with pytest.raises(ValueError) as error:
        _example("finetune_lseg").main(["--dataset_name", str(tmp_path / "void"), *arguments])
    assert (f"the label names ({tmp_path / 'void' / 'id2label.json'}) name id 255 'void', but 255 marks unlabelled "
            "pixels") in str(error.value) and "remove 'void' from the label names" in str(error.value)


def test_image_folders_as_transformers_semantic_example_reads_them(tmp_path):
    """datasets' imagefolder layouts: a metadata.csv per split pairing `file_name` with `label_file_name` trains; one
    whose `label` column holds paths relative to the metadata file failed deep in a batch with a bare
    FileNotFoundError ('masks/0.png') and now trains too; a path that is nowhere is named when the data loads; a
    folder of images and masks without metadata (every mask read as an image, folder names as a ClassLabel) was
    'a classification dataset?' and is told how to pair them."""
    label = np.zeros((64, 64), np.uint8)
    label[16:48, 16:48] = 1
    arguments = ["--output_dir", str(tmp_path / "run"), "--max_steps", "1", "--eval_strategy", "no",
                 *_tiny("finetune_lseg")]

    def folder(name, header, line):
        for index in range(2):
            (tmp_path / name / "train" / "images").mkdir(parents=True, exist_ok=True)
            (tmp_path / name / "train" / "masks").mkdir(exist_ok=True)
            PIL.Image.new("RGB", (64, 64), (30, 90, 160)).save(tmp_path / name / "train" / "images" / f"{index}.jpg")
            PIL.Image.fromarray(label).save(tmp_path / name / "train" / "masks" / f"{index}.png")
        if header:
            lines = [header] + [line.format(index=index) for index in range(2)]
            (tmp_path / name / "train" / "metadata.csv").write_text("\n".join(lines) + "\n")
        (tmp_path / name / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
        return str(tmp_path / name)

    for name, header in (("standard", "file_name,label_file_name"), ("paths", "file_name,label")):
        _example("finetune_lseg").main(["--dataset_name", folder(name, header, "images/{index}.jpg,masks/{index}.png"),
                                        *arguments])
        assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 1
    with pytest.raises(ValueError, match="column 'label' names image files, and its first, 'labels/0.png', is not "
                                         "there"):
        _example("finetune_lseg").main(["--dataset_name", folder("typo", "file_name,label",
                                                                 "images/{index}.jpg,labels/{index}.png"), *arguments])
    with pytest.raises(ValueError) as error:
        _example("finetune_lseg").main(["--dataset_name", folder("bare", None, None), *arguments])
    assert "as an image folder without a metadata file: every picture in it, label maps included, became a row of " \
           "column 'image'" in str(error.value) and "file_name,label_file_name" in str(error.value), str(error.value)


def test_an_ade20k_folder_tree_trains_with_its_validation_split(tmp_path):
    """ADEChallengeData2016's layout, images/training/*.jpg beside annotations/training/*.png (and validation), was
    read by load_dataset as a classification image folder (every map one more image, 'training' and 'validation'
    a ClassLabel) and refused. It is read as splits train and validation of image + label pairs, streamed or not;
    an image without a label map and a label map without an image are listed by file before anything trains."""
    from seem_hf.data.hf_datasets import load_training_splits
    from seem_hf.data.streaming import load_streaming_splits

    label = np.zeros((64, 64), np.uint8)
    label[16:48, 16:48] = 1
    root = tmp_path / "ADEChallengeData2016"
    for folder, names in (("training", ["ADE_train_1", "ADE_train_2", "ADE_train_3"]),
                          ("validation", ["ADE_val_1", "ADE_val_2"])):
        (root / "images" / folder).mkdir(parents=True)
        (root / "annotations" / folder).mkdir(parents=True)
        for name in names:
            PIL.Image.new("RGB", (64, 64), (30, 90, 160)).save(root / "images" / folder / f"{name}.jpg")
            PIL.Image.fromarray(label).save(root / "annotations" / folder / f"{name}.png")
    (root / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
    splits = load_training_splits(str(root))
    assert splits.layout.name == "semantic" and (len(splits.train), len(splits.evaluation)) == (3, 2)
    assert [s["label"] for s in splits.train[0]["segments"]] == [0, 1]
    assert load_streaming_splits(str(root)).train.dataset.n_shards == 3
    metrics = _example("finetune_lseg").main(["--dataset_name", str(root), "--output_dir", str(tmp_path / "run"),
                                              "--max_steps", "1", "--eval_steps", "1", *_tiny("finetune_lseg")])
    assert "eval_miou" in metrics

    (root / "annotations" / "training" / "ADE_train_2.png").rename(root / "annotations" / "training" / "extra.png")
    with pytest.raises(ValueError) as error:
        _example("finetune_lseg").main(["--dataset_name", str(root), "--output_dir", str(tmp_path / "again"),
                                        "--max_steps", "1", "--eval_strategy", "no", *_tiny("finetune_lseg")])
    assert (f"{root}: images/ and annotations/ pair each image with the label map of the same name in the same split "
            "folder; 2 problems:\n"
            "  images/training/ADE_train_2.jpg has no label map (annotations/training/ADE_train_2.*)\n"
            "  annotations/training/extra.png has no image (images/training/extra.*)\n"
            "Add the missing files, or move the unpaired ones out of the folder.") in str(error.value), str(error.value)

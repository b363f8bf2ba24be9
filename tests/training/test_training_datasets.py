"""The examples' dataset wiring (`seem_hf.training.arguments.training_datasets`)."""

from __future__ import annotations

import shutil

import pytest
from transformers import TrainingArguments

from seem_hf.data import make_shapes_dataset
from seem_hf.training.arguments import DataArguments, training_datasets


def test_no_validation_split_needed_without_evaluation(tmp_path):
    """A folder with only `train/` trains with `--eval_strategy no`; with evaluation on, the missing split is
    named."""
    paths = make_shapes_dataset(tmp_path / "data", num_train=2, num_val=1, image_size=64, seed=0)
    shutil.rmtree(paths["val"]["image_dir"])
    shutil.rmtree(paths["val"]["panoptic_dir"])
    for key in ("panoptic_json", "grounding_json"):
        paths["val"][key].unlink()
    shutil.rmtree(paths["val"]["semantic_dir"])
    data_args = DataArguments(data_dir=str(tmp_path / "data"), image_size=64)
    arguments = dict(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    train, validation, vocabulary = training_datasets(data_args, TrainingArguments(eval_strategy="no", **arguments))
    assert len(train) == 2 and validation is None and len(vocabulary) == 8
    with pytest.raises(ValueError, match="panoptic_val.json: file is missing"):
        training_datasets(data_args, TrainingArguments(eval_strategy="steps", **arguments))


def test_a_split_without_images_is_named(tmp_path):
    """A split whose JSON lists no image: its loading failed in `datasets` ('Keys mismatch ... and {}'), a training
    split of none in torch's sampler ('num_samples=0'), and an evaluation of none reported 0 for every metric. The
    empty split is named with the ways out; without evaluation an empty val split is left out. `--dataset_name`
    rows cut to none by --max_train_samples are named too."""
    import json

    import datasets
    import PIL.Image

    paths = make_shapes_dataset(tmp_path / "data", num_train=2, num_val=0, image_size=64, seed=0)
    data_args = DataArguments(data_dir=str(tmp_path / "data"), image_size=64)
    arguments = dict(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    train, validation, _ = training_datasets(data_args, TrainingArguments(eval_strategy="no", **arguments))
    assert len(train) == 2 and validation is None
    with pytest.raises(ValueError, match=f"No evaluation images: {paths['val']['panoptic_json']} has none, and an "
                                         r"evaluation of no image reports 0 for every metric. Add images to it, "
                                         r"evaluate on the training images \(--eval_split train\) or turn evaluation "
                                         r"off \(--eval_strategy no\)."):
        training_datasets(data_args, TrainingArguments(eval_strategy="steps", **arguments))
    data_args.eval_split = "train"
    assert len(training_datasets(data_args, TrainingArguments(eval_strategy="steps", **arguments))[1]) == 2
    empty = json.loads(paths["train"]["panoptic_json"].read_text())
    empty["images"], empty["annotations"] = [], []
    paths["train"]["panoptic_json"].write_text(json.dumps(empty))
    paths["train"]["grounding_json"].unlink()
    with pytest.raises(ValueError, match=f"No training images: {paths['train']['panoptic_json']} has none. Add images "
                                         "to it."):
        training_datasets(data_args, TrainingArguments(eval_strategy="no", **arguments))
    rows = datasets.Dataset.from_dict({"image": [PIL.Image.new("RGB", (8, 8))] * 2,
                                       "label": [PIL.Image.new("L", (8, 8))] * 2})
    rows.cast_column("image", datasets.Image()).cast_column("label", datasets.Image()).save_to_disk(tmp_path / "hf")
    (tmp_path / "hf" / "id2label.json").write_text(json.dumps({"0": "sea"}))
    named = DataArguments(dataset_name=str(tmp_path / "hf"), image_size=64, max_train_samples=0)
    with pytest.raises(ValueError, match=f"No training images: split 'train' of {tmp_path / 'hf'} \\(its first "
                                         r"--max_train_samples 0 rows\) has none. Add images to it, or raise "
                                         r"--max_train_samples."):
        training_datasets(named, TrainingArguments(eval_strategy="no", **arguments))


def test_a_data_dir_that_is_no_dataset_root_is_named(tmp_path):
    """A --data_dir with a typo only said that `<typo>/annotations/panoptic_train.json` was missing; one in another
    layout (a COCO instances JSON) said the same. Both name the folder, the layout read and what the folder holds."""
    arguments = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    with pytest.raises(ValueError, match=f"--data_dir {tmp_path / 'nowhere'} is no folder: give the root of a "
                                         "COCO-panoptic dataset"):
        training_datasets(DataArguments(data_dir=str(tmp_path / "nowhere")), arguments)
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    (tmp_path / "coco" / "annotations" / "instances_train2017.json").write_text("{}")
    with pytest.raises(ValueError) as error:
        training_datasets(DataArguments(data_dir=str(tmp_path / "coco")), arguments)
    assert str(error.value).startswith(f"--data_dir {tmp_path / 'coco'} has no annotations/panoptic_train.json: the "
                                       "examples read the COCO-panoptic layout")
    assert "Its JSON files: ['annotations/instances_train2017.json']" in str(error.value)
    assert "coco-instances" in str(error.value)


def test_stream_trains_on_new_images_and_evaluates_on_the_held_out_set(tmp_path):
    """`--stream`: an example trains on the unlimited shapes stream (no dataset folder written; every step's images
    are new samples) and evaluates on the stream's held-out set of `--num_val` images, said in the model card."""

    import numpy as np

    from seem_hf.data import ShapesStream
    from seem_hf.testing import FIXTURES

    from ..helpers import load_example

    example = load_example("finetune_detr_panoptic")
    output = tmp_path / "run"
    metrics = example.main(["--output_dir", str(output), "--stream", "true", "--num_val", "2", "--image_size", "64",
                            "--model_name_or_path", str(FIXTURES / "tiny-random-detr_panoptic"), "--max_steps", "2",
                            "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2",
                            "--eval_steps", "2", "--save_strategy", "no", "--disable_tqdm", "true"])
    assert "eval_pq" in metrics and not (output / "shapes").exists()
    assert "ShapesStream.held_out" in (output / "README.md").read_text()

    arguments = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True, seed=3)
    train, evaluation, vocabulary = training_datasets(DataArguments(stream=True, num_val=2, image_size=64), arguments)
    assert len(train) >= 10**6 and len(evaluation) == 2 and len(vocabulary) == 8
    held_out = ShapesStream.held_out(2, seed=0, image_size=64)
    for index in range(2):  # unaugmented held-out images; training images are the stream's, all different
        assert np.array_equal(evaluation[index]["image"], np.asarray(held_out[index]["image"].convert("RGB")))
    images = [train[index]["image"] for index in range(4)]
    assert all(not np.array_equal(images[i], images[j]) for i in range(4) for j in range(i + 1, 4))
    with pytest.raises(ValueError, match="drop --data_dir"):
        training_datasets(DataArguments(stream=True, data_dir=str(tmp_path)), arguments)
    with pytest.raises(ValueError, match="drop --dataset_name"):  # was silently ignored for the stream
        training_datasets(DataArguments(stream=True, dataset_name=str(tmp_path)), arguments)


def test_eval_split_train_evaluates_the_training_images_without_augmentation(tmp_path):
    """`--eval_split train` (the overfitting check the learning tests run): no validation split needed, and the
    evaluation rows are the training images at their size, unjittered and unflipped."""
    make_shapes_dataset(tmp_path / "data", num_train=3, num_val=0, image_size=64, seed=0)
    data_args = DataArguments(data_dir=str(tmp_path / "data"), image_size=64, eval_split="train")
    arguments = dict(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True, eval_strategy="steps")
    train, evaluation, _ = training_datasets(data_args, TrainingArguments(**arguments))
    assert len(evaluation) == len(train) == 3
    assert [evaluation[i]["image_id"] for i in range(3)] == [train[i]["image_id"] for i in range(3)]
    assert (evaluation[0]["image"] == evaluation[0]["image"]).all()  # deterministic rows

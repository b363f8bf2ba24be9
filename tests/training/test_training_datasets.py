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

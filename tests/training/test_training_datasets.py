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

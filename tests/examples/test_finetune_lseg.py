"""examples/finetune_lseg.py driven as a user would: in-process (train, evaluate, save, reload with the Auto
classes), with an adapter strategy, and evaluated by two processes (torchrun) with the numbers of one."""

from __future__ import annotations

import sys

import pytest
import torch
from transformers import AutoModel, AutoProcessor

from seem_hf.testing import FIXTURES

from ..helpers import free_port, load_example
from .test_finetune_detr_panoptic import ROOT, _printed_metrics, _run

SCRIPT = ROOT / "examples" / "finetune_lseg.py"
TINY = ["--model_name_or_path", str(FIXTURES / "tiny-random-lseg"),
        "--num_train", "4", "--num_val", "4", "--image_size", "64", "--per_device_train_batch_size", "2",
        "--per_device_eval_batch_size", "2", "--logging_steps", "1", "--disable_tqdm", "true"]


def _example():
    return load_example("finetune_lseg")


def test_trains_evaluates_and_saves_a_folder_the_auto_classes_load(tmp_path):
    output = tmp_path / "run"
    metrics = _example().main(["--output_dir", str(output), "--max_steps", "2", "--eval_steps", "2",
                               "--save_strategy", "no", *TINY])
    assert {"eval_loss", "eval_miou", "eval_pixel_accuracy"} <= set(metrics)
    assert "eval_pq" not in metrics  # semantic labels: no panoptic metrics
    model, processor = AutoModel.from_pretrained(output), AutoProcessor.from_pretrained(output)
    assert type(model).__name__ == "LSegForSemanticSegmentation"
    assert processor.id2label == model.config.id2label and processor.id2label[4] == "circle"
    shipped = AutoModel.from_pretrained(FIXTURES / "tiny-random-lseg")
    assert not torch.equal(model.head.weight, shipped.head.weight)
    assert torch.equal(  # the text tower is frozen
        model.text_encoder.text_projection.weight, shipped.text_encoder.text_projection.weight
    )


def test_adapter_strategy(tmp_path, capsys):
    output = tmp_path / "adapted"
    _example().main(["--output_dir", str(output), "--max_steps", "1", "--strategy", "freeze_backbone_adapt_head",
                     "--lora_rank", "2", "--eval_strategy", "no", "--save_strategy", "no", *TINY])
    assert "freeze_backbone_adapt_head, 1 process(es): trainable" in capsys.readouterr().out
    assert (output / "adapter_model.safetensors").exists()


def test_image_size_must_suit_the_model(tmp_path):
    with pytest.raises(ValueError, match="multiples of 32"):
        _example().main(["--output_dir", str(tmp_path), "--image_size", "100"])


def test_two_processes_evaluate_like_one(tmp_path):
    arguments = [str(SCRIPT), "--evaluate_only", "true", "--output_dir", str(tmp_path / "eval"), *TINY,
                 "--num_val", "5"]
    one = _printed_metrics(_run([sys.executable, *arguments], cwd=tmp_path))
    two = _printed_metrics(_run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                 "--master_port", str(free_port()), *arguments], cwd=tmp_path))
    for key in ("eval_loss", "eval_miou", "eval_pixel_accuracy"):  # the loss: a mean over images of each one's
        assert two[key] == pytest.approx(one[key], abs=1e-3), key
    assert one["eval_pixel_accuracy"] > 0

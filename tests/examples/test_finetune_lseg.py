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


def test_resume_from_checkpoint_names_what_it_resumes(tmp_path):
    """`--resume_from_checkpoint true` (Trainer.train's True, as users type it) failed with "Can't find a valid
    checkpoint at true"; a run's output folder (its final save, no optimiser state) was resumed with a fresh
    optimiser and schedule without a word; a missing folder was told only after the data and the model had loaded.
    `true` resumes the latest checkpoint; the others are refused before anything loads, naming the checkpoints there
    are."""
    import json

    output = tmp_path / "run"
    common = ["--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", "1", *TINY]
    _example().main(["--output_dir", str(output), "--max_steps", "2", *common])
    _example().main(["--output_dir", str(output), "--max_steps", "3", "--resume_from_checkpoint", "true", *common])
    state = json.loads((output / "checkpoint-3" / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3]  # steps 1-2 kept
    with pytest.raises(ValueError, match=rf"--resume_from_checkpoint {output} is a run's output folder, not one "
                                         rf"of its checkpoints: .* Resume from its latest checkpoint, "
                                         rf"{output}/checkpoint-3"):
        _example().main(["--output_dir", str(tmp_path / "other"), "--max_steps", "4", "--resume_from_checkpoint",
                         str(output), *common])
    with pytest.raises(ValueError, match=rf"--resume_from_checkpoint {output}/checkpoint-9: no such folder. "
                                         rf"--output_dir {output} holds \['{output}/checkpoint-1', .*checkpoint-3'\]"):
        _example().main(["--output_dir", str(output), "--max_steps", "4", "--resume_from_checkpoint",
                         str(output / "checkpoint-9"), *common])
    with pytest.raises(ValueError, match="resumes the latest checkpoint-N folder of --output_dir .*fresh, and it has "
                                         "none"):
        _example().main(["--output_dir", str(tmp_path / "fresh"), "--max_steps", "1", "--resume_from_checkpoint",
                         "true", *common])


def test_training_arguments_are_honoured_or_refused_by_name(tmp_path):
    """--num_train_epochs alone trained the example's default --max_steps (300) instead; LSeg took --lr_milestones,
    --lr_gamma and --bottleneck_size and ignored them; --max_steps 0 with --num_train_epochs 0 saved the untrained
    model with a card; --gradient_accumulation_steps 0 ended in a ZeroDivisionError, a batch size of 0 in torch's
    'batch_size should be a positive integer', '--lr_milestones 0.5,abc' in float()'s error, a negative
    --backbone_lr_multiplier trained the backbone up the loss, --fp16 on the CPU trained in float32, and a batch
    larger than the data under --dataloader_drop_last trained 0 steps and saved the model; --max_train_samples and
    --do_reduce_labels without --dataset_name were ignored. Each is honoured or refused naming the argument."""
    import json

    output = tmp_path / "epochs"
    _example().main(["--output_dir", str(output), "--num_train_epochs", "2", "--eval_strategy", "no",
                     "--save_strategy", "no", *TINY, "--num_train", "2"])
    assert json.loads((output / "trainer_state.json").read_text())["global_step"] == 2  # 1 batch x 2 epochs
    output = tmp_path / "milestones"
    _example().main(["--output_dir", str(output), "--max_steps", "2", "--lr_milestones", "0.5", "--lr_gamma", "0.1",
                     "--learning_rate", "1e-3", "--backbone_lr_multiplier", "1", "--eval_strategy", "no",
                     "--save_strategy", "no", *TINY])
    rates = [entry["learning_rate"] for entry in json.loads((output / "trainer_state.json").read_text())["log_history"]
             if "learning_rate" in entry]
    assert rates == pytest.approx([1e-3, 1e-4])
    for arguments, message in (
        (["--max_steps", "0", "--num_train_epochs", "0"], "--max_steps 0 and --num_train_epochs 0.0 train nothing"),
        (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps 0: must be at least 1"),
        (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size 0: must be at least 1"),
        (["--lr_milestones", "0.5,abc"], "--lr_milestones '0.5,abc': give comma-separated fractions"),
        (["--lr_milestones", "0.9,0.5"], "each is a fraction of training between 0 and 1 (exclusive), increasing"),
        (["--backbone_lr_multiplier", "-1"], "--backbone_lr_multiplier -1.0: must be 0 or more"),
        (["--fp16", "--use_cpu", "true"], "--fp16 runs on a GPU: on the CPU accelerate leaves the forward in float32"),
        (["--max_train_samples", "2", "--do_reduce_labels"], "--max_train_samples, --do_reduce_labels apply to "
         "--dataset_name only: the bundled dataset would train without them"),
        (["--per_device_train_batch_size", "8", "--dataloader_drop_last", "true"],
         "has 4 training images for a batch of 8 (--per_device_train_batch_size 8 x 1 process(es)): no step would "
         "train"),
    ):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            _example().main(["--output_dir", str(tmp_path / "refused"), *TINY, *arguments])
        assert not (tmp_path / "refused" / "config.json").exists()  # refused before training: no model saved


def test_label_names_must_be_targets_the_model_takes(tmp_path):
    """--label_names naming no target of the model (a typo, or mask_labels copied from transformers' instance example)
    was ignored without a word; refused naming the targets the model takes. Its own target trains."""
    common = ["--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no", *TINY]
    with pytest.raises(ValueError, match=r"--label_names mask_labels class_labels: \['mask_labels', 'class_labels'\] "
                                         r"are no target of LSegForSemanticSegmentation, whose forward takes "
                                         r"\['labels'\]"):
        _example().main(["--output_dir", str(tmp_path / "wrong"), "--label_names", "mask_labels", "class_labels",
                         *common])
    _example().main(["--output_dir", str(tmp_path / "right"), "--label_names", "labels", *common])
    assert (tmp_path / "right" / "trainer_state.json").exists()

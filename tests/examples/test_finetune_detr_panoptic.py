"""examples/finetune_detr_panoptic.py driven as a user would: in-process, resumed, with the detector frozen,
through `accelerate launch`, and evaluated by two processes (torchrun) with the numbers of one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageSegmentation, AutoProcessor

from seem_hf import DetrPanopticForSegmentation
from seem_hf.adapters import load_adapter
from seem_hf.data import SHAPES_VOCABULARY, make_shapes_dataset
from seem_hf.testing import FIXTURES

from ..helpers import free_port, load_example

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "finetune_detr_panoptic.py"
TINY = ["--model_name_or_path", str(FIXTURES / "tiny-random-detr_panoptic"),
        "--num_train", "4", "--num_val", "4", "--image_size", "96", "--per_device_train_batch_size", "2",
        "--per_device_eval_batch_size", "2", "--logging_steps", "1", "--disable_tqdm", "true"]


def _example():
    return load_example("finetune_detr_panoptic")


def _weights(folder) -> dict[str, torch.Tensor]:
    return DetrPanopticForSegmentation.from_pretrained(folder).state_dict()


def test_trains_evaluates_saves_and_resumes(tmp_path):
    example = _example()
    output = tmp_path / "run"
    metrics = example.main(["--output_dir", str(output), "--max_steps", "2", "--save_steps", "2",
                            "--eval_strategy", "no", *TINY])
    assert metrics == {}
    model = AutoModelForImageSegmentation.from_pretrained(output)
    assert type(model).__name__ == "DetrPanopticForSegmentation"
    processor = AutoProcessor.from_pretrained(output)
    assert processor.id2label == model.config.id2label and processor.thing_label_ids == [4, 5, 6, 7]
    assert not torch.equal(
        _weights(output)["mask_head.output_conv.weight"],
        _weights(FIXTURES / "tiny-random-detr_panoptic")["mask_head.output_conv.weight"],
    )
    metrics = example.main(["--output_dir", str(output), "--max_steps", "3", "--save_steps", "3",
                            "--resume_from_checkpoint", str(output / "checkpoint-2"), "--eval_strategy", "steps",
                            "--eval_steps", "3", *TINY])
    state = json.loads((output / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    for key in ("eval_loss", "eval_pq", "eval_sq", "eval_rq", "eval_pq_things", "eval_pq_stuff", "eval_miou"):
        assert key in metrics and metrics[key] == metrics[key]  # present and not NaN


@pytest.mark.parametrize("stage", ["detector", "mask_head"])
def test_two_stage_recipe_trains_one_part_per_stage(tmp_path, stage):
    output = tmp_path / stage
    _example().main(["--output_dir", str(output), "--max_steps", "2", "--stage", stage,
                     "--eval_strategy", "no", "--save_strategy", "no", *TINY])
    before, after = _weights(FIXTURES / "tiny-random-detr_panoptic"), _weights(output)
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    in_mask_head = {key for key in changed if key.startswith(("mask_head.", "bbox_attention."))}
    assert changed and in_mask_head == (changed if stage == "mask_head" else set())


def test_adapter_strategy_trains_and_saves_a_reloadable_adapter(tmp_path, capsys):
    output = tmp_path / "adapted"
    _example().main(["--output_dir", str(output), "--max_steps", "2", "--strategy", "adapt_backbone_adapt_head",
                     "--bottleneck_size", "8", "--lora_rank", "2", "--lr_milestones", "0.5", "--warmup_steps", "1",
                     "--eval_strategy", "no", "--save_strategy", "no", *TINY])
    assert "joint stage, adapt_backbone_adapt_head, 1 process(es): trainable" in capsys.readouterr().out
    assert (output / "adapter_model.safetensors").exists() and not (output / "model.safetensors").exists()
    base = DetrPanopticForSegmentation.from_pretrained(FIXTURES / "tiny-random-detr_panoptic").eval()
    adapted = load_adapter(DetrPanopticForSegmentation.from_pretrained(FIXTURES / "tiny-random-detr_panoptic"), output)
    pixel_values = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        change = adapted.eval()(pixel_values=pixel_values).logits - base(pixel_values=pixel_values).logits
        assert change.abs().max() > 0


def _run(command: list[str], cwd: Path) -> str:
    environment = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, env=environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _printed_metrics(stdout: str) -> dict:
    """The metrics of the run whose end-of-run summary `stdout` shows, read from the folder it names."""
    lines = [line for line in stdout.splitlines() if line.startswith("Done. Everything is in ")]
    assert lines, stdout[-2000:]
    folder = Path(lines[-1].removeprefix("Done. Everything is in ").rstrip("/"))
    assert "eval_results.json" in stdout
    return json.loads((folder / "eval_results.json").read_text())


def test_accelerate_launch(tmp_path):
    stdout = _run([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
                   str(SCRIPT), "--output_dir", str(tmp_path / "run"), "--max_steps", "2", "--eval_steps", "2",
                   "--save_strategy", "no", *TINY], cwd=tmp_path)
    assert "eval_pq" in _printed_metrics(stdout)
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_two_processes_train(tmp_path):
    stdout = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                   "--master_port", str(free_port()), str(SCRIPT), "--output_dir", str(tmp_path / "run"),
                   "--max_steps", "2", "--eval_steps", "2", "--save_strategy", "no", *TINY], cwd=tmp_path)
    assert "eval_pq" in _printed_metrics(stdout) and "2 process(es)" in stdout
    assert not torch.equal(
        _weights(tmp_path / "run")["mask_head.output_conv.weight"],
        _weights(FIXTURES / "tiny-random-detr_panoptic")["mask_head.output_conv.weight"],
    )


def test_two_processes_evaluate_like_one(tmp_path):
    arguments = [str(SCRIPT), "--evaluate_only", "true", "--output_dir", str(tmp_path / "eval"), *TINY]
    one = _printed_metrics(_run([sys.executable, *arguments], cwd=tmp_path))
    two = _printed_metrics(_run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                 "--master_port", str(free_port()), *arguments], cwd=tmp_path))
    assert set(one) == set(two)
    # The segmentation metrics are sums over images; the loss is a mean over images of each image's loss, whose
    # random draws are seeded per image (1e-3: metrics in percent, float32 losses summed in another order).
    for key in set(one):
        assert two[key] == pytest.approx(one[key], abs=1e-3), key
    assert one["eval_pq"] > 0 or one["eval_miou"] > 0  # the comparison is not between two zeros only


@pytest.mark.parametrize("strategy", ["full", "adapt_backbone_adapt_head"])
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, strategy):
    """4 training images, batch 2: checkpoint-2 ends epoch 1. A run stopped after it and resumed must end
    exactly where an uninterrupted run ends (same data, augmentation, RNG, optimiser and schedule states)."""
    example = _example()
    common = ["--max_steps", "4", "--save_steps", "2", "--eval_strategy", "no", "--seed", "3",
              "--strategy", strategy, "--bottleneck_size", "8", "--lora_rank", "2", *TINY]
    weights_file = "model.safetensors" if strategy == "full" else "adapter_model.safetensors"
    example.main(["--output_dir", str(tmp_path / "straight"), *common])
    interrupted = tmp_path / "interrupted"
    example.main(["--output_dir", str(interrupted), *common])
    # What a run killed after its second step leaves behind: checkpoint-2 only.
    import shutil

    shutil.rmtree(interrupted / "checkpoint-4")
    (interrupted / weights_file).unlink()
    example.main(["--output_dir", str(interrupted), "--resume_from_checkpoint", str(interrupted / "checkpoint-2"),
                  *common])
    straight = load_file(tmp_path / "straight" / weights_file)
    resumed, halfway = load_file(interrupted / weights_file), load_file(interrupted / "checkpoint-2" / weights_file)
    assert straight.keys() == resumed.keys()
    assert not [name for name in straight if not torch.equal(straight[name], resumed[name])]
    assert [name for name in straight if not torch.equal(straight[name], halfway[name])]  # steps 3-4 did train


def test_resuming_on_data_of_other_labels_is_refused(tmp_path):
    """Resuming a run from a checkpoint trained on other labels (names, or the same names in another order) trained
    the checkpoint's class rows as this data's labels without a word; refused before the first step, naming both
    label sets and the way to start a new run from the checkpoint. The labels are read from the trainer state's
    record, or from `config.json` for a checkpoint saved without one."""
    from seem_hf.training.trainer import checkpoint_labels

    example = _example()
    common = ["--max_steps", "1", "--save_steps", "1", "--eval_strategy", "no", "--image_size", "64",
              "--per_device_train_batch_size", "2", "--disable_tqdm", "true", "--model_name_or_path",
              str(FIXTURES / "tiny-random-detr_panoptic")]
    data = tmp_path / "data"
    make_shapes_dataset(data, num_train=2, num_val=0, image_size=64)
    for unused in ("panoptic_val.json", "grounding_train.json"):  # no evaluation, and DETR reads no sentences
        (data / "annotations" / unused).unlink()
    example.main(["--data_dir", str(data), "--output_dir", str(tmp_path / "run"), *common])
    checkpoint = tmp_path / "run" / "checkpoint-1"
    names = [category.name for category in SHAPES_VOCABULARY.categories]
    assert checkpoint_labels(checkpoint) == names
    panoptic_json = data / "annotations" / "panoptic_train.json"
    original = json.loads(panoptic_json.read_text())
    for change, expected in ((lambda name: f"{name} 2", "this run's data lacks ['sky', "),
                             (lambda name: name, "the same names in another order")):
        panoptic = json.loads(json.dumps(original))
        if expected.startswith("the same"):  # star (id 8) first: labels follow the category ids
            panoptic["categories"][-1]["id"], panoptic["categories"][0]["id"] = 1, 8
            for segment in (s for a in panoptic["annotations"] for s in a["segments_info"]):
                segment["category_id"] = {1: 8, 8: 1}.get(segment["category_id"], segment["category_id"])
        for category in panoptic["categories"]:
            category["name"] = change(category["name"])
        panoptic_json.write_text(json.dumps(panoptic))
        with pytest.raises(ValueError, match=f"--resume_from_checkpoint {checkpoint} was trained on 8 labels") as error:
            example.main(["--data_dir", str(data), "--output_dir", str(tmp_path / "run"), *common, "--max_steps", "2",
                          "--resume_from_checkpoint", str(checkpoint)])
        assert expected in str(error.value) and f"--model_name_or_path {checkpoint}" in str(error.value)
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    del state["stateful_callbacks"]["LabelSetCallback"]
    (checkpoint / "trainer_state.json").write_text(json.dumps(state))
    assert checkpoint_labels(checkpoint) == names  # from config.json
    assert not (tmp_path / "run" / "checkpoint-2").exists()

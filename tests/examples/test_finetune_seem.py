"""examples/finetune_seem.py driven as a user would: in-process (train, evaluate, save, reload with the Auto
classes), each of SEEM's four fine-tuning strategies, resumed, and evaluated by two processes with the numbers of
one."""

from __future__ import annotations

import shutil
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoProcessor

from seem_hf.testing import FIXTURES

from ..helpers import free_port, load_example
from .test_finetune_detr_panoptic import ROOT, _printed_metrics, _run

SCRIPT = ROOT / "examples" / "finetune_seem.py"
TINY = ["--model_name_or_path", str(FIXTURES / "tiny-random-seem"),
        "--num_train", "4", "--num_val", "4", "--image_size", "64", "--per_device_train_batch_size", "2",
        "--per_device_eval_batch_size", "2", "--logging_steps", "1", "--disable_tqdm", "true"]


def _example():
    return load_example("finetune_seem")


def test_trains_evaluates_and_saves_a_folder_the_auto_classes_load(tmp_path):
    output = tmp_path / "run"
    metrics = _example().main(["--output_dir", str(output), "--max_steps", "2", "--eval_steps", "2",
                               "--save_strategy", "no", "--lr_milestones", "0.5", "--warmup_steps", "1",
                               "--spatial_label_weight", "2", *TINY])
    assert {"eval_loss", "eval_pq", "eval_miou", "eval_referring_ciou", "eval_interactive_noc@85",
            "eval_interactive_miou@1", "eval_interactive_label_accuracy"} <= set(metrics)
    assert 1 <= metrics["eval_interactive_noc@90"] <= 5 and 0 <= metrics["eval_referring_ciou"] <= 1
    model, processor = AutoModel.from_pretrained(output), AutoProcessor.from_pretrained(output)
    assert model.config.spatial_label_weight == 2.0  # the run's recipe travels with the folder
    assert type(model).__name__ == "SeemForUniversalSegmentation"
    assert processor.default_labels == list(model.config.id2label.values())
    shipped = AutoModel.from_pretrained(FIXTURES / "tiny-random-seem")
    assert not torch.equal(model.decoder.query_feat.weight, shipped.decoder.query_feat.weight)
    assert torch.equal(model.language_encoder.lang_proj.weight, shipped.language_encoder.lang_proj.weight)
    # the referring and interactive groups trained too: their own parameters moved
    for name in ("decoder.mask_spatial_embed.0.weight", "decoder.pn_indicator.weight"):
        assert not torch.equal(model.get_parameter(name), shipped.get_parameter(name)), name


def test_generic_only_leaves_the_prompt_parameters(tmp_path):
    output = tmp_path / "generic"
    _example().main(["--output_dir", str(output), "--max_steps", "1", "--tasks", "generic", "--eval_strategy", "no",
                     "--save_strategy", "no", *TINY])
    model, shipped = AutoModel.from_pretrained(output), AutoModel.from_pretrained(FIXTURES / "tiny-random-seem")
    assert torch.equal(model.decoder.pn_indicator.weight, shipped.decoder.pn_indicator.weight)
    assert not torch.equal(model.decoder.query_feat.weight, shipped.decoder.query_feat.weight)
    with pytest.raises(ValueError, match="--tasks"):
        _example().main(["--output_dir", str(output), "--tasks", "referring"])


def test_prompt_collator_draws_sentences_prompts_and_clicks():
    import tempfile

    from seem_hf.data import AugmentedPanopticDataset, LargeScaleJitter, load_coco_panoptic, make_shapes_dataset
    from seem_hf.training import DetrPanopticCollator, SeemPromptCollator

    with tempfile.TemporaryDirectory() as folder:
        paths = make_shapes_dataset(folder, num_train=4, num_val=1, image_size=64, seed=0)["train"]
        dataset = load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"],
                                     paths["grounding_json"])
        items = AugmentedPanopticDataset(dataset, LargeScaleJitter(64, 0.8, 1.2), seed=0)
        rows = [items[0], items[1]]
    processor = AutoProcessor.from_pretrained(FIXTURES / "tiny-random-seem")
    collator = SeemPromptCollator(DetrPanopticCollator(processor.image_processor), processor, seed=0)
    batch, again = collator(rows), collator(rows)
    assert torch.equal(batch["grounding_input_ids"], again["grounding_input_ids"])  # seeded by the batch
    assert torch.equal(batch["spatial_positive_masks"], again["spatial_positive_masks"])
    assert 0 <= batch["click_rounds"] <= 5
    for index, (row, target) in enumerate(zip(rows, batch["labels"])):
        sentences = int(batch["grounding_attention_mask"][index].any(-1).sum())
        assert 1 <= sentences <= 4 and len(target["grounding_masks"]) == sentences
        prompts = len(target["spatial_masks"])
        assert prompts == min(10, int((~row["iscrowd"]).sum()))
        positive = batch["spatial_positive_masks"][index, :prompts]
        assert positive.flatten(1).any(1).all()  # every prompt marks pixels ...
        assert not (positive & ~target["spatial_masks"].bool()).any()  # ... inside its own target
        # each prompt's label is its segment's (the generic targets hold every segment with its class)
        assert len(target["spatial_class_labels"]) == prompts
        for mask, label in zip(target["spatial_masks"], target["spatial_class_labels"]):
            segment = [i for i, candidate in enumerate(target["masks"]) if torch.equal(candidate, mask)]
            assert segment and int(target["class_labels"][segment[0]]) == int(label)
        # each referring target is a segment of the image (the bundled sentences describe segments)
        for mask in target["grounding_masks"]:
            assert any(torch.equal(mask, segment) for segment in target["masks"])


@pytest.mark.parametrize(
    "strategy",
    ["freeze_backbone_tune_head", "freeze_backbone_adapt_head", "adapt_backbone_tune_head", "adapt_backbone_adapt_head"],
)
def test_each_of_seem_s_strategies_trains(tmp_path, capsys, strategy):
    output = tmp_path / strategy
    _example().main(["--output_dir", str(output), "--max_steps", "1", "--strategy", strategy, "--bottleneck_size", "8",
                     "--lora_rank", "2", "--eval_strategy", "no", "--save_strategy", "no", *TINY])
    printed = capsys.readouterr().out
    assert f"{strategy}, 1 process(es): trainable" in printed
    saved = "model.safetensors" if strategy == "freeze_backbone_tune_head" else "adapter_model.safetensors"
    assert (output / saved).exists()
    if saved == "adapter_model.safetensors":
        names = load_file(output / saved).keys()
        assert not [name for name in names if "language_encoder" in name]
        assert any("lora_" in name for name in names)
        assert any("backbone" in name for name in names) == strategy.startswith("adapt_backbone")


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    example = _example()
    common = ["--max_steps", "4", "--save_steps", "2", "--eval_strategy", "no", "--seed", "5", *TINY]
    example.main(["--output_dir", str(tmp_path / "straight"), *common])
    interrupted = tmp_path / "interrupted"
    example.main(["--output_dir", str(interrupted), *common])
    shutil.rmtree(interrupted / "checkpoint-4")
    (interrupted / "model.safetensors").unlink()
    example.main(["--output_dir", str(interrupted), "--resume_from_checkpoint", str(interrupted / "checkpoint-2"),
                  *common])
    straight, resumed = load_file(tmp_path / "straight" / "model.safetensors"), load_file(interrupted / "model.safetensors")
    assert not [name for name in straight if not torch.equal(straight[name], resumed[name])]


def test_two_processes_evaluate_like_one(tmp_path):
    arguments = [str(SCRIPT), "--evaluate_only", "true", "--output_dir", str(tmp_path / "eval"), *TINY,
                 "--num_val", "5"]
    one = _printed_metrics(_run([sys.executable, *arguments], cwd=tmp_path))
    two = _printed_metrics(_run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                 "--master_port", str(free_port()), *arguments], cwd=tmp_path))
    # The loss too: a mean over images of each image's loss, its point draws seeded per image (1e-3: metrics in
    # percent, float32 losses summed in another order).
    assert set(one) == set(two)
    for key in set(one):
        assert two[key] == pytest.approx(one[key], abs=1e-3), key
    assert one["eval_pixel_accuracy"] > 0


def test_two_processes_train_every_query_group(tmp_path):
    """Distributed training with prompts: processes draw different prompt counts and click rounds per step (so
    some parameters get no gradient on one of them), which DDP must accept."""
    output = tmp_path / "ddp"
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
          str(free_port()), str(SCRIPT), "--output_dir", str(output), "--max_steps", "3", "--eval_strategy", "no",
          "--save_strategy", "no", *TINY], cwd=tmp_path)
    trained, shipped = AutoModel.from_pretrained(output), AutoModel.from_pretrained(FIXTURES / "tiny-random-seem")
    assert not torch.equal(trained.decoder.pn_indicator.weight, shipped.decoder.pn_indicator.weight)

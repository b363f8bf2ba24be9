"""One training step of each model's tiny fixture through `SegmentationTrainer`, recording the gradient that the
optimiser is about to apply: shared by tests/training/test_distributed.py (one process) and, run as a script under
`torchrun`, by its processes (`python -m tests.training.distributed_setup OUT_DIR`: each model's averaged gradient
saved to OUT_DIR/<model>.pt by process 0).

What it fixes so that two computations of the same objective can be compared to float rounding:
- dropout 0 (the fixtures' DETR has 0.1);
- the loss's and matcher's random points (`seem_hf.loss.point_sampling.uniform_points`) are a fixed set per
  call, the same for every mask: each process draws from its own stream of torch's generator in image order, so a
  split batch would sample other points than the union (the same objective in expectation, not bit-comparable);
- SEEM's prompts come from `SeemPromptCollator`, whose draws follow the seed and each image's id (the same for an
  image in any batch); visual prompts are left out (`max_visual_prompts=0`): the model samples their pixels from
  torch's generator image after image, which a split batch also draws in another order;
- LSeg without the BatchNorm of its fusion blocks: batch statistics are per process (docs/training.md), so a batch
  split over processes is normalised otherwise than the union. `lseg_batchnorm` (the fixture as it is) is run too,
  on images with as many labelled pixels, to check that choice: 2 processes then equal one process accumulating
  one image per micro-batch.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import torch
from transformers import TrainerCallback

from seem_hf.testing import FIXTURES
from seem_hf.training.processes import exit_process

MODELS = ("detr_panoptic", "lseg", "seem")
IMAGE_SIZE = 64


def fixed_points(num_masks: int, num_points: int, device) -> torch.Tensor:
    """The same `num_points` points for every mask and call, instead of fresh uniform draws."""
    points = torch.rand(1, num_points, 2, generator=torch.Generator().manual_seed(num_points))
    return points.to(device).expand(num_masks, -1, -1).contiguous()


def fix_point_draws() -> None:
    import seem_hf.loss.matcher
    import seem_hf.loss.point_sampling

    seem_hf.loss.point_sampling.uniform_points = fixed_points
    seem_hf.loss.matcher.uniform_points = fixed_points


def shapes_rows(folder: Path, indices: tuple[int, ...] = (0, 1), min_scale: float = 0.5):
    """Augmented rows of the bundled shapes dataset (jitter seeded by image id: the same in every process).
    With `min_scale` < 1 images are padded by different amounts, so labelled pixels differ too."""
    from torch.utils.data import Subset

    from seem_hf.data import AugmentedPanopticDataset, LargeScaleJitter, load_coco_panoptic, make_shapes_dataset

    paths = make_shapes_dataset(folder, num_train=max(indices) + 1, num_val=0, image_size=IMAGE_SIZE, seed=0)["train"]
    dataset = load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"],
                                 paths["grounding_json"])
    jitter = LargeScaleJitter(IMAGE_SIZE, min_scale, 1.0, flip_probability=0.0)
    return Subset(AugmentedPanopticDataset(dataset, jitter, seed=0), list(indices))


class GradientRecorder(TrainerCallback):
    """The gradient of every parameter just before the optimiser step (after DDP's averaging and accumulation)."""

    def __init__(self):
        self.gradients = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        unwrapped = getattr(model, "module", model)
        self.gradients = {name: parameter.grad.detach().clone() for name, parameter in unwrapped.named_parameters()
                          if parameter.grad is not None}


def build(name: str):
    """(model, collator) of the tiny fixture `name`, as its example builds them."""
    from transformers import AutoConfig

    from seem_hf import (
        DetrPanopticForSegmentation,
        DetrPanopticImageProcessor,
        LSegForSemanticSegmentation,
        LSegProcessor,
        SeemForUniversalSegmentation,
        SeemProcessor,
    )
    from seem_hf.training import DetrPanopticCollator, LabelSetCollator, SeemPromptCollator, SemanticCollator

    folder = FIXTURES / f"tiny-random-{name}"  # (LSeg's is the same folder with or without BatchNorm)
    torch.manual_seed(0)  # what a changed config leaves uninitialised (LSeg's fusion biases) is the same everywhere
    if name == "detr_panoptic":
        model = DetrPanopticForSegmentation.from_pretrained(folder, dropout=0.0)
        return model, DetrPanopticCollator(DetrPanopticImageProcessor.from_pretrained(folder))
    if name in ("lseg", "lseg_batchnorm"):
        folder = FIXTURES / "tiny-random-lseg"
        config = AutoConfig.from_pretrained(folder)
        config.vision_config.use_batch_norm_in_fusion_residual = name == "lseg_batchnorm"
        model = LSegForSemanticSegmentation.from_pretrained(folder, config=config)
        names = [model.config.id2label[index] for index in sorted(model.config.id2label)]
        return model, SemanticCollator(LSegProcessor.from_pretrained(folder), names, model.config.ignore_index)
    model = SeemForUniversalSegmentation.from_pretrained(folder)
    processor = SeemProcessor.from_pretrained(folder)
    names = [model.config.id2label[index] for index in sorted(model.config.id2label)]
    tokens = processor.tokenize_training_labels(names, random.Random(0))  # one template per label
    prompts = SeemPromptCollator(DetrPanopticCollator(processor.image_processor), processor, seed=0,
                                 max_sentences=2, max_visual_prompts=0, max_click_rounds=0)
    return model, LabelSetCollator(prompts, lambda rows: {"input_ids": tokens})


def train_one_step(name: str, dataset, output_dir: Path, batch_size: int = 1, accumulation: int = 1,
                   **arguments) -> tuple[dict[str, torch.Tensor], float]:
    """Run `SegmentationTrainer.train` for one optimiser step; return the gradient it applies and the training loss
    it reports."""
    from transformers import TrainingArguments

    from seem_hf.training import SegmentationTrainer

    model, collator = build(name)
    recorder = GradientRecorder()
    args = TrainingArguments(
        output_dir=str(output_dir), max_steps=1, per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation, use_cpu=True, report_to=[], remove_unused_columns=False,
        save_strategy="no", disable_tqdm=True, logging_strategy="no", seed=0, dataloader_num_workers=0, **arguments,
    )
    trainer = SegmentationTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                                  categories=[], postprocess=None, callbacks=[recorder])
    result = trainer.train()
    return recorder.gradients, result.training_loss


def main(out_dir: str) -> None:
    """Under torchrun: every model, one image per process; process 0 saves the averaged gradients."""
    fix_point_draws()
    out = Path(out_dir)
    rows = shapes_rows(out / f"data-{os.environ.get('LOCAL_RANK', '0')}")
    equal_rows = shapes_rows(out / f"data-equal-{os.environ.get('LOCAL_RANK', '0')}", min_scale=1.0)
    for name, dataset in [(name, rows) for name in MODELS] + [("lseg_batchnorm", equal_rows)]:
        gradients, _ = train_one_step(name, dataset, out / f"run-{name}", batch_size=1)
        if int(os.environ.get("RANK", "0")) == 0:
            torch.save(gradients, out / f"{name}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
    exit_process()  # the process group is still open: leave without gloo's teardown deadlock

"""Fine-tune DETR-panoptic on a COCO-panoptic dataset with transformers' Trainer.

    python examples/finetune_detr_panoptic.py                      # tiny model, bundled dataset, a few minutes
    accelerate launch examples/finetune_detr_panoptic.py --model_name_or_path detr-r50-panoptic \
        --data_dir data/my_dataset --output_dir runs/mine --max_steps 20000
    torchrun --nproc_per_node 2 examples/finetune_detr_panoptic.py ...

Arguments are transformers' `TrainingArguments` plus the model and data arguments below. With no `--data_dir`,
the bundled shapes dataset is generated under `<output_dir>/shapes`. `--data_dir` is a folder in the layout
`make_shapes_dataset` writes (COCO's): `train/`, `val/`, `annotations/panoptic_{train,val}.json` and the PNG
folders beside them. `--freeze_detector` is DETR's second stage: the detector is frozen and only the attention
map and the mask head learn (the original's `--frozen_weights`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser, TrainingArguments

from seem_hf import DetrPanopticForSegmentation, DetrPanopticImageProcessor, DetrPanopticProcessor
from seem_hf.data import (
    LargeScaleJitter,
    coco_panoptic_paths,
    load_coco_panoptic,
    make_shapes_dataset,
    panoptic_training_transform,
)
from seem_hf.data.coco_panoptic import vocabulary_of
from seem_hf.testing import FIXTURES
from seem_hf.training import DetrPanopticCollator, SegmentationTrainer, parameter_groups


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default=str(FIXTURES / "tiny-random-detr_panoptic"), metadata={"help": "checkpoint folder or Hub id"}
    )
    freeze_detector: bool = field(default=False, metadata={"help": "train only the attention map and mask head"})
    backbone_lr_multiplier: float = field(default=0.1, metadata={"help": "backbone learning rate / base rate"})
    panoptic_rule: str = field(
        default="maskformer", metadata={"help": "post-processing for evaluation: maskformer (score > 0.5) or detr"}
    )
    evaluate_only: bool = field(default=False, metadata={"help": "evaluate the checkpoint, do not train"})


@dataclass
class DataArguments:
    data_dir: str | None = field(default=None, metadata={"help": "COCO-panoptic root; default: the bundled dataset"})
    image_size: int = field(default=256, metadata={"help": "side of the square training and evaluation images"})
    min_scale: float = field(default=0.5, metadata={"help": "large-scale jitter: smallest scale"})
    max_scale: float = field(default=2.0, metadata={"help": "large-scale jitter: largest scale"})
    num_train: int = field(default=64, metadata={"help": "bundled dataset: training images"})
    num_val: int = field(default=16, metadata={"help": "bundled dataset: validation images"})


QUICK_DEFAULTS = dict(
    output_dir="outputs/finetune_detr_panoptic",
    max_steps=600,
    per_device_train_batch_size=4,
    per_device_eval_batch_size=4,
    # The quick run's recipe (a tiny model from scratch); DETR's own for R50 is 1e-4 with gradient clip 0.1.
    learning_rate=1e-3,
    weight_decay=1e-4,
    max_grad_norm=1.0,
    eval_strategy="steps",
    eval_steps=200,
    save_steps=200,
    logging_steps=10,
    report_to="none",
    remove_unused_columns=False,
    dataloader_num_workers=0,
)


def _splits(data_args: DataArguments, training_args: TrainingArguments) -> dict:
    if data_args.data_dir is not None:
        return coco_panoptic_paths(data_args.data_dir)
    root = Path(training_args.output_dir) / "shapes"
    # One process writes the bundled dataset; the others wait for it, then read the same files.
    with training_args.main_process_first(desc="writing the bundled dataset"):
        if training_args.process_index == 0:
            make_shapes_dataset(root, data_args.num_train, data_args.num_val, data_args.image_size, seed=0)
    return coco_panoptic_paths(root)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    parser.set_defaults(**QUICK_DEFAULTS, use_cpu=not torch.cuda.is_available())
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)

    splits = _splits(data_args, training_args)
    datasets = {
        split: load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"])
        for split, paths in splits.items()
    }
    vocabulary = vocabulary_of(datasets["train"])
    size = data_args.image_size
    train_jitter = LargeScaleJitter(size, data_args.min_scale, data_args.max_scale)
    eval_resize = LargeScaleJitter(size, 1.0, 1.0, flip_probability=0.0)  # deterministic: fit and pad
    train = datasets["train"].with_transform(panoptic_training_transform(train_jitter, seed=training_args.seed))
    evaluation = datasets["val"].with_transform(panoptic_training_transform(eval_resize, seed=0))

    model = DetrPanopticForSegmentation.from_pretrained(model_args.model_name_or_path)
    if model.config.id2label != vocabulary.id2label:
        raise ValueError(
            f"The model's labels {model.config.id2label} differ from the dataset's {vocabulary.id2label}; "
            "convert or re-initialise the classification head for this label set first."
        )
    if model_args.freeze_detector:
        model.detr.requires_grad_(False)
    processor = DetrPanopticImageProcessor.from_pretrained(model_args.model_name_or_path)
    processor.id2label, processor.thing_label_ids = vocabulary.id2label, vocabulary.thing_label_ids
    processor.label_colors = vocabulary.label_colors
    optimizer = torch.optim.AdamW(
        parameter_groups(
            model,
            training_args.learning_rate,
            training_args.weight_decay,
            backbone_prefixes=("detr.model.backbone.",),
            backbone_multiplier=model_args.backbone_lr_multiplier,
        )
    )

    def postprocess(outputs, target_sizes):
        return processor.post_process_panoptic_segmentation(
            outputs, target_sizes=target_sizes, rule=model_args.panoptic_rule
        )

    trainer = SegmentationTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=DetrPanopticCollator(processor),
        optimizers=(optimizer, None),
        categories=vocabulary.coco_categories(),
        postprocess=postprocess,
    )
    metrics = {}
    if not model_args.evaluate_only:
        trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        trainer.save_model()
        if trainer.is_world_process_zero():
            DetrPanopticProcessor(processor).save_pretrained(training_args.output_dir)
    if model_args.evaluate_only or training_args.eval_strategy != "no":
        metrics = trainer.evaluate()
        if trainer.is_world_process_zero():
            print({key: round(value, 3) for key, value in metrics.items()})
    if training_args.push_to_hub:
        trainer.push_to_hub()
    return metrics


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main(sys.argv[1:])

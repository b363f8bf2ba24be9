"""Fine-tune DETR-panoptic on a COCO-panoptic dataset with transformers' Trainer.

    python examples/finetune_detr_panoptic.py   # embedded model, bundled dataset: 1000 steps at 128 px, ~0.11 s/step
                                                # on one CPU thread (measured), about 3 minutes with its evaluations
    accelerate launch examples/finetune_detr_panoptic.py --model_name_or_path detr-r50-panoptic \
        --data_dir data/my_dataset --output_dir runs/mine --max_steps 20000
    python examples/finetune_detr_panoptic.py --dataset_name data/my_saved_dataset   # a `datasets` folder or Hub name
    torchrun --nproc_per_node 2 examples/finetune_detr_panoptic.py ...

Arguments are transformers' `TrainingArguments` plus the model and data arguments below. With no `--data_dir`,
the bundled shapes dataset is generated under `<output_dir>/shapes`. `--data_dir` is a folder in the layout
`make_shapes_dataset` writes (COCO's): `train/`, `val/`, `annotations/panoptic_{train,val}.json` and the PNG
folders beside them. `--dataset_name` is a `datasets` dataset instead (Hub name or local folder, in the package's
panoptic rows, semantic maps or 3-channel instance annotations: `seem_hf.data.hf_datasets`; semantic maps train as
stuff-only panoptic).

What trains:
- `--stage joint` (default): the whole model with the full set loss. `--stage detector`: DETR's first stage, the
  detector alone on the boxes of every segment (no mask head). `--stage mask_head`: DETR's second stage, the
  detector frozen and only the attention map and mask head learning (the original's `--frozen_weights`).
- `--strategy` (joint stage): `full`, `freeze_backbone_tune_head`, `freeze_backbone_adapt_head`,
  `adapt_backbone_tune_head` or `adapt_backbone_adapt_head` (see `seem_hf.adapters`); adapted strategies save
  a PEFT adapter in `--output_dir`, loaded back with `seem_hf.adapters.load_adapter(base_model, output_dir)`.
- `--lr_milestones 0.88889,0.96296` switches to SEEM's schedule: warm-up (`--warmup_steps`), then x`--lr_gamma`
  at each milestone.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import torch
from transformers import set_seed

from seem_hf import DetrPanopticForSegmentation, DetrPanopticImageProcessor, DetrPanopticProcessor
from seem_hf.adapters import describe_parameters, prepare_for_fine_tuning
from seem_hf.training import DetrPanopticCollator, SegmentationTrainer, exit_process
from seem_hf.training.arguments import (
    EMBEDDED_CHECKPOINTS,
    QUICK_DEFAULTS,
    DataArguments,
    ExampleTrainingArguments,
    FineTuningArguments,
    parse_arguments,
    train_evaluate_and_save,
    training_datasets,
)


@dataclass
class ModelArguments:
    _argument_group_name = "model"

    model_name_or_path: str = field(
        default=str(EMBEDDED_CHECKPOINTS / "detr_panoptic-shapes"),
        metadata={"help": "checkpoint folder or Hub id (default: the package's embedded detr_panoptic-shapes)"},
    )
    stage: str = field(
        default="joint",
        metadata={"help": "joint (everything, full loss), detector (boxes only) or mask_head (detector frozen)",
                  "choices": ["joint", "detector", "mask_head"]},
    )
    panoptic_rule: str = field(
        default="maskformer", metadata={"help": "post-processing for evaluation: maskformer (score > 0.5) or detr"}
    )
    dropout: float = field(
        default=0.0, metadata={"help": "transformer dropout (DETR's 0.1 suits COCO-sized data; 0 learns things sooner "
                               "from a few images: see DEFAULTS)"}
    )


DEFAULTS = dict(
    QUICK_DEFAULTS,
    output_dir="outputs/finetune_detr_panoptic",
    max_steps=1000,
    # The quick run's recipe (a small model on a few dozen images); DETR's own for R50 on COCO is 1e-4 with gradient
    # clip 0.1, dropout 0.1 and a step decay (--lr_milestones 0.667). Here a constant rate and no dropout: each
    # makes things (the shapes) learn sooner. Measured on 4 images at 96 px from the tiny random model, evaluated on
    # them: things PQ at 600 steps 70.8 (constant, dropout 0), 46.7 (constant, dropout 0.1), 42.1 (linear decay,
    # dropout 0); stuff reaches 90+ either way. At 64 px things stay below 35 whatever the recipe: DETR's stride-32
    # map is 2 x 2 there, hence 128 px here.
    learning_rate=1e-3,
    lr_scheduler_type="constant",
    weight_decay=1e-4,
    max_grad_norm=1.0,
    eval_steps=250,
    save_steps=250,
)


def main(argv: list[str] | None = None) -> dict[str, float]:
    argv = list(sys.argv[1:] if argv is None else argv)
    model_args, tuning, data_args, training_args = parse_arguments(
        (ModelArguments, FineTuningArguments, DataArguments, ExampleTrainingArguments),
        dict(DEFAULTS, image_size=128, use_cpu=not torch.cuda.is_available()), argv, __doc__,
    )

    train, evaluation, vocabulary = training_datasets(data_args, training_args)
    set_seed(training_args.seed)  # before anything random is created: adapters, new heads
    model = DetrPanopticForSegmentation.from_pretrained(model_args.model_name_or_path, dropout=model_args.dropout)
    relabelled = model.set_label_set(vocabulary.id2label)  # the data's labels, in its order; known rows kept
    if model_args.stage == "joint":
        model = prepare_for_fine_tuning(
            model, tuning.strategy, bottleneck_size=tuning.bottleneck_size, lora_rank=tuning.lora_rank
        )
    elif tuning.strategy != "full":
        raise ValueError("--strategy applies to the joint stage; the detector and mask_head stages train in full.")
    else:
        # Each stage trains one part; the other part is frozen so that it stays as given (and so that
        # distributed training does not wait for gradients of parameters the forward pass never used).
        model.requires_grad_(True)
        frozen = model.detr if model_args.stage == "mask_head" else (model.bbox_attention, model.mask_head)
        for part in frozen if isinstance(frozen, tuple) else (frozen,):
            part.requires_grad_(False)
    if training_args.process_index == 0:
        print(f"{model_args.stage} stage, {tuning.strategy}, {training_args.world_size} process(es): "
              f"{describe_parameters(model)}")
        if relabelled:
            print(relabelled)
    processor = DetrPanopticImageProcessor.from_pretrained(model_args.model_name_or_path)
    processor.id2label, processor.thing_label_ids = vocabulary.id2label, vocabulary.thing_label_ids
    processor.label_colors = vocabulary.label_colors

    def postprocess(outputs, target_sizes):
        return processor.post_process_panoptic_segmentation(
            outputs, target_sizes=target_sizes, rule=model_args.panoptic_rule
        )

    trainer = SegmentationTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=DetrPanopticCollator(processor, boxes_only=model_args.stage == "detector"),
        eval_data_collator=DetrPanopticCollator(processor),
        categories=vocabulary.coco_categories(),
        postprocess=postprocess,
        semantic_postprocess=processor.post_process_semantic_segmentation,
        lr_multipliers={"detr.model.backbone": tuning.backbone_lr_multiplier},
        lr_milestones=tuning.milestones,
        lr_gamma=tuning.lr_gamma,
    )
    return train_evaluate_and_save(trainer, DetrPanopticProcessor(processor), training_args, tuning.evaluate_only,
                                   data_args=data_args, command=["python", "examples/finetune_detr_panoptic.py", *argv])


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main(sys.argv[1:])
    exit_process()

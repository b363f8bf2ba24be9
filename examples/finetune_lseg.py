"""Fine-tune LSeg on a COCO-panoptic dataset's semantic labels with transformers' Trainer.

    python examples/finetune_lseg.py   # embedded model, bundled dataset: 300 steps at 128 px, ~0.09 s/step on one CPU
                                       # thread (measured), about 1 minute with its evaluations
    accelerate launch examples/finetune_lseg.py --model_name_or_path lseg-vit-l16 --data_dir data/my_dataset \
        --output_dir runs/lseg --max_steps 20000 --image_size 480
    python examples/finetune_lseg.py --dataset_name data/my_saved_dataset   # a `datasets` folder or Hub name
    torchrun --nproc_per_node 2 examples/finetune_lseg.py ...

Arguments are transformers' `TrainingArguments` plus the model arguments below and the data arguments of
`seem_hf.training.arguments.DataArguments` (the bundled shapes dataset unless `--data_dir` names a folder in
COCO's layout, or `--dataset_name` a `datasets` dataset: Hub name or local folder, in the package's panoptic rows,
semantic maps or 3-channel instance annotations, see `seem_hf.data.hf_datasets`). The label set is the dataset's
category names: each pixel is classified among them by the scaled cosine similarity of its embedding with each
name's CLIP embedding (per-pixel cross-entropy, crowd and unlabelled pixels ignored). LSeg's recipe: the text
tower frozen, the image encoder at 0.1x the decoder's learning rate (`--backbone_lr_multiplier`). `--strategy`
picks what trains (see `seem_hf.adapters`).
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field

import evaluate
import torch
from transformers import set_seed

from seem_hf import LSegForSemanticSegmentation, LSegProcessor
from seem_hf.adapters import describe_parameters, prepare_for_fine_tuning
from seem_hf.metrics import evaluate_module_path
from seem_hf.training import SegmentationTrainer, SemanticCollator, exit_process
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
        default=str(EMBEDDED_CHECKPOINTS / "lseg-shapes"),
        metadata={"help": "checkpoint folder or Hub id (default: the package's embedded lseg-shapes)"},
    )


DEFAULTS = dict(
    QUICK_DEFAULTS,
    output_dir="outputs/finetune_lseg",
    max_steps=300,
    learning_rate=5e-4,
    weight_decay=1e-4,
    max_grad_norm=1.0,
    eval_steps=100,
    save_steps=100,
)


def main(argv: list[str] | None = None) -> dict[str, float]:
    argv = list(sys.argv[1:] if argv is None else argv)
    model_args, tuning, data_args, training_args = parse_arguments(
        (ModelArguments, FineTuningArguments, DataArguments, ExampleTrainingArguments),
        dict(DEFAULTS, image_size=128, use_cpu=not torch.cuda.is_available()), argv, __doc__,
    )
    if data_args.image_size % 32:
        raise ValueError(f"LSeg needs image sides that are multiples of 32; --image_size is {data_args.image_size}.")

    train, evaluation, vocabulary = training_datasets(data_args, training_args)
    label_names = [vocabulary.id2label[index] for index in sorted(vocabulary.id2label)]
    set_seed(training_args.seed)
    model = LSegForSemanticSegmentation.from_pretrained(model_args.model_name_or_path)
    model.config.id2label = dict(enumerate(label_names))  # any label set works: this one becomes the default
    model.config.label2id = {name: index for index, name in enumerate(label_names)}
    processor = LSegProcessor.from_pretrained(model_args.model_name_or_path)
    processor.set_default_labels(label_names)
    model = prepare_for_fine_tuning(model, tuning.strategy, bottleneck_size=tuning.bottleneck_size,
                                    lora_rank=tuning.lora_rank)
    if training_args.process_index == 0:
        print(f"{tuning.strategy}, {training_args.world_size} process(es): {describe_parameters(model)}")

    def postprocess(outputs, target_sizes):
        return processor.post_process_semantic_segmentation(outputs, target_sizes=target_sizes)

    collator = SemanticCollator(processor, label_names, ignore_index=model.config.ignore_index)
    # mIoU and pixel accuracy by the `evaluate` module: each process stores its label maps in evaluate's cache and
    # process 0 computes over all of them (the experiment id, the same on every process, names this run's files;
    # one process keeps them in memory).
    mean_iou = evaluate.load(evaluate_module_path("mean_iou"), num_process=training_args.world_size,
                             process_id=training_args.process_index, keep_in_memory=training_args.world_size == 1,
                             experiment_id=hashlib.sha1(os.path.abspath(training_args.output_dir).encode()).hexdigest())
    trainer = SegmentationTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=collator,
        categories=vocabulary.coco_categories(),
        postprocess=postprocess,
        semantic_metric=mean_iou,
        lr_multipliers={"dpt": tuning.backbone_lr_multiplier},
        lr_milestones=tuning.milestones,
        lr_gamma=tuning.lr_gamma,
    )
    return train_evaluate_and_save(trainer, processor, training_args, tuning.evaluate_only, data_args=data_args,
                                   command=["python", "examples/finetune_lseg.py", *argv])


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main(sys.argv[1:])
    exit_process()

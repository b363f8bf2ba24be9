"""Fine-tune SEEM on a COCO-panoptic dataset with transformers' Trainer: generic, referring and interactive query
groups together, as SEEM trains.

    python examples/finetune_seem.py                      # tiny model, bundled dataset, a few minutes on CPU
    accelerate launch examples/finetune_seem.py --model_name_or_path seem-focall-v1 --data_dir data/my_dataset \
        --output_dir runs/seem --max_steps 20000 --strategy freeze_backbone_adapt_head \
        --lr_milestones 0.88889,0.96296 --warmup_steps 10 --max_grad_norm 5.0
    torchrun --nproc_per_node 2 examples/finetune_seem.py ...

Arguments are transformers' `TrainingArguments`, the model arguments below and the data arguments of
`seem_hf.training.arguments.DataArguments`. The dataset's category names are the label set: in training each
batch writes every name into one of SEEM's 81 prompt templates drawn at random (as SEEM trains), in evaluation
into all 81, averaged. Every batch also carries referring sentences (the dataset's grounding annotations, or
class names where an image has none) and visual prompts sampled inside its segments (clicks, polygons,
scribbles, circles), and the model first adds 0..`--max_click_rounds` corrective clicks without gradient; the
loss is SEEM's generic set loss plus its grounding and spatial losses, on every decoder round
(`--tasks generic` trains the generic group alone). Evaluation adds referring cIoU and interactive NoC@85/90
(`--eval_max_clicks` clicks per object) to PQ and mIoU. `--strategy` picks what trains (`seem_hf.adapters`; SEEM's four: backbone frozen
or adapted x head adapted or fully tuned); the language encoder never trains. SEEM's optimiser recipe: AdamW,
backbone at 0.1x (`--backbone_lr_multiplier`), no weight decay on norms and embeddings, warm-up then multi-step
decay (`--lr_milestones`), gradient clipping (`--max_grad_norm`).
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass, field

import torch
from transformers import HfArgumentParser, TrainingArguments, set_seed

from seem_hf import SeemForUniversalSegmentation, SeemProcessor
from seem_hf.adapters import describe_parameters, prepare_for_fine_tuning
from seem_hf.models.seem.evaluation_seem import evaluate_interactive, evaluate_referring
from seem_hf.testing import FIXTURES
from seem_hf.training import DetrPanopticCollator, LabelSetCollator, SeemPromptCollator, SegmentationTrainer
from seem_hf.training.arguments import (
    QUICK_DEFAULTS,
    DataArguments,
    FineTuningArguments,
    train_evaluate_and_save,
    training_datasets,
)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default=str(FIXTURES / "tiny-random-seem"), metadata={"help": "checkpoint folder or Hub id"}
    )
    tasks: str = field(default="generic,referring,interactive",
                       metadata={"help": "query groups to train: generic, or generic with referring and interactive"})
    max_sentences: int = field(default=4, metadata={"help": "referring sentences per image (SEEM: MAX_LEN - 1)"})
    max_visual_prompts: int = field(default=10, metadata={"help": "visual prompts per image (SEEM: MAX_CANDIDATE)"})
    max_click_rounds: int = field(default=5, metadata={"help": "simulated corrective-click rounds (SEEM: MAX_ITER)"})
    eval_max_clicks: int = field(default=5, metadata={"help": "clicks per object in the NoC evaluation (SEEM: 20)"})

    def __post_init__(self):
        tasks = {task.strip() for task in self.tasks.split(",") if task.strip()}
        if not tasks <= {"generic", "referring", "interactive"} or tasks not in (
            {"generic"}, {"generic", "referring", "interactive"}
        ):
            raise ValueError(f"--tasks is 'generic' or 'generic,referring,interactive', got {self.tasks!r}.")
        self.prompted = tasks != {"generic"}


DEFAULTS = dict(
    QUICK_DEFAULTS,
    output_dir="outputs/finetune_seem",
    max_steps=300,
    learning_rate=1e-3,
    weight_decay=0.05,  # SEEM's
    max_grad_norm=5.0,  # SEEM's
    eval_steps=100,
    save_steps=100,
)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = HfArgumentParser((ModelArguments, FineTuningArguments, DataArguments, TrainingArguments))
    parser.set_defaults(**DEFAULTS, image_size=128, bottleneck_size=256, use_cpu=not torch.cuda.is_available())
    model_args, tuning, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)

    train, evaluation, vocabulary = training_datasets(data_args, training_args)
    label_names = [vocabulary.id2label[index] for index in sorted(vocabulary.id2label)]
    set_seed(training_args.seed)
    model = SeemForUniversalSegmentation.from_pretrained(model_args.model_name_or_path)
    model.config.id2label = dict(enumerate(label_names))  # any label set works: this one becomes the default
    model.config.label2id = {name: index for index, name in enumerate(label_names)}
    processor = SeemProcessor.from_pretrained(model_args.model_name_or_path)
    processor.image_processor.id2label = dict(vocabulary.id2label)
    processor.image_processor.thing_label_ids = list(vocabulary.thing_label_ids)
    model = prepare_for_fine_tuning(
        model, tuning.strategy, bottleneck_size=tuning.bottleneck_size, lora_rank=tuning.lora_rank
    )
    if training_args.process_index == 0:
        print(f"{tuning.strategy}, {training_args.world_size} process(es): {describe_parameters(model)}")

    # Training: one template per label and batch, drawn from the run's seed, the epoch and the batch's images (so
    # resumed and distributed runs draw the same); evaluation: all 81.
    def training_prompts(rows):
        key = f"{training_args.seed}-{rows[0]['epoch']}-" + "-".join(str(row["image_id"]) for row in rows)
        return {"input_ids": processor.tokenize_training_labels(label_names, random.Random(key))}

    evaluation_ids = processor.tokenize_labels(label_names)
    train_collator = DetrPanopticCollator(processor.image_processor)
    if model_args.prompted:
        train_collator = SeemPromptCollator(
            train_collator, processor, seed=training_args.seed, max_sentences=model_args.max_sentences,
            max_visual_prompts=model_args.max_visual_prompts, max_click_rounds=model_args.max_click_rounds,
        )
    train_collator = LabelSetCollator(train_collator, training_prompts)
    eval_collator = LabelSetCollator(
        DetrPanopticCollator(processor.image_processor), lambda rows: {"input_ids": evaluation_ids}
    )

    def postprocess(outputs, target_sizes):
        return processor.post_process_panoptic_segmentation(outputs, target_sizes=target_sizes)

    trainer = SegmentationTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=train_collator,
        eval_data_collator=eval_collator,
        categories=vocabulary.coco_categories(),
        postprocess=postprocess,
        semantic_postprocess=processor.post_process_semantic_segmentation,
        lr_multipliers={"backbone": tuning.backbone_lr_multiplier},
        lr_milestones=tuning.milestones,
        lr_gamma=tuning.lr_gamma,
    )
    def prompt_evaluation(trained):
        """Referring cIoU and interactive NoC (SEEM's click protocol, `--eval_max_clicks`) on the validation set."""
        return {**evaluate_referring(trained, processor, evaluation),
                **evaluate_interactive(trained, processor, evaluation, max_clicks=model_args.eval_max_clicks,
                                       seed=training_args.seed)}

    return train_evaluate_and_save(trainer, processor, training_args, tuning.evaluate_only,
                                   extra_evaluation=prompt_evaluation if model_args.prompted else None)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main(sys.argv[1:])

"""Fine-tune SEEM on a COCO-panoptic dataset with transformers' Trainer: generic, referring and interactive query
groups together, as SEEM trains.

    python examples/finetune_seem.py   # embedded model, bundled dataset: 300 steps at 128 px, ~0.28 s/step on one CPU
                                       # thread (measured), about 3 minutes with its referring and click evaluations
    accelerate launch examples/finetune_seem.py --model_name_or_path seem-focall-v1 --data_dir data/my_dataset \
        --output_dir runs/seem --max_steps 20000 --strategy freeze_backbone_adapt_head \
        --lr_milestones 0.88889,0.96296 --warmup_steps 10 --max_grad_norm 5.0
    python examples/finetune_seem.py --dataset_name data/my_saved_dataset   # a `datasets` folder or Hub name
    torchrun --nproc_per_node 2 examples/finetune_seem.py ...

Options: the model arguments below, `seem_hf.training.arguments`' fine-tuning and data arguments, then
transformers' `TrainingArguments` (`--help` lists the common ones, `--help_all` all). With no `--model_name_or_path`
the run fine-tunes the package's embedded `seem-shapes` model on the bundled shapes dataset (written under
`<output_dir>/shapes`). `--dataset_name` trains on a `datasets` dataset instead (Hub name or local folder, in the
package's panoptic rows, semantic maps or 3-channel instance annotations: `seem_hf.data.hf_datasets`; semantic maps
train as stuff-only panoptic).

Class targets (`--label_prompts`, `seem_hf.training.label_prompts`): SEEM's random prompt template per batch suits a
pretrained text tower; a random one (the embedded and tiny models) gives two templates of one name a cosine near 0,
so its classes never learn. `auto` (default) trains against the 81-template means (as inference scores) where the
tower's templates disagree, SEEM's random templates where they agree. The language encoder never trains.

Every batch also carries referring sentences (the dataset's grounding annotations, or class names where an image
has none) and visual prompts sampled inside its segments (clicks, polygons, scribbles, circles), and the model first
adds 0..`--max_click_rounds` corrective clicks without gradient; the loss is SEEM's generic set loss plus its
grounding and spatial losses, on every decoder round (`--tasks generic` trains the generic group alone);
`--spatial_label_weight` adds a loss on the label of each prompt's answer (not SEEM's; see `SeemConfig`). Every
evaluation (in training and at the end) adds referring cIoU and interactive NoC@85/90 (`--eval_max_clicks` clicks
per object) to PQ and mIoU. `--strategy` picks what trains (`seem_hf.adapters`; SEEM's four: backbone frozen or
adapted x head adapted or fully tuned). SEEM's optimiser recipe: AdamW, backbone at 0.1x
(`--backbone_lr_multiplier`), no weight decay on norms and embeddings, warm-up then multi-step decay
(`--lr_milestones`), gradient clipping (`--max_grad_norm`).
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass, field

import torch
from transformers import set_seed

from seem_hf import SeemForUniversalSegmentation, SeemProcessor
from seem_hf.adapters import describe_parameters, prepare_for_fine_tuning
from seem_hf.models.seem.evaluation_seem import evaluate_interactive, evaluate_referring
from seem_hf.training import (
    DetrPanopticCollator,
    LabelSetCollator,
    SeemPromptCollator,
    SegmentationTrainer,
    exit_process,
)
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
from seem_hf.training.label_prompts import LABEL_PROMPT_RULES, choose_label_prompts


@dataclass
class ModelArguments:
    _argument_group_name = "model"

    model_name_or_path: str = field(
        default=str(EMBEDDED_CHECKPOINTS / "seem-shapes"),
        metadata={"help": "checkpoint folder or Hub id (default: the package's embedded seem-shapes)"},
    )
    label_prompts: str = field(
        default="auto", metadata={"help": "class targets: auto, mean (81-template means, as inference) or random "
                                  "(SEEM's random template per batch, for a pretrained text tower)",
                                  "choices": list(LABEL_PROMPT_RULES)},
    )
    tasks: str = field(default="generic,referring,interactive",
                       metadata={"help": "query groups to train: generic, or generic with referring and interactive"})
    max_sentences: int = field(default=4, metadata={"help": "referring sentences per image (SEEM: MAX_LEN - 1)"})
    max_visual_prompts: int = field(default=10, metadata={"help": "visual prompts per image (SEEM: MAX_CANDIDATE)"})
    max_click_rounds: int = field(default=5, metadata={"help": "simulated corrective-click rounds (SEEM: MAX_ITER)"})
    eval_max_clicks: int = field(default=5, metadata={"help": "clicks per object in the NoC evaluation (SEEM: 20)"})
    spatial_label_weight: float | None = field(
        default=None, metadata={"help": "weight of the loss on each click answer's label (SeemConfig."
                                "spatial_label_weight; default: the checkpoint's, 0 in SEEM's recipe)"},
    )

    def __post_init__(self):
        tasks = {task.strip() for task in self.tasks.split(",") if task.strip()}
        if not tasks <= {"generic", "referring", "interactive"} or tasks not in (
            {"generic"}, {"generic", "referring", "interactive"}
        ):
            raise ValueError(f"--tasks is 'generic' or 'generic,referring,interactive', got {self.tasks!r}.")
        self.prompted = tasks != {"generic"}
        if self.spatial_label_weight is not None and not self.spatial_label_weight >= 0:
            raise ValueError(f"--spatial_label_weight is a loss weight (>= 0), got {self.spatial_label_weight}.")


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
    argv = list(sys.argv[1:] if argv is None else argv)
    model_args, tuning, data_args, training_args = parse_arguments(
        (ModelArguments, FineTuningArguments, DataArguments, ExampleTrainingArguments),
        dict(DEFAULTS, image_size=128, bottleneck_size=256, use_cpu=not torch.cuda.is_available()), argv, __doc__,
    )

    train, evaluation, vocabulary = training_datasets(data_args, training_args)
    label_names = [vocabulary.id2label[index] for index in sorted(vocabulary.id2label)]
    set_seed(training_args.seed)
    model = SeemForUniversalSegmentation.from_pretrained(model_args.model_name_or_path)
    model.config.id2label = dict(enumerate(label_names))  # any label set works: this one becomes the default
    model.config.label2id = {name: index for index, name in enumerate(label_names)}
    if model_args.spatial_label_weight is not None:
        model.config.spatial_label_weight = model_args.spatial_label_weight
    processor = SeemProcessor.from_pretrained(model_args.model_name_or_path)
    processor.image_processor.id2label = dict(vocabulary.id2label)
    processor.image_processor.thing_label_ids = list(vocabulary.thing_label_ids)
    label_prompts = choose_label_prompts(model, processor, label_names, model_args.label_prompts)
    model = prepare_for_fine_tuning(
        model, tuning.strategy, bottleneck_size=tuning.bottleneck_size, lora_rank=tuning.lora_rank
    )
    if training_args.process_index == 0:
        print(f"{tuning.strategy}, {training_args.world_size} process(es): {describe_parameters(model)}")
        print(label_prompts.describe())

    # Evaluation scores against the 81-template means, as inference does (the text tower is frozen: computed once).
    # Training too, unless the rule is SEEM's: one template per label and batch, drawn from the run's seed, the
    # epoch and the batch's images (so resumed and distributed runs draw the same).
    def mean_prompts(rows):
        return {"class_embeddings": label_prompts.embeddings}

    def random_prompts(rows):
        key = f"{training_args.seed}-{rows[0]['epoch']}-" + "-".join(str(row["image_id"]) for row in rows)
        return {"input_ids": processor.tokenize_training_labels(label_names, random.Random(key))}

    training_prompts = random_prompts if label_prompts.rule == "random" else mean_prompts
    train_collator = DetrPanopticCollator(processor.image_processor)
    if model_args.prompted:
        train_collator = SeemPromptCollator(
            train_collator, processor, seed=training_args.seed, max_sentences=model_args.max_sentences,
            max_visual_prompts=model_args.max_visual_prompts, max_click_rounds=model_args.max_click_rounds,
        )
    train_collator = LabelSetCollator(train_collator, training_prompts)
    eval_collator = LabelSetCollator(DetrPanopticCollator(processor.image_processor), mean_prompts)

    def prompt_evaluation(trained):
        """Referring cIoU and interactive NoC (SEEM's click protocol, `--eval_max_clicks`) on the evaluation set."""
        return {**evaluate_referring(trained, processor, evaluation),
                **evaluate_interactive(trained, processor, evaluation, max_clicks=model_args.eval_max_clicks)}

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
        extra_evaluation=prompt_evaluation if model_args.prompted else None,
    )
    return train_evaluate_and_save(trainer, processor, training_args, tuning.evaluate_only, data_args=data_args,
                                   command=["python", "examples/finetune_seem.py", *argv])


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main(sys.argv[1:])
    exit_process()

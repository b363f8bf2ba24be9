"""What the fine-tuning examples share: data arguments and the datasets they describe."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainingArguments

from seem_hf.adapters import FineTuningStrategy
from seem_hf.data import AugmentedPanopticDataset, LargeScaleJitter, coco_panoptic_paths, load_coco_panoptic
from seem_hf.data import make_shapes_dataset
from seem_hf.data.coco_panoptic import vocabulary_of


@dataclass
class FineTuningArguments:
    """What trains and how fast: the arguments every fine-tuning example shares besides transformers'
    `TrainingArguments` (see `seem_hf.adapters` for the strategies)."""

    strategy: str = field(
        default="full", metadata={"help": "what trains", "choices": [strategy.value for strategy in FineTuningStrategy]}
    )
    bottleneck_size: int = field(default=64, metadata={"help": "width of the head's bottleneck adapters"})
    lora_rank: int = field(default=8, metadata={"help": "rank of the LoRA adapters"})
    backbone_lr_multiplier: float = field(default=0.1, metadata={"help": "backbone learning rate / base rate"})
    lr_milestones: str = field(
        default="", metadata={"help": "comma-separated fractions of training where the rate drops (SEEM: "
                              "0.88889,0.96296); empty: use --lr_scheduler_type"}
    )
    lr_gamma: float = field(default=0.1, metadata={"help": "rate factor at each milestone"})
    evaluate_only: bool = field(default=False, metadata={"help": "evaluate the checkpoint, do not train"})

    @property
    def milestones(self) -> tuple[float, ...] | None:
        return tuple(float(value) for value in self.lr_milestones.split(",") if value) or None


QUICK_DEFAULTS = dict(
    per_device_train_batch_size=4,
    per_device_eval_batch_size=4,
    eval_strategy="steps",
    logging_steps=10,
    report_to="none",
    remove_unused_columns=False,
    dataloader_num_workers=0,
)
"""TrainingArguments defaults of the examples' quick runs on the bundled dataset (each example adds its own)."""


@dataclass
class DataArguments:
    data_dir: str | None = field(default=None, metadata={"help": "COCO-panoptic root; default: the bundled dataset"})
    image_size: int = field(default=256, metadata={"help": "side of the square training and evaluation images"})
    min_scale: float = field(default=0.5, metadata={"help": "large-scale jitter: smallest scale"})
    max_scale: float = field(default=2.0, metadata={"help": "large-scale jitter: largest scale"})
    num_train: int = field(default=64, metadata={"help": "bundled dataset: training images"})
    num_val: int = field(default=16, metadata={"help": "bundled dataset: validation images"})


def training_datasets(data_args: DataArguments, training_args: TrainingArguments):
    """(train, validation, vocabulary): augmented training rows (large-scale jitter, seeded by the run's seed
    and the epoch), deterministic validation rows (fit and pad to `image_size`), and the dataset's labels.

    With no `data_dir`, the bundled shapes dataset is written under `<output_dir>/shapes` by the main process
    while the others wait, then every process reads the same files.
    """
    if data_args.data_dir is not None:
        splits = coco_panoptic_paths(data_args.data_dir)
    else:
        root = Path(training_args.output_dir) / "shapes"
        with training_args.main_process_first(desc="writing the bundled dataset"):
            if training_args.process_index == 0:
                make_shapes_dataset(root, data_args.num_train, data_args.num_val, data_args.image_size, seed=0)
        splits = coco_panoptic_paths(root)
    datasets = {
        split: load_coco_panoptic(
            paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"],
            paths["grounding_json"] if Path(paths["grounding_json"]).exists() else None,
        )
        for split, paths in splits.items()
    }
    size = data_args.image_size
    train = AugmentedPanopticDataset(
        datasets["train"], LargeScaleJitter(size, data_args.min_scale, data_args.max_scale), seed=training_args.seed
    )
    validation = AugmentedPanopticDataset(datasets["val"], LargeScaleJitter(size, 1.0, 1.0, flip_probability=0.0))
    return train, validation, vocabulary_of(datasets["train"])


def train_evaluate_and_save(trainer, processor, training_args: TrainingArguments, evaluate_only: bool = False,
                            extra_evaluation=None) -> dict:
    """What every example does after building its Trainer: train (resuming when asked), save the model, its
    trainer state and its processor, evaluate and save the metrics, and push to the Hub when asked. Returns the
    evaluation metrics (empty when evaluation is off). `extra_evaluation(model)` returns more metrics (named
    without the `eval_` prefix), run on every process after Trainer's evaluation."""
    metrics = {}
    if not evaluate_only:
        trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        trainer.save_model()
        trainer.save_state()  # trainer_state.json: the loss and metric history
        if trainer.is_world_process_zero():
            processor.save_pretrained(training_args.output_dir)
    if evaluate_only or training_args.eval_strategy != "no":
        metrics = trainer.evaluate()
        if extra_evaluation is not None:
            model = trainer.accelerator.unwrap_model(trainer.model).eval()
            metrics.update({f"eval_{name}": value for name, value in extra_evaluation(model).items()})
        if trainer.is_world_process_zero():
            print({key: round(value, 3) for key, value in metrics.items()})
        trainer.save_metrics("eval", metrics)
    if training_args.push_to_hub:
        trainer.push_to_hub()
    return metrics


__all__ = ["QUICK_DEFAULTS", "DataArguments", "FineTuningArguments", "train_evaluate_and_save", "training_datasets"]

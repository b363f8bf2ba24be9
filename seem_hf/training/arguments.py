"""What the fine-tuning examples share: their command line (own options first, then transformers'
`TrainingArguments`), the datasets it describes, and the end of a run (evaluate, save model, card and metrics, say
where they went)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser, TrainingArguments

import seem_hf
from seem_hf.adapters import FineTuningStrategy
from seem_hf.data import (
    AugmentedPanopticDataset,
    LargeScaleJitter,
    ShapesStream,
    coco_panoptic_paths,
    load_coco_panoptic,
    make_shapes_dataset,
)
from seem_hf.data.coco_panoptic import vocabulary_of
from seem_hf.training.processes import end_process_group


@dataclass
class FineTuningArguments:
    """What trains and how fast: the arguments every fine-tuning example shares besides transformers'
    `TrainingArguments` (see `seem_hf.adapters` for the strategies)."""

    _argument_group_name = "what trains"

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
        return tuple(float(value) for value in self.lr_milestones.split(",") if value.strip()) or None

    def __post_init__(self):
        """Refuse values that would train something else than asked, naming the argument."""
        problems = []
        try:
            milestones = self.milestones or ()
        except ValueError:
            problems.append(f"--lr_milestones {self.lr_milestones!r}: give comma-separated fractions of training, "
                            "such as 0.88889,0.96296")
            milestones = ()
        if any(not 0 < value < 1 for value in milestones) or list(milestones) != sorted(set(milestones)):
            problems.append(f"--lr_milestones {self.lr_milestones!r}: each is a fraction of training between 0 and 1 "
                            "(exclusive), increasing (0.5 is half way; a step count is --max_steps x fraction)")
        if not self.backbone_lr_multiplier >= 0:  # also NaN
            problems.append(f"--backbone_lr_multiplier {self.backbone_lr_multiplier}: must be 0 or more (0 freezes "
                            "the backbone; a negative rate would climb the loss)")
        if not self.lr_gamma > 0:
            problems.append(f"--lr_gamma {self.lr_gamma}: must be positive (the rate's factor at each milestone)")
        for name, value in (("--lora_rank", self.lora_rank), ("--bottleneck_size", self.bottleneck_size)):
            if value < 1:
                problems.append(f"{name} {value}: must be at least 1")
        if problems:
            raise ValueError("; ".join(problems) + ".")


EMBEDDED_CHECKPOINTS = Path(seem_hf.__file__).resolve().parent / "checkpoints"
"""The package's embedded defaults (`seem-shapes`, `lseg-shapes`, `detr_panoptic-shapes`): the examples'
default starting point, installed with the package."""

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
    _argument_group_name = "data"

    data_dir: str | None = field(default=None, metadata={"help": "COCO-panoptic root; default: the bundled dataset"})
    stream: bool = field(
        default=False, metadata={"help": "train on the unlimited shapes stream (new images every step, "
                                 "seem_hf.data.ShapesStream) and evaluate on its fixed held-out set of --num_val "
                                 "images"}
    )
    domain: str = field(
        default="shapes", metadata={"help": "bundled dataset and --stream: which generator domain (shapes: the "
                                    "embedded defaults' classes; terrain: other shapes on other stuff, for transfer)",
                                    "choices": ["shapes", "terrain"]}
    )
    image_size: int = field(default=256, metadata={"help": "side of the square training and evaluation images"})
    min_scale: float = field(default=0.5, metadata={"help": "large-scale jitter: smallest scale"})
    max_scale: float = field(default=2.0, metadata={"help": "large-scale jitter: largest scale"})
    num_train: int = field(default=64, metadata={"help": "bundled dataset: training images"})
    num_val: int = field(default=16, metadata={"help": "bundled dataset: validation images"})
    eval_split: str = field(
        default="val", metadata={"help": "evaluate on the validation images (val) or on the training images without "
                                 "augmentation (train: an overfitting check)", "choices": ["val", "train"]}
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "a `datasets` dataset: Hub name or local folder (save_to_disk's or files "
                                "load_dataset reads); layouts: seem_hf.data.hf_datasets.LAYOUTS"}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "--dataset_name: its configuration"})
    train_split: str = field(default="train", metadata={"help": "--dataset_name: the training split"})
    validation_split: str | None = field(
        default=None, metadata={"help": "--dataset_name: the evaluation split (default: validation, else val)"}
    )
    train_val_split: float | None = field(
        default=None, metadata={"help": "--dataset_name without a validation split: fraction of the training rows "
                                "held out for evaluation"}
    )
    image_column: str = field(default="image", metadata={"help": "--dataset_name: the image column"})
    dataset_layout: str | None = field(
        default=None, metadata={"help": "--dataset_name: force a layout (default: read from the columns and the first "
                                "annotation: one channel is semantic, (class, instance, zeros) is instance)",
                                "choices": ["panoptic", "semantic", "instance"]}
    )
    annotation_column: str | None = field(
        default=None, metadata={"help": "--dataset_name: the annotation column (default: the layout's own: "
                                "panoptic, label or annotation)"}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "--dataset_name: keep the first N "
                                                                   "training rows"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "--dataset_name: keep the first N "
                                                                  "evaluation rows"})
    streaming: bool = field(
        default=False, metadata={"help": "--dataset_name: stream it (Hub shards, local parquet files or a save_to_disk "
                                 "folder read in shards), each process reading its own shards; set --max_steps"}
    )
    do_reduce_labels: bool = field(
        default=False, metadata={"help": "--dataset_name, semantic and instance layouts: class 0 is background "
                                 "(unlabelled), the others shift down by one"}
    )


DATASET_NAME_OPTIONS = ("--dataset_config_name", "--train_split", "--validation_split", "--train_val_split",
                        "--image_column", "--dataset_layout", "--annotation_column", "--max_train_samples",
                        "--max_eval_samples", "--do_reduce_labels")
"""`DataArguments` that only `--dataset_name` reads: given without it they are refused (they would be ignored)."""


class ExampleTrainingArguments(TrainingArguments):
    """transformers' `TrainingArguments`, listed in their own group of the examples' `--help`."""

    _argument_group_name = "transformers' TrainingArguments (all accepted; --help_all describes every one)"


COMMON_TRAINING_OPTIONS = (
    "output_dir", "max_steps", "num_train_epochs", "per_device_train_batch_size", "per_device_eval_batch_size",
    "gradient_accumulation_steps", "learning_rate", "weight_decay", "warmup_steps", "max_grad_norm",
    "lr_scheduler_type", "eval_strategy", "eval_steps", "save_strategy", "save_steps", "logging_steps", "seed",
    "resume_from_checkpoint", "bf16", "use_cpu", "dataloader_num_workers", "report_to", "push_to_hub",
    "hub_model_id",
)
"""The `TrainingArguments` an example's `--help` describes; `--help_all` describes all of them."""


def parse_arguments(dataclass_types: tuple, defaults: dict, argv: list[str] | None = None, description: str = ""):
    """Parse `argv` into instances of `dataclass_types` (the example's own first, `ExampleTrainingArguments`
    last), with the example's `defaults`. `--help` lists the example's options, then the commonly used
    `TrainingArguments` with one line each; `--help_all` adds every other one with transformers' own text."""
    argv = list(sys.argv[1:] if argv is None else argv)
    full_help = "--help_all" in argv
    argv = ["--help" if argument == "--help_all" else argument for argument in argv]
    parser = HfArgumentParser(dataclass_types, description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(**defaults)
    training_fields = {name for name in TrainingArguments.__dataclass_fields__}
    for action in parser._actions:
        if action.dest not in training_fields or full_help:
            continue
        if action.dest in COMMON_TRAINING_OPTIONS:
            text = " ".join((action.help or "").split()).split(". ")[0].rstrip(".")
            action.help = text if len(text) <= 100 else text[:97] + "..."
            if action.default is not None and action.default is not argparse.SUPPRESS:
                action.help += f" (default: {action.default})"
            action.metavar = action.metavar or action.dest.upper()
        else:
            action.help = argparse.SUPPRESS
    parsed = parser.parse_args_into_dataclasses(args=argv)
    given = {argument.split("=")[0] for argument in argv if argument.startswith("--")}
    for arguments in parsed:  # before the data and the model load: a wrong value is told at once
        if isinstance(arguments, DataArguments) and arguments.dataset_name is None:
            ignored = [option for option in DATASET_NAME_OPTIONS if option in given]
            if ignored:
                source = (f"--data_dir {arguments.data_dir}" if arguments.data_dir is not None else
                          "--stream" if arguments.stream else "the bundled dataset")
                raise ValueError(
                    f"{', '.join(ignored)} {'applies' if len(ignored) == 1 else 'apply'} to --dataset_name only: "
                    f"{source} would train without {'it' if len(ignored) == 1 else 'them'}. Drop "
                    f"{'it' if len(ignored) == 1 else 'them'}, or give the data as --dataset_name (a `datasets` "
                    "folder or Hub name; docs/your_data.md)."
                )
        if isinstance(arguments, TrainingArguments):
            if "--num_train_epochs" in given and "--max_steps" not in given and arguments.max_steps > 0:
                # The example's own --max_steps default would override the epochs the user asked for.
                arguments.max_steps = -1
            evaluate_only = any(getattr(other, "evaluate_only", False) for other in parsed)
            check_training_arguments(arguments, evaluate_only)
    return parsed


def check_training_arguments(training_args: TrainingArguments, evaluate_only: bool = False) -> None:
    """Refuse `TrainingArguments` values that torch or transformers would meet with a bare error deep in the run (a
    ZeroDivisionError for --gradient_accumulation_steps 0, torch's 'batch_size should be a positive integer') or
    that would train nothing, or otherwise than asked, without a word (--max_steps 0 with --num_train_epochs 0: the
    untrained model saved with a card; --fp16 on the CPU: float32), naming the argument; and a
    --resume_from_checkpoint that holds no checkpoint (`seem_hf.training.trainer.resolve_resume_checkpoint`)."""
    from seem_hf.training.trainer import resolve_resume_checkpoint

    problems = [f"{name} {getattr(training_args, name.lstrip('-'))}: must be at least 1" for name in (
        "--per_device_train_batch_size", "--per_device_eval_batch_size", "--gradient_accumulation_steps")
        if getattr(training_args, name.lstrip("-")) < 1]
    if not evaluate_only and training_args.max_steps <= 0 and not training_args.num_train_epochs > 0:
        problems.append(f"--max_steps {training_args.max_steps} and --num_train_epochs "
                        f"{training_args.num_train_epochs} train nothing: give a positive --max_steps (or "
                        "--num_train_epochs with --max_steps -1), or --evaluate_only to evaluate the model as it is")
    on_cpu = training_args.use_cpu or not torch.cuda.is_available()
    if training_args.fp16 and on_cpu:
        problems.append("--fp16 runs on a GPU: on the CPU accelerate leaves the forward in float32 without a word; "
                        "use --bf16 (bfloat16 autocast, which the CPU runs), or drop --fp16")
    if problems:
        raise ValueError("; ".join(problems) + ".")
    resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)


def training_datasets(data_args: DataArguments, training_args: TrainingArguments):
    """(train, evaluation, vocabulary): augmented training rows (large-scale jitter, seeded by the run's seed
    and the epoch), deterministic evaluation rows (fit and pad to `image_size`) of the validation split (None when
    `--eval_strategy no` and the folder has no `val` split, or an empty one), or of the training split with
    `--eval_split train`, and the dataset's labels.

    With no `data_dir`, the bundled shapes dataset is written under `<output_dir>/shapes` by each machine's main
    process (`local_process_index` 0) while the others wait, then every process reads its machine's files.

    Raises a `ValueError` naming the data when the training rows, or the evaluation rows of a run that evaluates,
    are none: a sampler of no rows fails without saying which, and an evaluation of no image reports 0 for every
    metric.
    """
    train, evaluation, vocabulary = _training_datasets(data_args, training_args)
    if hasattr(train, "__len__") and len(train) == 0:
        raise ValueError(f"No training images: {_rows_source(data_args, 'train')} has none. Add images to it"
                         + (", or raise --max_train_samples." if data_args.max_train_samples is not None else "."))
    global_batch = training_args.per_device_train_batch_size * training_args.world_size
    if training_args.dataloader_drop_last and hasattr(train, "__len__") and len(train) < global_batch:
        raise ValueError(
            f"--dataloader_drop_last drops each epoch's incomplete batch, and {_rows_source(data_args, 'train')} has "
            f"{len(train)} training images for a batch of {global_batch} (--per_device_train_batch_size "
            f"{training_args.per_device_train_batch_size} x {training_args.world_size} process(es)): no step would "
            "train. Lower --per_device_train_batch_size, or drop --dataloader_drop_last."
        )
    if evaluation is not None and len(evaluation) == 0:
        if training_args.eval_strategy == "no":
            return train, None, vocabulary  # nothing evaluates during training
        raise ValueError(
            f"No evaluation images: {_rows_source(data_args, data_args.eval_split)} has none, and an evaluation of no "
            "image reports 0 for every metric. Add images to it"
            + (", raise --max_eval_samples" if data_args.max_eval_samples is not None else "")
            + (", evaluate on the training images (--eval_split train)" if data_args.eval_split != "train" else "")
            + " or turn evaluation off (--eval_strategy no)."
        )
    return train, evaluation, vocabulary


def _rows_source(data_args: DataArguments, split: str) -> str:
    """Where the rows of `split` (`train`, or `val` for the evaluation split) come from, for errors."""
    if data_args.dataset_name is not None:
        if split == "train":
            where = f"split {data_args.train_split!r} of {data_args.dataset_name}"
            limit = data_args.max_train_samples
        else:
            held_out = (f"the fraction --train_val_split {data_args.train_val_split} of the training split"
                        if data_args.train_val_split is not None else "the evaluation split")
            where, limit = f"{held_out} of {data_args.dataset_name}", data_args.max_eval_samples
        return where + (f" (its first --max_{'train' if split == 'train' else 'eval'}_samples {limit} rows)"
                        if limit is not None else "")
    if data_args.data_dir is not None:
        return str(coco_panoptic_paths(data_args.data_dir, (split,))[split]["panoptic_json"])
    return "the bundled dataset" + (" (--num_train 0)" if split == "train" else " (--num_val 0)")


def _training_datasets(data_args: DataArguments, training_args: TrainingArguments):
    """`training_datasets` before its check for empty sets."""
    given = data_args.data_dir if data_args.data_dir is not None else data_args.dataset_name
    if data_args.domain != "shapes" and given is not None:
        raise ValueError(f"--domain {data_args.domain} picks a generated dataset; drop it to train on {given}.")
    if data_args.streaming and data_args.dataset_name is None:
        raise ValueError("--streaming streams the dataset --dataset_name names; give one (the generated shapes stream "
                         "is --stream).")
    if data_args.stream:
        return _stream_datasets(data_args, training_args)
    if data_args.dataset_name is not None:
        return _named_datasets(data_args, training_args)
    needed = ("train",) if data_args.eval_split == "train" else ("train", "val")
    if data_args.data_dir is not None:
        splits = coco_panoptic_paths(data_args.data_dir, needed)
        _check_data_dir(Path(data_args.data_dir), splits["train"]["panoptic_json"])
    else:
        root = Path(training_args.output_dir) / "shapes"
        # Each machine's first process writes its own copy (nodes need not share a file system; on a shared one
        # they write the same bytes), the others wait at the barrier that ends this block on every machine.
        with training_args.main_process_first(local=True, desc="writing the bundled dataset"):
            if training_args.local_process_index == 0:
                make_shapes_dataset(root, data_args.num_train, data_args.num_val, data_args.image_size, seed=0,
                                    domain=data_args.domain)
        splits = coco_panoptic_paths(root, needed)
    if "val" in splits and training_args.eval_strategy == "no" and not Path(splits["val"]["panoptic_json"]).exists():
        del splits["val"]  # nothing evaluates during training: a validation split is optional
    datasets = {}
    for split, paths in splits.items():  # train first: the other splits are labelled in its categories, by name
        train_json = splits["train"]["panoptic_json"]
        datasets[split] = load_coco_panoptic(
            paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"],
            paths["grounding_json"] if Path(paths["grounding_json"]).exists() else None,
            vocabulary=None if split == "train" else vocabulary_of(datasets["train"]),
            vocabulary_from=f"the training split ({train_json})",
        )
    train = AugmentedPanopticDataset(datasets["train"], _training_jitter(data_args), seed=training_args.seed)
    evaluated = datasets["train"] if data_args.eval_split == "train" else datasets.get("val")
    return train, _evaluation_rows(evaluated, data_args), vocabulary_of(datasets["train"])


def _check_data_dir(data_dir: Path, train_json: Path) -> None:
    """Refuse a `--data_dir` that is no folder, or holds no training JSON where the layout has it, naming the
    layout and the JSON files it does hold (the validator would only say that one file is missing)."""
    if not data_dir.is_dir():
        raise ValueError(f"--data_dir {data_dir} is no folder" + (
            "" if data_dir.parent.is_dir() else f" ({data_dir.parent} is missing too)") + ": give the root of a "
            "COCO-panoptic dataset (train/, annotations/panoptic_train.json, annotations/panoptic_train/; "
            "docs/training.md), or convert labelling-tool exports into one first (python -m seem_hf.data.convert).")
    if not train_json.exists():
        found = sorted(path.relative_to(data_dir).as_posix() for path in data_dir.glob("**/*.json")
                       if not any(part.startswith(".") for part in path.relative_to(data_dir).parts))[:10]
        raise ValueError(
            f"--data_dir {data_dir} has no {train_json.relative_to(data_dir)}: the examples read the COCO-panoptic "
            "layout (train/*.jpg, annotations/panoptic_train.json, annotations/panoptic_train/*.png, and the same "
            "for val; docs/training.md). "
            + (f"Its JSON files: {found}; rename or move them into that layout, or convert them "
               "(python -m seem_hf.data.convert, e.g. coco-instances for a COCO instances JSON)."
               if found else "It holds no JSON file; convert labelling-tool exports into the layout first "
               "(python -m seem_hf.data.convert).")
        )


def _training_jitter(data_args: DataArguments) -> LargeScaleJitter:
    """The training rows' large-scale jitter, to `--image_size` by `--min_scale`..`--max_scale`."""
    return LargeScaleJitter(data_args.image_size, data_args.min_scale, data_args.max_scale)


def _evaluation_rows(dataset, data_args: DataArguments) -> AugmentedPanopticDataset | None:
    """`dataset`'s rows for evaluation: unaugmented, fit and padded to `--image_size` (None for no dataset)."""
    if dataset is None:
        return None
    return AugmentedPanopticDataset(dataset, LargeScaleJitter(data_args.image_size, 1.0, 1.0, flip_probability=0.0))


def _named_datasets(data_args: DataArguments, training_args: TrainingArguments):
    """`training_datasets` for `--dataset_name` (`seem_hf.data.hf_datasets`): its rows augmented as the folder's,
    in any recognised layout; the layout is the run's first log line."""
    from seem_hf.data.hf_datasets import load_training_splits

    if data_args.data_dir is not None:
        raise ValueError("--dataset_name and --data_dir both name the training data; keep one.")
    evaluate_on = "train" if data_args.eval_split == "train" else "validation"
    if evaluate_on == "validation" and training_args.eval_strategy == "no" and data_args.train_val_split is None:
        evaluate_on = None  # nothing evaluates during training: a validation split is optional
    if data_args.streaming:
        return _streamed_datasets(data_args, training_args, evaluate_on)
    with training_args.main_process_first(desc="loading --dataset_name"):  # one download per machine
        loaded = load_training_splits(
            data_args.dataset_name, data_args.dataset_config_name, data_args.train_split, data_args.validation_split,
            data_args.train_val_split, data_args.image_column, data_args.annotation_column,
            data_args.max_train_samples, data_args.max_eval_samples, data_args.do_reduce_labels, evaluate_on,
            seed=training_args.seed, layout=data_args.dataset_layout,
        )
    if training_args.process_index == 0:
        print(f"Dataset {data_args.dataset_name}: {loaded.describe()}; {len(loaded.train)} training rows, "
              f"{'no' if loaded.evaluation is None else len(loaded.evaluation)} evaluation rows, "
              f"{len(loaded.vocabulary)} labels.")
    train = AugmentedPanopticDataset(loaded.train, _training_jitter(data_args), seed=training_args.seed)
    return train, _evaluation_rows(loaded.evaluation, data_args), loaded.vocabulary


def _streamed_datasets(data_args: DataArguments, training_args: TrainingArguments, evaluate_on: str | None):
    """`training_datasets` for `--dataset_name ... --streaming` (`seem_hf.data.streaming`): each process augments
    its own shards of the training split, without end; evaluation on the first rows of the evaluation split."""
    from seem_hf.data.streaming import StreamedPanopticDataset, load_streaming_splits

    for option, value in (("--max_train_samples", data_args.max_train_samples),
                          ("--train_val_split", data_args.train_val_split)):
        if value is not None:
            raise ValueError(f"{option} needs a map-style dataset; with --streaming the run's length is --max_steps "
                             f"and evaluation reads --validation_split (drop {option} or --streaming).")
    if training_args.max_steps <= 0:
        raise ValueError("--streaming reads the training split without end: set the run's length with --max_steps.")
    with training_args.main_process_first(desc="opening the --streaming dataset"):  # one evaluation copy per machine
        loaded = load_streaming_splits(
            data_args.dataset_name, data_args.dataset_config_name, data_args.train_split, data_args.validation_split,
            data_args.image_column, data_args.annotation_column, data_args.max_eval_samples,
            data_args.do_reduce_labels, evaluate_on, layout=data_args.dataset_layout,
        )
    train = StreamedPanopticDataset(loaded.train, _training_jitter(data_args), seed=training_args.seed,
                                    rank=training_args.process_index, world_size=training_args.world_size)
    if training_args.process_index == 0:
        shards = loaded.train.dataset.n_shards
        print(f"Dataset {data_args.dataset_name} (streamed, {shards} shard(s) among {training_args.world_size} "
              f"process(es)): {loaded.describe()}; "
              f"{'no' if loaded.evaluation is None else len(loaded.evaluation)} evaluation rows, "
              f"{len(loaded.vocabulary)} labels.")
    return train, _evaluation_rows(loaded.evaluation, data_args), loaded.vocabulary


def _stream_datasets(data_args: DataArguments, training_args: TrainingArguments):
    """`training_datasets` for `--stream`: the shapes stream (seed 0) augmented like the folder's rows, and its
    held-out set (or, with `--eval_split train`, the stream's first `num_train` samples) unaugmented."""
    for option, value in (("--data_dir", data_args.data_dir), ("--dataset_name", data_args.dataset_name)):
        if value is not None:
            raise ValueError(f"--stream trains on the generated shapes stream; drop {option} (or drop --stream to "
                             f"train on {value}).")
    size, domain = data_args.image_size, data_args.domain
    train = AugmentedPanopticDataset(ShapesStream(seed=0, image_size=size, domain=domain),
                                     _training_jitter(data_args), seed=training_args.seed)
    evaluated = (ShapesStream(seed=0, image_size=size, epoch_size=data_args.num_train, domain=domain)
                 if data_args.eval_split == "train" else ShapesStream.held_out(data_args.num_val, 0, size, domain))
    return train, _evaluation_rows(evaluated, data_args), vocabulary_of(train.dataset)


def training_data_description(data_args: DataArguments) -> str:
    """What a run trained on, for its model card."""
    if data_args.stream:
        evaluated = (f"the stream's first {data_args.num_train} samples" if data_args.eval_split == "train" else
                     f"the stream's fixed held-out set ({data_args.num_val} images, `ShapesStream.held_out`)")
        return (f"the unlimited synthetic shapes stream (`seem_hf.data.ShapesStream`, domain {data_args.domain}, "
                f"seed 0: new images every "
                f"step), at {data_args.image_size} px with large-scale jitter {data_args.min_scale}-"
                f"{data_args.max_scale}. Metrics below are on {evaluated}.")
    where = (f"`{data_args.data_dir}` (COCO-panoptic layout)" if data_args.data_dir else
             f"the `datasets` dataset `{data_args.dataset_name}`{' (streamed)' if data_args.streaming else ''}"
             if data_args.dataset_name else
             f"the bundled synthetic shapes dataset ({data_args.num_train} training images, {data_args.num_val} "
             f"validation images, `seem_hf.data.make_shapes_dataset`, domain {data_args.domain}, seed 0)")
    evaluated = "the training images" if data_args.eval_split == "train" else "the validation split"
    return (f"{where}, at {data_args.image_size} px with large-scale jitter {data_args.min_scale}-"
            f"{data_args.max_scale}. Metrics below are on {evaluated}.")


def train_evaluate_and_save(trainer, processor, training_args: TrainingArguments, evaluate_only: bool = False,
                            data_args: DataArguments | None = None, command: list[str] | None = None) -> dict:
    """What every example does after building its Trainer: train (resuming when asked); evaluate (when
    evaluation is on; the Trainer's `extra_evaluation` included); save the model, its processor, its trainer state,
    the metrics (`eval_results.json`) and a model card that carries them, the training data and `command`; push to
    the Hub when asked; print where everything went. Returns the evaluation metrics (empty when evaluation is
    off). With `evaluate_only` nothing is trained or saved but the metrics."""
    metrics = {}
    if not evaluate_only:
        trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if evaluate_only or training_args.eval_strategy != "no":
        metrics = trainer.evaluate()
    output_dir = Path(training_args.output_dir)
    if not evaluate_only:
        trainer.save_model()
        trainer.save_state()  # trainer_state.json: the loss and metric history
        if trainer.is_world_process_zero():
            processor.save_pretrained(output_dir)
            _write_card(trainer, output_dir, metrics, data_args, command)
    if metrics:
        trainer.save_metrics("eval", metrics)
    if training_args.push_to_hub and not evaluate_only:
        trainer.push_to_hub()
    if trainer.is_world_process_zero():
        print(run_summary(output_dir, metrics, saved=not evaluate_only))
    # Together, and without the gloo teardown deadlock (seem_hf.training.processes): the script ends with exit_process.
    end_process_group(trainer)
    return metrics


def _write_card(trainer, output_dir: Path, metrics: dict, data_args, command) -> None:
    """The run's model card in `output_dir/README.md`, unless a card there was written by someone else."""
    from seem_hf.model_card import write_model_card

    card = output_dir / "README.md"
    if card.exists():
        text = card.read_text(encoding="utf-8")
        if "\n- seem_hf\n" not in text and "library_name: peft" not in text:
            return  # the user's own card
    model = trainer.accelerator.unwrap_model(trainer.model)
    model = model.get_base_model() if hasattr(model, "get_base_model") else model
    command_text = None
    if command is not None:
        command_text = "```bash\n" + " ".join(command) + "\n```"
        if trainer.state.max_steps:
            command_text += f"\n\n{trainer.state.global_step} steps."
    write_model_card(
        model, output_dir, model_name=output_dir.name,
        metrics={name.removeprefix("eval_"): value for name, value in metrics.items() if name != "epoch"},
        training_data=None if data_args is None else training_data_description(data_args),
        training=command_text,
    )


def run_summary(output_dir: Path, metrics: dict, saved: bool = True) -> str:
    """Where a run's outputs went and its headline metrics, as the examples print it at the end."""
    output_dir = Path(output_dir)
    files = sorted(path.name for path in output_dir.iterdir() if path.is_file()) if output_dir.exists() else []
    weights = [name for name in files if name.endswith((".safetensors", ".bin")) and name != "training_args.bin"]
    configs = [name for name in files if name in ("config.json", "adapter_config.json")]
    processor = [name for name in files if name.startswith(("processor", "preprocessor", "tokenizer",
                                                             "special_tokens", "vocab", "merges"))]
    lines = [f"Done. Everything is in {output_dir}/"]
    if saved:
        lines.append(f"  model       {', '.join(weights + configs)}")
        lines.append(f"              load: AutoModel.from_pretrained({str(output_dir)!r})")
        if processor:
            lines.append(f"  processor   {', '.join(processor)}")
            lines.append(f"              load: AutoProcessor.from_pretrained({str(output_dir)!r})")
        if "README.md" in files:
            lines.append("  model card  README.md" + (" (with the metrics below)" if metrics else ""))
        if "trainer_state.json" in files:
            lines.append("  history     trainer_state.json (loss and metrics per logging step)")
        checkpoints = sorted(path.name for path in output_dir.glob("checkpoint-*"))
        if checkpoints:
            lines.append(f"  checkpoints {', '.join(checkpoints)} (--resume_from_checkpoint)")
    if metrics:
        lines.append("  metrics     eval_results.json")
        shown = [(name.removeprefix("eval_"), value) for name, value in metrics.items() if name != "epoch"]
        for start in range(0, len(shown), 6):
            lines.append("              " + ", ".join(f"{name} {value:.4g}" for name, value in shown[start:start + 6]))
    else:
        lines.append("  metrics     none (evaluation is off: --eval_strategy no)")
    return "\n".join(lines)


def read_metrics(output_dir) -> dict:
    """The metrics a run saved (`eval_results.json`)."""
    return json.loads((Path(output_dir) / "eval_results.json").read_text())


__all__ = [
    "COMMON_TRAINING_OPTIONS",
    "EMBEDDED_CHECKPOINTS",
    "QUICK_DEFAULTS",
    "DataArguments",
    "ExampleTrainingArguments",
    "FineTuningArguments",
    "check_training_arguments",
    "parse_arguments",
    "read_metrics",
    "run_summary",
    "train_evaluate_and_save",
    "training_data_description",
    "training_datasets",
]

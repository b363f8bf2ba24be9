"""A Trainer whose evaluation measures segmentation quality.

transformers' evaluation loop gathers predictions and labels across processes as padded arrays, which cannot
carry per-image segment lists (and crashes on them under gloo). `SegmentationTrainer.evaluate` instead
post-processes each batch where it was computed, adds per-image statistics to the seem_hf accumulators, and
sums those across processes, so any number of processes gives the numbers of one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import get_last_checkpoint

from seem_hf.data.coco_panoptic import semantic_from_panoptic
from seem_hf.loss.set_criterion import local_target_count
from seem_hf.metrics import PanopticQualityAccumulator, SemanticSegmentationAccumulator
from seem_hf.training.optim import parameter_groups, warmup_multistep_schedule


class DatasetEpochCallback(TrainerCallback):
    """Tell the training dataset which epoch starts (`dataset.set_epoch(epoch)`), with any number of processes.

    accelerate forwards `set_epoch` to the dataset only when the sampler has none: under several processes its
    seedable sampler takes the call and the dataset stays at epoch 0, so `AugmentedPanopticDataset` would draw epoch
    0's augmentation every epoch (and `ShapesStream` would repeat its first samples)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(int(state.epoch or 0))


class LabelSetCallback(TrainerCallback, ExportableState):
    """Records a run's label names, in label order, in each checkpoint's `trainer_state.json` (its
    `stateful_callbacks`), where `checkpoint_labels` reads them: adapter checkpoints carry no `config.json`."""

    def __init__(self, labels: list[str]):
        self.labels = list(labels)

    def state(self) -> dict:
        return {"args": {"labels": self.labels}, "attributes": {}}


def checkpoint_labels(checkpoint: str | Path) -> list[str] | None:
    """The label names, in label order, that a Trainer checkpoint was trained on: the `LabelSetCallback` record of
    its `trainer_state.json`, else its `config.json`'s `id2label`; None when it holds neither."""
    checkpoint = Path(checkpoint)
    try:
        record = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
        return list(record["stateful_callbacks"][LabelSetCallback.__name__]["args"]["labels"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        id2label = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))["id2label"]
        return [id2label[key] for key in sorted(id2label, key=int)]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_resumed_labels(checkpoint: str | Path, labels: list[str]) -> None:
    """Refuse to resume from `checkpoint` when it was trained on other label names, or in another order, than
    `labels` (this run's): resuming continues the same run, whose class scores and optimiser state are per label
    in the checkpoint's order, so other data would train on wrong labels without a word."""
    saved = checkpoint_labels(checkpoint)
    if saved is None or saved == list(labels):
        return
    missing, added = [name for name in saved if name not in labels], [name for name in labels if name not in saved]
    difference = "; ".join(part for part in (
        f"this run's data lacks {missing}" if missing else "", f"it adds {added}" if added else "",
        "the same names in another order" if not (missing or added) else "") if part)
    raise ValueError(
        f"--resume_from_checkpoint {checkpoint} was trained on {len(saved)} labels {saved}; this run's data has "
        f"{len(labels)} labels {list(labels)} ({difference}). Resuming continues that run, on its labels in its order. "
        f"Resume with the data it was trained on, or start a new run from its weights on this data: "
        f"--model_name_or_path {checkpoint} (a checkpoint of adapters: merge them into the base model first), "
        "without --resume_from_checkpoint."
    )


_LATEST = ("true", "latest", "last")
"""`--resume_from_checkpoint` values (any case) that mean the latest checkpoint of `--output_dir`, as
`Trainer.train(resume_from_checkpoint=True)` does, unless a folder of that name exists."""


def _checkpoints_in(folder: Path) -> list[str]:
    """The `checkpoint-N` folders of `folder`, oldest first, as paths."""
    if not folder.is_dir():
        return []
    found = [path for path in folder.glob("checkpoint-*") if path.is_dir() and path.name[11:].isdigit()]
    return [str(path) for path in sorted(found, key=lambda path: int(path.name[11:]))]


def resolve_resume_checkpoint(value, output_dir: str | Path) -> str | None:
    """The checkpoint folder `--resume_from_checkpoint value` names, checked before anything is loaded: None (no
    value) or True, or a text of `_LATEST`, for the latest `checkpoint-N` of `output_dir`; else a folder, which must
    hold a Trainer checkpoint (`trainer_state.json` and the optimiser's state). Raises a `ValueError` naming the
    value and the checkpoints there are for a folder that does not exist, a run's output folder (its final save
    keeps no optimiser state: transformers would resume it with a fresh optimiser and schedule without a word) and
    a saved model."""
    if value is None or value is False or value == "":
        return None
    output_dir = Path(output_dir)
    if value is True or (isinstance(value, str) and value.strip().lower() in _LATEST and not Path(value).exists()):
        latest = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
        if latest is None:
            why = "it does not exist" if not output_dir.is_dir() else "no checkpoint was saved"
            raise ValueError(
                f"--resume_from_checkpoint {value} resumes the latest checkpoint-N folder of --output_dir "
                f"{output_dir}, and it has none ({why}). Give the --output_dir of the run to resume, or drop "
                "--resume_from_checkpoint to start a new run.")
        return latest
    folder = Path(value).expanduser()
    if not folder.is_dir():
        found = _checkpoints_in(output_dir)
        raise ValueError(
            f"--resume_from_checkpoint {value}: no such folder. "
            + (f"--output_dir {output_dir} holds {found}: give one of them, or `true` for the latest."
               if found else f"--output_dir {output_dir} holds no checkpoint-N folder either. Give the checkpoint-N "
               "folder of the run to resume (its --save_steps wrote them), or drop --resume_from_checkpoint.")
        )
    names = {path.name for path in folder.iterdir()}
    has_optimizer = any(name.startswith(("optimizer", "global_step")) for name in names)
    if "trainer_state.json" in names and has_optimizer:
        return str(folder)
    inside = _checkpoints_in(folder)
    if inside:
        raise ValueError(
            f"--resume_from_checkpoint {value} is a run's output folder, not one of its checkpoints: its final save "
            "keeps no optimiser state, so the run would go on with a fresh optimiser and learning-rate schedule. "
            f"Resume from its latest checkpoint, {inside[-1]} (or --output_dir {value} --resume_from_checkpoint true)."
        )
    what = ("a checkpoint saved without its optimiser state (--save_only_model)" if "trainer_state.json" in names
            else "no Trainer checkpoint (no trainer_state.json): a saved model?")
    raise ValueError(
        f"--resume_from_checkpoint {value} holds {what}; resuming would go on with a fresh optimiser and "
        f"learning-rate schedule. Start a new run from its weights instead: --model_name_or_path {value}, without "
        "--resume_from_checkpoint."
    )


def check_label_names(model, label_names: list[str] | None) -> None:
    """Refuse `--label_names` that name no target the model's forward takes (transformers' `find_labels` of the
    model, through a PEFT wrapper): the collators hand the model its targets under those names, so another name (a
    typo, or one copied from another model's example) would be ignored without a word."""
    if not label_names:
        return
    from transformers.utils import find_labels

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    accepted = find_labels(type(base))
    wrong = [name for name in label_names if name not in accepted]
    if wrong:
        raise ValueError(
            f"--label_names {' '.join(label_names)}: {wrong} {'is' if len(wrong) == 1 else 'are'} no target of "
            f"{type(base).__name__}, whose forward takes {accepted} (the example's collator gives it those). Drop "
            f"--label_names (the default is {accepted}), or name some of them."
        )


class SegmentationTrainer(Trainer):
    """`Trainer` with segmentation evaluation and the papers' optimiser recipe.

    Evaluation gives PQ, SQ, RQ (all, things, stuff), mIoU, pixel accuracy and the loss when batches carry
    DETR-style labels (per image `class_labels` and `masks`, for panoptic models), and mIoU, pixel accuracy and
    the loss when they carry semantic label maps `(batch, height, width)` (LSeg; `postprocess` then returns one
    label map per image).

    Args:
        categories: COCO-panoptic categories of the label set (category id = label id + 1).
        postprocess: `(outputs, target_sizes) -> list of {"segmentation", "segments_info"}`, for example the
            image processor's `post_process_panoptic_segmentation` with the thresholds wanted.
        semantic_postprocess: `(outputs, target_sizes) -> list of label maps`, for example the image processor's
            `post_process_semantic_segmentation`: mIoU is then measured on it (no score threshold) rather than on
            the panoptic segments (where unassigned pixels count as label 0).
        lr_multipliers: module path -> learning-rate factor (`{"detr.model.backbone": 0.1}`); the optimiser is
            AdamW over `seem_hf.training.parameter_groups` (no decay on norms, biases, embeddings).
        lr_milestones: when given, SEEM's schedule replaces `lr_scheduler_type`: linear warm-up over the
            arguments' warm-up steps, then the rate times `lr_gamma` at each milestone (fractions of training).
        eval_data_collator: the evaluation batches' collator when it differs from training's (DETR's box-only
            first stage trains without masks but is evaluated with them).
        extra_evaluation: `(model) -> {name: value}`, more metrics on the evaluation set (SEEM's referring and
            interactive ones), run on every process in every evaluation, in training and at the end alike; the
            names get the `eval_` prefix.
        semantic_metric: an `evaluate` module with the inputs of seem_hf's `mean_iou`
            (`evaluate.load(seem_hf.metrics.evaluate_module_path("mean_iou"), num_process=, process_id=,
            experiment_id=)`): the label maps of semantic batches then go to its `add_batch`, and process 0 computes
            mIoU and pixel accuracy over every process's maps (evaluate's file rendez-vous in its cache folder,
            which the processes must share); the numbers reach every process.
        Other arguments: those of `Trainer`. Batches must carry `labels` as DETR's (`class_labels`, `masks`).
    """

    def __init__(
        self,
        *args,
        categories: list[dict],
        postprocess: Callable,
        semantic_postprocess: Callable | None = None,
        lr_multipliers: dict[str, float] | None = None,
        lr_milestones: tuple[float, ...] | None = None,
        lr_gamma: float = 0.1,
        eval_data_collator: Callable | None = None,
        extra_evaluation: Callable | None = None,
        semantic_metric=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        check_label_names(self.model, self.args.label_names)
        if self.train_dataset is not None:
            self.add_callback(DatasetEpochCallback(self.train_dataset))
        self.add_callback(LabelSetCallback([category["name"] for category in categories]))
        self.eval_data_collator = eval_data_collator or self.data_collator
        self.extra_evaluation, self.semantic_metric = extra_evaluation, semantic_metric
        self.categories = categories
        self.postprocess, self.semantic_postprocess = postprocess, semantic_postprocess
        self.lr_multipliers, self.lr_milestones, self.lr_gamma = lr_multipliers, lr_milestones, lr_gamma

    def train(self, *args, **kwargs):
        """transformers' `train`, saying first (on the main process) how many processes share the run and the global
        batch: what the learning rate and the step count mean. A run resumed from a checkpoint of other labels is
        refused (`check_resumed_labels`), and so is a folder that holds no checkpoint to resume
        (`resolve_resume_checkpoint`, which also reads `"true"` as the latest checkpoint, as `True`)."""
        if "resume_from_checkpoint" in kwargs:
            value = kwargs.pop("resume_from_checkpoint")
        else:
            value, args = (args[0], args[1:]) if args else (None, args)
        checkpoint = resolve_resume_checkpoint(value, self.args.output_dir)
        if checkpoint is not None:
            check_resumed_labels(checkpoint, [category["name"] for category in self.categories])
        kwargs["resume_from_checkpoint"] = checkpoint
        if self.args.process_index == 0:
            per_device, processes = self.args.per_device_train_batch_size, self.args.world_size
            accumulation = self.args.gradient_accumulation_steps
            print(f"Training on {processes} process(es): global batch {per_device * processes * accumulation} "
                  f"= {per_device} per device x {processes} process(es) x {accumulation} accumulation step(s).",
                  flush=True)
        return super().train(*args, **kwargs)

    def get_train_dataloader(self) -> DataLoader:
        """transformers' data loader, except for a dataset that reads its own shards (`reads_own_shards`:
        `seem_hf.data.StreamedPanopticDataset`): accelerate would read every batch of such an `IterableDataset` on
        process 0 and send it to the others (or, told not to, make each process keep one batch in N of its own
        part), so it is loaded as it is, on every process."""
        if not getattr(self.train_dataset, "reads_own_shards", False):
            return super().get_train_dataloader()
        args = self.args
        return DataLoader(self.train_dataset, batch_size=self._train_batch_size, collate_fn=self.data_collator,
                          num_workers=args.dataloader_num_workers, pin_memory=args.dataloader_pin_memory,
                          persistent_workers=args.dataloader_persistent_workers and args.dataloader_num_workers > 0,
                          prefetch_factor=args.dataloader_prefetch_factor if args.dataloader_num_workers else None)

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            args = self.args
            self.optimizer = torch.optim.AdamW(
                parameter_groups(model or self.model, args.learning_rate, args.weight_decay, self.lr_multipliers),
                lr=args.learning_rate,
                betas=(args.adam_beta1, args.adam_beta2),
                eps=args.adam_epsilon,
            )
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None and self.lr_milestones:
            self.lr_scheduler = warmup_multistep_schedule(
                optimizer or self.optimizer,
                num_training_steps,
                warmup_steps=self.args.get_warmup_steps(num_training_steps),
                milestones=self.lr_milestones,
                gamma=self.lr_gamma,
            )
        return super().create_scheduler(num_training_steps, optimizer)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """The metrics above, the loss and `extra_evaluation`'s metrics.

        Images are evaluated one per forward (as detectron2 evaluates SEEM and Mask2Former), so `eval_loss` is the
        mean over images of each image's own loss, and neither it nor the metrics depend on how images are grouped
        into batches or shared among processes: any number of processes reports the numbers of one
        (`per_device_eval_batch_size` does not apply here). Random draws inside evaluation (the loss's point
        sampling and matching, SEEM's prompt sampling) come from the run's seed plus the image's index, set afresh
        for every image and restored afterwards: the same weights give the same numbers whenever and wherever they
        are evaluated, and evaluating does not change what training draws next."""
        devices = [self.args.device] if self.args.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.args.seed)
            metrics = self._segmentation_metrics(eval_dataset, metric_key_prefix)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _segmentation_metrics(self, eval_dataset, metric_key_prefix: str) -> dict[str, float]:
        dataloader, indices = self._sharded_eval_dataloader(self.eval_dataset if eval_dataset is None else eval_dataset)
        model = self.model
        was_training = model.training
        model.eval()
        panoptic = PanopticQualityAccumulator(self.categories)
        semantic = SemanticSegmentationAccumulator(len(self.categories), ignore_index=self._semantic_ignore_index())
        loss_sum = torch.zeros(2, dtype=torch.float64, device=self.args.device)  # sum of losses, images
        semantic_only = False
        for index, batch in zip(indices, dataloader):
            torch.manual_seed(self.args.seed + index)  # this image's draws, wherever it is evaluated
            batch = self._prepare_inputs(batch)
            with torch.no_grad(), local_target_count():
                outputs = model(**batch)
            loss_sum += torch.tensor([float(outputs.loss), 1.0], dtype=torch.float64, device=loss_sum.device)
            height, width = batch["pixel_values"].shape[-2:]
            results = self.postprocess(outputs, target_sizes=[(height, width)] * len(batch["labels"]))
            if isinstance(batch["labels"], torch.Tensor):  # semantic labels (B, H, W): padding is already ignored
                semantic_only = True
                if self.semantic_metric is not None:
                    self.semantic_metric.add_batch(predictions=results, references=batch["labels"])
                    continue
                for result, target in zip(results, batch["labels"]):
                    semantic.update(result.cpu().numpy(), target.cpu().numpy())
                continue
            semantic_only = False
            semantic_maps = [None] * len(results)
            if self.semantic_postprocess is not None:
                semantic_maps = self.semantic_postprocess(outputs, target_sizes=[(height, width)] * len(results))
            for result, semantic_map, target, valid in zip(
                results, semantic_maps, batch["labels"], batch["pixel_mask"].bool()
            ):
                rows, cols = int(valid.any(1).sum()), int(valid.any(0).sum())
                self._add_image(panoptic, semantic, result, target, rows, cols, semantic_map)
        panoptic.sync()
        semantic.sync()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(loss_sum)
        metrics = {f"{metric_key_prefix}_loss": float(loss_sum[0] / loss_sum[1].clamp(min=1))}
        if not semantic_only:
            scores = panoptic.compute()
            for name, suffix in (("All", ""), ("Things", "_things"), ("Stuff", "_stuff")):
                for key in ("pq", "sq", "rq"):
                    metrics[f"{metric_key_prefix}_{key}{suffix}"] = 100 * scores[name][key]
        semantic_scores = semantic.compute()
        if semantic_only and self.semantic_metric is not None:
            semantic_scores = self._semantic_metric_scores()
        metrics[f"{metric_key_prefix}_miou"] = 100 * semantic_scores["mean_iou"]
        metrics[f"{metric_key_prefix}_pixel_accuracy"] = 100 * semantic_scores["pixel_accuracy"]
        if self.extra_evaluation is not None:
            unwrapped = self.accelerator.unwrap_model(model)
            extra = self.extra_evaluation(unwrapped)
            metrics.update({f"{metric_key_prefix}_{name}": value for name, value in extra.items()})
        model.train(was_training)
        return metrics

    def _semantic_ignore_index(self) -> int:
        """The label of unlabelled pixels in semantic batches: the evaluation collator's `ignore_index` (what it
        fills them with, as SemanticCollator), else the model config's, else 255."""
        for owner in (self.eval_data_collator, getattr(self.accelerator.unwrap_model(self.model), "config", None)):
            if isinstance(getattr(owner, "ignore_index", None), int):
                return owner.ignore_index
        return 255

    def _semantic_metric_scores(self) -> dict:
        """`semantic_metric`'s numbers on every process (evaluate returns them on process 0 only)."""
        scores = [self.semantic_metric.compute(num_labels=len(self.categories),
                                               ignore_index=self._semantic_ignore_index())]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.broadcast_object_list(scores, src=0)
        return scores[0]

    def create_model_card(self, *args, **kwargs):
        """Keeps the model card seem_hf wrote (with the run's metrics) when pushing; transformers' own otherwise."""
        from pathlib import Path

        card = Path(self.args.output_dir) / "README.md"
        if card.exists() and "\n- seem_hf\n" in card.read_text(encoding="utf-8"):
            return None
        return super().create_model_card(*args, **kwargs)

    def _sharded_eval_dataloader(self, dataset) -> tuple[DataLoader, range]:
        """One image per batch, each process taking every world_size-th image, so no image is evaluated twice
        (transformers' loader repeats images to even out batches, which would bias summed statistics); and the
        dataset indices it yields, in order."""
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        indices = range(rank, len(dataset), world)
        loader = DataLoader(Subset(dataset, indices), batch_size=1, collate_fn=self.eval_data_collator,
                            num_workers=self.args.dataloader_num_workers)
        return loader, indices

    @staticmethod
    def _add_image(panoptic, semantic, result, target, rows: int, cols: int, semantic_map=None) -> None:
        """Compare one image's prediction with its target inside the unpadded region."""
        masks = target["masks"][:, :rows, :cols].bool().cpu().numpy()
        labels = target["class_labels"].cpu().numpy()
        gt_ids = np.zeros((rows, cols), dtype=np.int64)
        for index, mask in enumerate(masks):
            gt_ids[mask] = index + 1
        gt_segments = [
            {"id": i + 1, "category_id": int(label) + 1, "iscrowd": 0, "area": int((gt_ids == i + 1).sum())}
            for i, label in enumerate(labels)
        ]
        gt_segments = [segment for segment in gt_segments if segment["area"] > 0]
        pred_ids = result["segmentation"][:rows, :cols].cpu().numpy().astype(np.int64).clip(min=0)
        present = set(np.unique(pred_ids).tolist())
        pred_segments = [
            {"id": info["id"], "category_id": int(info["label_id"]) + 1}
            for info in result["segments_info"]
            if info["id"] in present
        ]
        panoptic.update(gt_ids, gt_segments, pred_ids, pred_segments)
        # Unlabelled target pixels are ignored; unassigned predicted pixels count as label 0.
        gt_semantic = semantic_from_panoptic(gt_ids, {s["id"]: s["category_id"] - 1 for s in gt_segments},
                                             semantic.ignore_index)
        if semantic_map is None:
            pred_semantic = semantic_from_panoptic(pred_ids, {s["id"]: s["category_id"] - 1 for s in pred_segments}, 0)
        else:
            pred_semantic = semantic_map[:rows, :cols].cpu().numpy()
        semantic.update(pred_semantic, gt_semantic)


__all__ = ["LabelSetCallback", "SegmentationTrainer", "check_label_names", "check_resumed_labels", "checkpoint_labels",
           "resolve_resume_checkpoint"]

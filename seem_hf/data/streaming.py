"""Training from data larger than one machine: `--streaming` reads a `datasets` dataset as an `IterableDataset`
(Hub shards, local parquet or other files `load_dataset` streams, or a `save_to_disk` folder read in shards), in
any layout `seem_hf.data.hf_datasets` recognises, and nothing is downloaded or decoded before it is needed.

Each training process reads only its own shards (`datasets.distributed.split_dataset_by_node`: shard `i` goes to
process `i mod world_size` when the shard count is a multiple of the process count; otherwise every process reads
every shard and keeps its own share of the rows), so no image is seen twice in a pass and none is skipped. Each
process then repeats its part for as long as the run lasts (`--max_steps`); pass `p` draws augmentation epoch `p`.
Processes never wait on each other for data, which an uneven split would otherwise make them do at a pass's end.

What a map-style dataset gives from its whole table comes from the first rows here: label names from the
description or `ClassLabel` features as usual, and from the first `HEAD_ROWS` training rows (read without their
images) which labels are things (panoptic rows without a stored vocabulary) and the union of the rows'
`semantic_class_to_id` (instance layout): a class that no row of those names is refused, naming it, when a later
row's pixels use it. The first `CHECKED_ROWS` training rows, images and maps included, are checked before training
as a map-style split's rows are (`PanopticRows.check_labels`); the stream is read again from its start to train, and
later rows are checked as they are read. A shard that cannot be read (a truncated download) is named in the error.
The evaluation split is streamed too and its first `--max_eval_samples` rows (`DEFAULT_EVAL_ROWS` if not given) are
kept on disk for the run's evaluations.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path

import datasets
import pyarrow
import torch
from datasets.distributed import split_dataset_by_node

from seem_hf.data.hf_datasets import (
    PanopticRows,
    TrainingSplits,
    _training_layout,
    check_evaluation_classes,
    dataset_vocabulary,
    find_validation_split,
    paired_image_folders,
    read_image_files,
)
from seem_hf.data.transforms import LargeScaleJitter, augment_panoptic_row

HEAD_ROWS = 1000
"""Training rows read (without images) for what a stream's first rows tell: the thing labels of panoptic rows that
carry no vocabulary, the classes the instance layout's `semantic_class_to_id` names."""
CHECKED_ROWS = 100
"""Training rows of a stream read before training, images and maps included, and checked as a map-style split's
rows are (`PanopticRows.check_labels`); later rows are checked as training reads them."""
DEFAULT_EVAL_ROWS = 500
"""Evaluation rows kept when `--max_eval_samples` is not given."""
SAVED_SHARDS = 64
"""Shards a `save_to_disk` folder is read in (a multiple of any power-of-two process count up to 64)."""


def stream_dataset_dict(name: str, config_name: str | None = None) -> tuple[datasets.IterableDatasetDict, Path | None]:
    """Dataset `name` as an `IterableDatasetDict`, and its local folder (None for a Hub dataset): a `save_to_disk`
    folder and a folder of images paired with label maps (`paired_image_folders`) are read in `SAVED_SHARDS` shards
    (`to_iterable_dataset`), other folders and Hub names through `load_dataset(..., streaming=True)` (one shard per
    file)."""
    path = Path(name).expanduser()
    saved = path.exists() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists())
    paired = paired_image_folders(path) if path.is_dir() and not saved else None
    if saved or paired is not None:
        loaded = paired if paired is not None else datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.Dataset):
            loaded = datasets.DatasetDict({"train": loaded})
        streams = datasets.IterableDatasetDict()
        for split, part in loaded.items():
            streams[split] = part.to_iterable_dataset(num_shards=max(1, min(SAVED_SHARDS, len(part))))
            streams[split].info.description = part.info.description  # the vocabulary load_coco_panoptic stores
        return streams, path
    try:
        loaded = datasets.load_dataset(str(path) if path.exists() else name, config_name, streaming=True)
    except Exception as error:  # offline, a typo, a private repository: say which and what to check
        raise ValueError(
            f"--dataset_name {name!r} could not be streamed ({type(error).__name__}: {error}). Check the path, or "
            "the Hub name and your connection (HF_HUB_OFFLINE, `hf auth login`)."
        ) from error
    if isinstance(loaded, datasets.IterableDataset):
        loaded = datasets.IterableDatasetDict({"train": loaded})
    return loaded, path if path.exists() else None


def shard_files(stream: datasets.IterableDataset) -> list[str]:
    """The files a stream reads, one per shard (empty when `datasets` does not say)."""
    iterable = getattr(stream, "_ex_iterable", None)
    while iterable is not None:
        files = (getattr(iterable, "kwargs", None) or {}).get("files")
        if files:
            return [str(getattr(file, "path", file)) for file in files]
        iterable = getattr(iterable, "ex_iterable", None)
    return []


def _unreadable(files: list[str]) -> list[str]:
    """Those of the local parquet `files` whose footer cannot be read (truncated or not parquet)."""
    import pyarrow.parquet as pq

    broken = []
    for file in files:
        if file.endswith(".parquet") and Path(file).exists():
            try:
                pq.ParquetFile(file)
            except (pyarrow.ArrowException, OSError) as error:
                broken.append(f"{file} ({error})")
    return broken


def _shard_error(stream: datasets.IterableDataset, name: str, split: str, error: Exception) -> ValueError:
    """An error reading a stream, naming the shard files that cannot be read (or all its files) and the fix."""
    files = shard_files(stream)
    broken = _unreadable(files)
    if broken:
        which = "cannot read " + "; ".join(broken)
    else:
        shown = ", ".join(files[:20]) + (f" and {len(files) - 20} more" if len(files) > 20 else "")
        which = f"one of its shards cannot be read ({shown or 'the files datasets lists'})"
    return ValueError(
        f"{name}, split {split!r}: {which}: {type(error).__name__}: {error}. A shard cut short by an interrupted "
        "download or copy: download or write it again (for the Hub, delete it from the cache, ~/.cache/huggingface, "
        "and rerun)."
    )


def _rows(stream: datasets.IterableDataset, name: str, split: str, source=None) -> Iterator[dict]:
    """The rows of `source` (by default `stream`), an unreadable shard raising `_shard_error`."""
    iterator = iter(stream if source is None else source)
    while True:
        try:
            row = next(iterator)
        except StopIteration:
            return
        except (pyarrow.ArrowException, OSError) as error:
            raise _shard_error(stream, name, split, error) from error
        yield row


def check_shards(stream: datasets.IterableDataset, name: str, split: str) -> None:
    """Refuse, before training, a split whose local parquet shards cannot be opened, or hold other columns than the
    split's features (which `datasets` would fail to cast when training reached them); footers only are read."""
    import pyarrow.parquet as pq

    files = shard_files(stream)
    broken = _unreadable(files)
    if broken:
        raise ValueError(
            f"{name}, split {split!r}: cannot read " + "; ".join(broken) + ". A shard cut short by an interrupted "
            "download or copy: write it again, or move it out of the folder."
        )
    columns = set(stream.features or ())
    differing = []
    for file in files:
        if columns and file.endswith(".parquet") and Path(file).exists():
            names = set(pq.read_schema(file).names)
            if names != columns:
                parts = [f"{word} {sorted(extra)}" for word, extra in (("without", columns - names),
                                                                      ("with", names - columns)) if extra]
                differing.append(f"{file} ({', '.join(parts)})")
    if differing:
        raise ValueError(
            f"{name}, split {split!r}: shards whose columns are not the split's {sorted(columns)}: "
            + "; ".join(differing) + ". Every shard of a split is read with the same columns: rename or add the "
            "columns of these (datasets' rename_column, then to_parquet), or move them out of the folder."
        )


def _head(stream: datasets.IterableDataset, columns: list[str], count: int, name: str = "dataset",
          split: str = "train") -> datasets.Dataset:
    """The first `count` rows of `stream`'s `columns` (images among them left encoded: `_undecoded`) as a small
    in-memory `Dataset` with the stream's features and description: what `dataset_vocabulary` and the check of the
    first rows read."""
    features = datasets.Features({column: stream.features[column] for column in columns})
    rows = list(itertools.islice(_rows(stream, name, split, stream.select_columns(columns)), count)) if columns else []
    return datasets.Dataset.from_list(rows, features=features,
                                      info=datasets.DatasetInfo(description=stream.info.description, features=features))


def _undecoded(stream: datasets.IterableDataset) -> datasets.IterableDataset:
    """`stream` with its image columns left encoded (`{"bytes", "path"}`)."""
    for column, feature in stream.features.items():
        if isinstance(feature, datasets.Image):
            stream = stream.cast_column(column, datasets.Image(decode=False))
    return stream


def _kept_rows(stream: datasets.IterableDataset, count: int, name: str = "dataset",
               split: str = "evaluation") -> datasets.Dataset:
    """The first `count` rows of `stream`, written to the `datasets` cache (images stay encoded: memory is flat)."""
    features = stream.features
    undecoded = _undecoded(stream)

    def rows():
        yield from itertools.islice(_rows(stream, name, split, undecoded), count)

    try:
        return datasets.Dataset.from_generator(rows, features=undecoded.features).cast(features)
    except datasets.exceptions.DatasetGenerationError as error:  # datasets wraps what the generator raised
        cause = error.__cause__ or error.__context__
        if isinstance(cause, ValueError) and "cannot" in str(cause):
            raise cause from None
        raise


def load_streaming_splits(
    name: str,
    config_name: str | None = None,
    train_split: str = "train",
    validation_split: str | None = None,
    image_column: str = "image",
    annotation_column: str | None = None,
    max_eval_samples: int | None = None,
    do_reduce_labels: bool = False,
    evaluate_on: str | None = "validation",
    layout: str | None = None,
) -> TrainingSplits:
    """`load_training_splits` for `--streaming`: `train` is the training split's `datasets.IterableDataset` (not yet
    split among processes: `StreamedPanopticDataset` does that), `evaluation` the first rows of the evaluation
    split (or of the training split, `evaluate_on="train"`) as `PanopticRows`, read in the training split's labels
    by name. `layout` forces one of the layouts (`--dataset_layout`); by default the columns and the first row's
    annotation decide. The first `CHECKED_ROWS` training rows are checked before training (`PanopticRows.check_labels`);
    a `ValueError` lists the bad ones."""
    splits, folder = stream_dataset_dict(name, config_name)
    if train_split not in splits:
        raise ValueError(f"{name} has no split {train_split!r} (it has {sorted(splits)}); pick one with --train_split.")
    train = read_image_files(splits[train_split], image_column, annotation_column, folder)
    if train.features is None:
        raise ValueError(f"{name}: the streamed split {train_split!r} declares no features, so its layout cannot be "
                         "told before reading it; save it with `datasets` (features included) or drop --streaming.")
    check_shards(train, name, train_split)
    first = None
    candidates = [annotation_column] if annotation_column is not None else ["annotation", "label"]
    column = next((candidate for candidate in candidates if candidate in train.features), None)
    if layout is None and column is not None and "segments" not in train.features:
        first = next(_rows(train, name, train_split, train.select_columns([column])), {}).get(column)
    layout = _training_layout(train, train.features, image_column, annotation_column, first, layout, name, folder,
                              do_reduce_labels)
    # Every column but the images, so that label names in any feature count as they do for a map-style dataset.
    described = [column for column, feature in train.features.items()
                 if column not in (layout.image_column, layout.annotation_column)
                 and not isinstance(feature, datasets.Image)]
    head = _head(train, described, HEAD_ROWS if layout.name in ("panoptic", "instance") else 1, name, train_split)
    labels = dataset_vocabulary(head, layout, name, folder, do_reduce_labels, split=train_split)
    if "union of" in labels.source:
        labels = dataclasses.replace(labels, source=labels.source.replace("union of", "union of the first"))

    def rows(dataset, split, relabel=None):
        return PanopticRows(dataset, layout, labels.class_ids, do_reduce_labels, name=name, split=split,
                            vocabulary=labels.vocabulary, relabel=relabel, label_source=labels.source)

    first_rows = _head(_undecoded(train), list(train.features), CHECKED_ROWS, name, train_split)
    try:  # a stream can be read again: training starts at its first row
        rows(first_rows, train_split).check_labels()
    except ValueError as error:
        raise ValueError(f"{error}\nOnly the stream's first {CHECKED_ROWS} rows were checked before training; later "
                         "rows are checked as training reads them.") from None
    evaluation, relabel, evaluation_split = None, None, "evaluation"
    if evaluate_on == "validation":
        found, candidates = find_validation_split(splits, validation_split, train_split)
        if found is None:
            raise ValueError(
                f"{name} has no validation split {' or '.join(repr(c) for c in candidates)} (it has {sorted(splits)}): "
                "name one with --validation_split, evaluate on the first training rows with --eval_split train, or "
                "turn evaluation off with --eval_strategy no (--train_val_split needs a map-style dataset: drop "
                "--streaming)."
            )
        evaluation = read_image_files(splits[found], image_column, annotation_column, folder)
        evaluation_split = found
        check_shards(evaluation, name, found)
    elif evaluate_on == "train":
        evaluation = train
    kept = None
    if evaluation is not None:
        kept = _kept_rows(evaluation, max_eval_samples or DEFAULT_EVAL_ROWS, name, evaluation_split)
        kept.info.description = evaluation.info.description
        if evaluate_on == "validation":
            relabel = check_evaluation_classes(labels, kept, layout, name, folder, train_split, evaluation_split,
                                               do_reduce_labels)
    evaluation_rows = None if kept is None else rows(kept, evaluation_split, relabel)
    if evaluation_rows is not None:
        evaluation_rows.check_labels()  # the kept rows are on disk: read them now, not at the first evaluation
    return TrainingSplits(rows(train, train_split), evaluation_rows, labels.vocabulary, layout, labels.source)


class StreamedPanopticDataset(torch.utils.data.IterableDataset):
    """The training items of `AugmentedPanopticDataset` from a stream: this process's shards of `rows.dataset` (a
    `datasets.IterableDataset`, split with `split_dataset_by_node(rank, world_size)`), converted by `rows`
    (`PanopticRows`) and augmented by `jitter`, repeated without end (pass `p` is augmentation epoch `p`; rows
    without an `image_id` column are numbered by their place in this process's part).

    `reads_own_shards` tells `SegmentationTrainer` to give it to its data loader as it is (accelerate would
    otherwise read every batch on process 0 and send it to the others, or shard it a second time). Data-loader
    workers share the process's shards as `datasets` assigns them."""

    reads_own_shards = True

    def __init__(self, rows: PanopticRows, jitter: LargeScaleJitter, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        self.rows, self.jitter, self.seed = rows, jitter, seed
        self.rank, self.world_size = rank, world_size

    @property
    def dataset(self) -> datasets.IterableDataset:
        """This process's part of the stream."""
        return split_dataset_by_node(self.rows.dataset, rank=self.rank, world_size=self.world_size)

    def __iter__(self):
        part = self.dataset
        for epoch in itertools.count():
            part.set_epoch(epoch)
            empty = True
            for position, row in enumerate(_rows(part, self.rows.name, self.rows.split)):
                empty = False
                row = self.rows.convert(row, position)
                try:
                    yield augment_panoptic_row(row, self.jitter, self.seed, epoch)
                except Exception as error:  # name the sample: one bad file must not be a mystery in a long run
                    raise ValueError(f"Could not read or augment {self.rows.name}, split {self.rows.split!r}, row "
                                     f"{position} of process {self.rank}'s part (image_id {row['image_id']}): "
                                     f"{error}") from error
            if empty:
                raise ValueError(f"{self.rows.name}, split {self.rows.split!r}: process {self.rank} of "
                                 f"{self.world_size} got no rows (the split has fewer rows than processes).")


__all__ = ["DEFAULT_EVAL_ROWS", "HEAD_ROWS", "StreamedPanopticDataset", "check_shards", "load_streaming_splits",
           "shard_files", "stream_dataset_dict"]

"""The shapes stream: samples are pure functions of (seed, index), ranks and workers never repeat one, the rows are
the on-disk loader's, samples validate, and the held-out set is fixed and disjoint from the stream."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import random

import numpy as np
import pytest
import torch
from accelerate.data_loader import prepare_data_loader

from seem_hf.data import (
    AugmentedPanopticDataset,
    LargeScaleJitter,
    ShapesStream,
    load_coco_panoptic,
    make_shapes_dataset,
    validate_coco_panoptic,
    vocabulary_of,
)
from seem_hf.data.shapes import SHAPES_VOCABULARY

def _digest(row) -> str:
    text = json.dumps({key: row[key] for key in ("image_id", "height", "width", "segments", "groundings")})
    return hashlib.sha256(np.asarray(row["image"]).tobytes() + np.asarray(row["panoptic"]).tobytes()
                          + text.encode()).hexdigest()


def _digests_in_child(seed: int, indices: list[int], queue) -> None:
    # Another process whose global random states differ: a sample must depend on (seed, index) alone.
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    np.random.random(1000)
    queue.put([_digest(ShapesStream(seed=seed, image_size=64).sample(index)) for index in indices])


def _image_ids(rows):
    return [int(row["image_id"]) for row in rows]


def test_same_bytes_for_the_same_seed_and_index_in_another_process():
    """A forked process (a data-loader worker's situation) with scrambled global random states. Not a fresh
    interpreter: importing seem_hf costs ~8 s of CPU, and the generator reads no hash-ordered state."""
    indices = [0, 7, 123_456_789]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_digests_in_child, args=(5, indices, queue))
    child.start()
    other = queue.get(timeout=120)
    child.join()
    here = [_digest(ShapesStream(seed=5, image_size=64).sample(index)) for index in reversed(indices)][::-1]
    assert other == here
    assert len(set(here)) == 3  # different indices, different samples
    assert _digest(ShapesStream(seed=6, image_size=64).sample(0)) != here[0]


def test_rows_are_the_loaders_and_samples_validate(tmp_path):
    """The first samples of the stream are the on-disk folder's train split, row for row, and the folder (the
    stream's samples written out) passes the validator; the held-out set is its val split."""
    paths = make_shapes_dataset(tmp_path / "shapes", num_train=3, num_val=2, image_size=64, seed=4)
    for split in ("train", "val"):
        split_paths = [paths[split][key] for key in ("image_dir", "panoptic_dir", "panoptic_json", "grounding_json")]
        assert validate_coco_panoptic(*split_paths) == []
    loaded = load_coco_panoptic(*(paths["train"][key] for key in ("image_dir", "panoptic_dir", "panoptic_json",
                                                                  "grounding_json")))
    stream = ShapesStream(seed=4, image_size=64, epoch_size=3)
    for row, streamed in zip(loaded, stream):
        # Both decode the same JPEG and PNG bytes: equal, not close.
        assert np.array_equal(np.asarray(row["image"]), np.asarray(streamed["image"]))
        assert np.array_equal(np.asarray(row["panoptic"]), np.asarray(streamed["panoptic"]))
        assert {key: row[key] for key in row if key not in ("image", "panoptic")} == {
            key: streamed[key] for key in streamed if key not in ("image", "panoptic")}
    assert vocabulary_of(stream).id2label == vocabulary_of(loaded).id2label == SHAPES_VOCABULARY.id2label
    held_out = ShapesStream.held_out(2, seed=4, image_size=64)
    val = load_coco_panoptic(paths["val"]["image_dir"], paths["val"]["panoptic_dir"], paths["val"]["panoptic_json"])
    for row, streamed in zip(val, held_out):
        assert np.array_equal(np.asarray(row["image"]), np.asarray(streamed["image"]))
    # The augmentation and the collators' inputs take stream rows as they take the folder's.
    item = AugmentedPanopticDataset(stream, LargeScaleJitter(64, 0.5, 2.0), seed=1)[0]
    assert item["image"].shape == (64, 64, 3) and len(item["masks"]) == len(item["labels"]) > 0
    assert item["sentences"] and len(item["grounding_masks"]) == len(item["sentences"])


def test_held_out_set_is_fixed_and_never_a_training_sample():
    held_out = ShapesStream.held_out(4, seed=0, image_size=64)
    first = [np.asarray(row["image"]) for row in held_out]
    held_out.set_epoch(3)
    assert all(np.array_equal(a, np.asarray(b["image"])) for a, b in zip(first, held_out))  # fixed
    training = [np.asarray(ShapesStream(seed=0, image_size=64).sample(index)["image"]) for index in range(4)]
    assert not any(np.array_equal(a, b) for a in first for b in training)  # another seed space


def _collect(stream, num_processes: int, epoch: int = 0) -> list[list[int]]:
    """The image ids each process reads in one epoch through Trainer's data path: a DataLoader with a random
    sampler and 2 workers, sharded by accelerate's `prepare_data_loader` (what `Trainer.get_train_dataloader`
    calls through `accelerator.prepare`), with accelerate's seedable sampler as Trainer uses it."""
    per_process = []
    for process_index in range(num_processes):
        loader = torch.utils.data.DataLoader(stream, batch_size=3, sampler=torch.utils.data.RandomSampler(stream),
                                             num_workers=2, collate_fn=_image_ids)
        loader = prepare_data_loader(loader, num_processes=num_processes, process_index=process_index,
                                     put_on_device=False, use_seedable_sampler=True)
        loader.set_epoch(epoch)
        per_process.append([image_id for batch in loader for image_id in batch])
    return per_process


def test_ranks_and_workers_never_repeat_a_sample():
    stream = ShapesStream(seed=0, image_size=64, epoch_size=24)
    ranks = _collect(stream, num_processes=2)
    everything = ranks[0] + ranks[1]
    assert len(everything) == len(set(everything)) == 24  # no repeat across 2 ranks x 2 workers
    assert set(everything) == set(range(1, 25))  # and nothing skipped: samples 0..23
    assert len(ranks[0]) == len(ranks[1]) == 12
    # A new epoch (one process: accelerate forwards set_epoch to the dataset) reads the next block of samples.
    (second,) = _collect(stream, num_processes=1, epoch=1)
    assert sorted(second) == list(range(25, 49))


def test_index_and_argument_errors():
    stream = ShapesStream(seed=0, image_size=64, epoch_size=5)
    with pytest.raises(IndexError, match="outside this epoch's 5 samples"):
        stream[5]
    with pytest.raises(ValueError, match="epoch_size"):
        ShapesStream(epoch_size=0)
    with pytest.raises(ValueError, match="non-negative"):
        stream.sample(-1)

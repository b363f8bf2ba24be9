"""`--streaming` (issue 22, item 4): a dataset published as parquet shards (what push_to_hub uploads) or saved with
save_to_disk is read as an `IterableDataset`, each process its own shards (`split_dataset_by_node`): in a pass no
image is seen twice and none is skipped, with 1 process or 2 (torchrun, the example script)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from seem_hf.data import (
    SHAPES_VOCABULARY,
    LargeScaleJitter,
    StreamedPanopticDataset,
    load_coco_panoptic,
    load_streaming_splits,
    make_shapes_dataset,
)
from seem_hf.data.hf_datasets import for_the_hub
from tests.examples.test_example_runs import _tiny
from tests.helpers import load_example

REPOSITORY = Path(__file__).resolve().parents[2]
TRAIN_IMAGES, SHARDS = 8, 4


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """The bundled shapes data (8 + 2 images at 64 px) as push_to_hub writes it: parquet shards of 2 training rows
    (4 files) and one validation file, labels carried by for_the_hub."""
    root = tmp_path_factory.mktemp("streamed")
    paths = make_shapes_dataset(root / "shapes", num_train=TRAIN_IMAGES, num_val=2, image_size=64, seed=0)
    loaded = {split: load_coco_panoptic(p["image_dir"], p["panoptic_dir"], p["panoptic_json"], p["grounding_json"])
              for split, p in paths.items()}
    published = for_the_hub(datasets.DatasetDict({"train": loaded["train"], "validation": loaded["val"]}))
    (root / "hub" / "data").mkdir(parents=True)
    for index in range(SHARDS):
        published["train"].shard(SHARDS, index, contiguous=True).to_parquet(
            root / "hub" / "data" / f"train-{index:05d}-of-{SHARDS:05d}.parquet")
    published["validation"].to_parquet(root / "hub" / "data" / "validation-00000-of-00001.parquet")
    return root / "hub"


def _read(splits, rank: int, world_size: int, count: int) -> list[dict]:
    stream = StreamedPanopticDataset(splits.train, LargeScaleJitter(64, 0.5, 2.0), seed=0, rank=rank,
                                     world_size=world_size)
    return list(itertools.islice(iter(stream), count))


def test_each_process_reads_its_own_shards_once_per_pass(shards):
    splits = load_streaming_splits(str(shards))
    assert splits.train.dataset.n_shards == SHARDS and splits.layout.name == "panoptic"
    assert splits.vocabulary.id2label == SHAPES_VOCABULARY.id2label
    assert len(splits.evaluation) == 2  # the validation split's rows, kept for the run's evaluations
    alone = [item["image_id"] for item in _read(splits, 0, 1, TRAIN_IMAGES)]
    assert sorted(alone) == list(range(1, TRAIN_IMAGES + 1))
    parts = [_read(splits, rank, 2, TRAIN_IMAGES) for rank in (0, 1)]  # two passes of 4 rows each
    first = [[item["image_id"] for item in part[:4]] for part in parts]
    assert not set(first[0]) & set(first[1]) and sorted(first[0] + first[1]) == sorted(alone)
    for part, ids in zip(parts, first):
        again = part[4:]
        assert [item["image_id"] for item in again] == ids  # the next pass: the same rows ...
        assert [item["epoch"] for item in part] == [0] * 4 + [1] * 4  # ... with the next epoch's augmentation
        assert any(not np.array_equal(a["image"], b["image"]) for a, b in zip(part[:4], again))


def test_a_save_to_disk_folder_streams_in_shards(tmp_path):
    paths = make_shapes_dataset(tmp_path / "shapes", num_train=4, num_val=2, image_size=64, seed=0)
    loaded = {split: load_coco_panoptic(p["image_dir"], p["panoptic_dir"], p["panoptic_json"], p["grounding_json"])
              for split, p in paths.items()}
    datasets.DatasetDict({"train": loaded["train"], "val": loaded["val"]}).save_to_disk(tmp_path / "saved")
    splits = load_streaming_splits(str(tmp_path / "saved"), max_eval_samples=1)
    assert splits.train.dataset.n_shards == 4 and len(splits.evaluation) == 1
    assert splits.vocabulary.coco_categories() == SHAPES_VOCABULARY.coco_categories()  # from the description
    first = _read(splits, 0, 1, 1)[0]
    assert first["image_id"] == 1 and first["sentences"]  # groundings travel too


def test_streaming_refuses_what_needs_the_whole_table(shards, tmp_path):
    lseg = load_example("finetune_lseg")
    arguments = ["--dataset_name", str(shards), "--streaming", "true", "--output_dir", str(tmp_path / "run"),
                 *_tiny("finetune_lseg")]
    with pytest.raises(ValueError, match="--max_train_samples needs a map-style dataset"):
        lseg.main([*arguments, "--max_train_samples", "4", "--max_steps", "1"])
    with pytest.raises(ValueError, match="without end: set the run's length with --max_steps"):
        lseg.main([*arguments, "--num_train_epochs", "1", "--max_steps", "-1"])
    with pytest.raises(ValueError, match="--streaming streams the dataset --dataset_name names"):
        lseg.main(["--streaming", "true", "--output_dir", str(tmp_path / "run"), *_tiny("finetune_lseg")])


def test_two_processes_train_on_their_own_shards(shards, tmp_path):
    """The LSeg example under torchrun with 2 processes, 2 steps of 2 images each: the 8 training images are each
    read once, by one process."""
    environment = dict(os.environ, PYTHONPATH=str(REPOSITORY), OMP_NUM_THREADS="1", TRANSFORMERS_VERBOSITY="error")
    arguments = ["--dataset_name", str(shards), "--streaming", "true", "--output_dir", str(tmp_path / "run"),
                 *_tiny("finetune_lseg"), "--max_steps", "2", "--eval_strategy", "no"]
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "tests.data.streaming_run", str(tmp_path), *arguments],
        cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert f"streamed, {SHARDS} shard(s) among 2 process(es)" in completed.stdout
    seen = [json.loads((tmp_path / f"seen-{rank}.json").read_text())[:4] for rank in (0, 1)]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(1, TRAIN_IMAGES + 1))
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 2


def test_one_process_trains_and_evaluates_from_the_stream(shards, tmp_path):
    metrics = load_example("finetune_lseg").main(
        ["--dataset_name", str(shards), "--streaming", "true", "--output_dir", str(tmp_path / "run"),
         *_tiny("finetune_lseg"), "--max_steps", "2", "--eval_steps", "2"])
    assert "eval_miou" in metrics
    assert "(streamed)" in (tmp_path / "run" / "README.md").read_text()


def test_a_truncated_shard_is_named(shards, tmp_path):
    import shutil

    copy = tmp_path / "hub"
    shutil.copytree(shards, copy)
    shard = copy / "data" / f"train-00001-of-{SHARDS:05d}.parquet"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"split 'train': cannot read .*train-00001-of-00004.parquet .*write it again"):
        load_streaming_splits(str(copy))


def test_a_streamed_instance_split_names_a_class_its_first_rows_lack(tmp_path, monkeypatch):
    """The instance layout's label names come from the union of the first HEAD_ROWS rows' semantic_class_to_id; a
    later row whose pixels use a class none of them names is refused naming it and HEAD_ROWS: before training when
    it is one of the first CHECKED_ROWS rows, otherwise when training reads it."""
    import PIL.Image

    from seem_hf.data import streaming

    def annotation(class_id):
        values = np.zeros((16, 16, 3), np.uint8)
        values[..., 0] = 1
        values[4:8, 4:8, 0], values[4:8, 4:8, 1] = class_id, 1
        return PIL.Image.fromarray(values)

    rows = datasets.Dataset.from_dict({
        "image": [PIL.Image.new("RGB", (16, 16))] * 3, "annotation": [annotation(2), annotation(3), annotation(4)],
        "semantic_class_to_id": [{"road": 1, "car": 2}, {"road": 1, "bike": 3}, {"road": 1, "truck": 4}],
    }).cast_column("image", datasets.Image()).cast_column("annotation", datasets.Image())
    rows.to_parquet(tmp_path / "data" / "train.parquet")
    monkeypatch.setattr(streaming, "HEAD_ROWS", 2)
    with pytest.raises(ValueError, match=r"row 2: this row's semantic_class_to_id names classes 'truck' \(id 4\)"):
        load_streaming_splits(str(tmp_path), evaluate_on=None)  # one of the rows read before training
    monkeypatch.setattr(streaming, "CHECKED_ROWS", 2)
    splits = load_streaming_splits(str(tmp_path), evaluate_on=None)
    assert splits.vocabulary.id2label == {0: "road", 1: "car", 2: "bike"} and "first 2 rows" in splits.describe()
    stream = StreamedPanopticDataset(splits.train, LargeScaleJitter(64, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"row 2: this row's semantic_class_to_id names classes 'truck' \(id 4\)"):
        list(itertools.islice(iter(stream), 3))


def test_the_first_streamed_rows_are_checked_before_training(tmp_path, monkeypatch):
    """A streamed training split was not checked before training: a class id no label names, or a row without its
    map, failed the run when a batch reached the row. Its first CHECKED_ROWS rows are now read before training with
    the checks of a map-style split (PanopticRows.check_labels), and the error says later rows are checked as they
    are read. The check reads the stream without consuming it: training starts at its first row."""
    import PIL.Image

    from seem_hf.data import streaming

    label = np.zeros((64, 64), np.uint8)
    label[16:48, 16:48] = 1
    stray = label.copy()
    stray[:4] = 7

    def write(folder, labels):
        rows = datasets.Dataset.from_dict({
            "image": [PIL.Image.new("RGB", (64, 64), (30, 90, 160))] * len(labels),
            "label": [None if value is None else PIL.Image.fromarray(value) for value in labels],
            "image_id": list(range(100, 100 + len(labels))),
        }).cast_column("image", datasets.Image()).cast_column("label", datasets.Image())
        (folder / "data").mkdir(parents=True)
        for index in range(2):
            rows.shard(2, index, contiguous=True).to_parquet(folder / "data" / f"train-{index:05d}-of-00002.parquet")
        (folder / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
        return str(folder)

    bad = write(tmp_path / "bad", [label, label, stray, label, None, label])
    with pytest.raises(ValueError) as error:
        load_example("finetune_lseg").main(["--dataset_name", bad, "--streaming", "true", "--output_dir",
                                            str(tmp_path / "run"), "--max_steps", "1", "--eval_strategy", "no",
                                            *_tiny("finetune_lseg")])
    assert ("split 'train': 2 row(s) that the run would refuse when it reached them (checked before training starts):"
            "\n  row 2: class ids [7] in column 'label' are no label (labels: ids 0 'sea', 1 'boat', from "
            "id2label.json; 255 is unlabelled)") in str(error.value), str(error.value)
    assert ("\n  row 4: column 'label' is empty in this row: give the row its annotation, or drop the row.\n"
            f"Only the stream's first {streaming.CHECKED_ROWS} rows were checked before training; later rows are "
            "checked as training reads them.") in str(error.value), str(error.value)
    assert not (tmp_path / "run" / "trainer_state.json").exists()

    monkeypatch.setattr(streaming, "CHECKED_ROWS", 2)
    splits = load_streaming_splits(bad, evaluate_on=None)
    stream = StreamedPanopticDataset(splits.train, LargeScaleJitter(64, 1.0, 1.0))
    items = iter(stream)
    assert [next(items)["image_id"] for _ in range(2)] == [100, 101]  # the check consumed nothing
    with pytest.raises(ValueError, match=r"split 'train', row 2: class ids \[7\] in column 'label' are no label"):
        next(items)  # past the rows checked: named as it is read


def test_a_shard_whose_columns_differ_is_named_before_training(tmp_path):
    """Local parquet shards of one split whose columns differ (a later shard's map column named 'mask', not 'label')
    failed when training reached that shard, with datasets' "CastError: Couldn't cast ... because column names don't
    match"; the footers are read before training and the shard is named with the columns it lacks and has."""
    import PIL.Image

    label = np.zeros((64, 64), np.uint8)
    label[16:48, 16:48] = 1
    rows = datasets.Dataset.from_dict({"image": [PIL.Image.new("RGB", (64, 64))] * 2,
                                       "label": [PIL.Image.fromarray(label)] * 2})
    rows = rows.cast_column("image", datasets.Image()).cast_column("label", datasets.Image())
    (tmp_path / "data").mkdir()
    rows.to_parquet(tmp_path / "data" / "train-00000-of-00002.parquet")
    rows.rename_column("label", "mask").to_parquet(tmp_path / "data" / "train-00001-of-00002.parquet")
    (tmp_path / "id2label.json").write_text(json.dumps({"0": "sea", "1": "boat"}))
    with pytest.raises(ValueError) as error:
        load_streaming_splits(str(tmp_path), evaluate_on=None)
    shard = tmp_path / "data" / "train-00001-of-00002.parquet"
    assert (f"split 'train': shards whose columns are not the split's ['image', 'label']: {shard} (without ['label'], "
            "with ['mask'])") in str(error.value), str(error.value)

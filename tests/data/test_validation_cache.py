"""A dataset that passed validation is not checked again at the next training start (issue 22, item 4: COCO's 118k
images took ~45 minutes to validate on 2 cores), unless one of its files changed; problems are never remembered."""

from __future__ import annotations

import json
import os

import numpy as np
import PIL.Image
import pytest

from seem_hf.data import load_coco_panoptic, make_shapes_dataset, validation
from seem_hf.data.validation import VALIDATION_CACHE_ENV, dataset_fingerprint


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """A fresh cache folder, and the number of full validations run."""
    monkeypatch.setenv(VALIDATION_CACHE_ENV, str(tmp_path / "cache"))
    calls = []
    full = validation.validate_coco_panoptic

    def counting(*args):
        calls.append(args)
        return full(*args)

    monkeypatch.setattr(validation, "validate_coco_panoptic", counting)
    return calls


def _load(paths):
    return load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"],
                              paths["grounding_json"])


def test_a_dataset_that_passed_is_not_validated_again(counted, tmp_path):
    paths = make_shapes_dataset(tmp_path / "shapes", num_train=3, num_val=1, image_size=64)["train"]
    first = _load(paths)
    assert len(counted) == 1
    again = _load(paths)
    assert len(counted) == 1 and again[2]["segments"] == first[2]["segments"]
    # Any changed file (here an image rewritten with other pixels) is checked again, and its problem reported.
    image = paths["image_dir"] / "000002.jpg"
    PIL.Image.new("RGB", (32, 32)).save(image)
    with pytest.raises(ValueError, match="000002.jpg"):
        _load(paths)
    assert len(counted) == 2
    with pytest.raises(ValueError, match="000002.jpg"):  # a problem is never remembered
        _load(paths)
    assert len(counted) == 3


def test_the_fingerprint_follows_the_files_and_the_cache_can_be_off(monkeypatch, tmp_path, counted):
    paths = make_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=1, image_size=64)["train"]
    arguments = (paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"], paths["grounding_json"])
    before = dataset_fingerprint(*arguments)
    assert dataset_fingerprint(*arguments) == before
    png = next(paths["panoptic_dir"].glob("*.png"))
    stat = png.stat()
    os.utime(png, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # touched: maybe edited
    touched = dataset_fingerprint(*arguments)
    assert touched != before
    (paths["image_dir"] / "extra.txt").write_text("x")  # a file added
    assert dataset_fingerprint(*arguments) not in (before, touched)
    monkeypatch.setenv(VALIDATION_CACHE_ENV, "off")
    _load(paths)
    _load(paths)
    assert len(counted) == 2


def test_editing_a_png_in_a_subfolder_invalidates_the_cache(counted, tmp_path):
    """`city/1.png` is a legal file name: an edit there is an edit of the dataset, so the pass is not reused and the
    broken PNG is reported (the fingerprint used to list only the folders' top-level files)."""
    paths = make_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=0, image_size=64)["train"]
    data = json.loads(paths["panoptic_json"].read_text())
    for folder, entries in ((paths["image_dir"], data["images"]), (paths["panoptic_dir"], data["annotations"])):
        (folder / "city").mkdir()
        for entry in entries:
            (folder / entry["file_name"]).rename(folder / "city" / entry["file_name"])
            entry["file_name"] = f"city/{entry['file_name']}"
    paths["panoptic_json"].write_text(json.dumps(data))
    _load(paths)
    _load(paths)
    assert len(counted) == 1
    png = paths["panoptic_dir"] / data["annotations"][0]["file_name"]
    ids = np.asarray(PIL.Image.open(png)).copy()
    ids[:8, :8] = (7, 0, 0)  # a segment the JSON does not list
    PIL.Image.fromarray(ids).save(png)
    with pytest.raises(ValueError, match="city/.*segment 7"):
        _load(paths)
    assert len(counted) == 2

"""The generator's second domain (`terrain`, for transfer): its samples are pure functions of (seed, index), its
held-out set is fixed and apart from its stream and from the first domain's, its classes and sentences are its own,
its segments are the shapes and textures their labels say, and the examples train on it (`--domain terrain`)."""

from __future__ import annotations

import hashlib
import io
import json
import re

import numpy as np
import PIL.Image
import pytest

from seem_hf.data import (
    SHAPES_DOMAINS,
    SHAPES_VOCABULARY,
    TERRAIN_VOCABULARY,
    ShapesStream,
    load_coco_panoptic,
    make_shapes_dataset,
    validate_coco_panoptic,
)
from seem_hf.data.panoptic_format import rgb2id
from seem_hf.data.shapes import _shape_mask, _Thing, shapes_sample_files

SIZE = 96

# Fraction of its bounding box each shape fills, from its geometry: hexagon 3/4, ring pi/4 (1 - 0.45^2),
# diamond 1/2, cross (2 * 2 * 0.44 - 0.44^2) / 4.
FILL_RATIOS = {"hexagon": 0.75, "ring": 0.617, "diamond": 0.5, "cross": 0.392}


def _digest(files: dict) -> str:
    return hashlib.sha256(files["jpeg"] + files["png"] + json.dumps(files["groundings"]).encode()).hexdigest()


def _row_digest(row) -> str:
    return hashlib.sha256(np.asarray(row["image"]).tobytes() + np.asarray(row["panoptic"]).tobytes()).hexdigest()


def test_same_bytes_for_the_same_seed_and_index_and_not_the_first_domain_s():
    first = [_digest(shapes_sample_files(4, index, SIZE, domain="terrain")) for index in (0, 9)]
    again = [_digest(shapes_sample_files(4, index, SIZE, domain="terrain")) for index in (9, 0)][::-1]
    assert first == again and len(set(first)) == 2
    assert _digest(shapes_sample_files(5, 0, SIZE, domain="terrain")) != first[0]
    assert _digest(shapes_sample_files(4, 0, SIZE)) != first[0]  # the default domain is the first one
    # the stream reads the same sample
    stream = ShapesStream(seed=4, image_size=SIZE, domain="terrain")
    files = shapes_sample_files(4, 9, SIZE, domain="terrain")
    assert np.array_equal(np.asarray(stream.sample(9)["image"]), np.asarray(PIL.Image.open(io.BytesIO(files["jpeg"]))))
    assert stream.vocabulary is TERRAIN_VOCABULARY


def test_held_out_set_is_fixed_and_apart_from_the_stream_and_the_first_domain():
    held_out = [_row_digest(row) for row in ShapesStream.held_out(4, seed=0, image_size=SIZE, domain="terrain")]
    assert held_out[:2] == [_row_digest(row) for row in ShapesStream.held_out(2, 0, SIZE, "terrain")]
    stream = ShapesStream(seed=0, image_size=SIZE, domain="terrain")
    stream.set_epoch(3)  # the stream moves on; the held-out set does not
    assert not set(held_out) & {_row_digest(stream[index]) for index in range(4)}
    assert not set(held_out) & {_row_digest(row) for row in ShapesStream.held_out(4, 0, SIZE)}
    assert [_row_digest(row) for row in ShapesStream.held_out(4, seed=0, image_size=SIZE, domain="terrain")] == held_out


def test_classes_and_sentences_are_disjoint_from_the_first_domain():
    first_names = {category.name for category in SHAPES_VOCABULARY.categories}
    names = {category.name for category in TERRAIN_VOCABULARY.categories}
    assert not first_names & names and len(names) == 8
    first_domain = SHAPES_DOMAINS["shapes"]
    first_words = first_names | set(first_domain.thing_colors) | set(first_domain.sizes)
    seen = set()
    for index in range(12):
        row = ShapesStream(seed=1, image_size=SIZE, domain="terrain").sample(index)
        labels = {TERRAIN_VOCABULARY.categories[segment["label"]].name for segment in row["segments"]}
        seen |= labels
        for grounding in row["groundings"]:
            for sentence in grounding["sentences"]:
                assert not set(re.findall(r"[a-z]+", sentence)) & first_words, sentence
                assert any(name in sentence for name in labels), sentence
    assert seen == names  # every class turns up


def test_shapes_fill_their_boxes_as_their_geometry_says():
    for shape, ratio in FILL_RATIOS.items():
        mask = _shape_mask(_Thing(shape, "orange", "big", (100.0, 100.0), 60.0), 200, 200)
        rows, cols = np.nonzero(mask)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert mask.sum() / box == pytest.approx(ratio, abs=0.03), shape  # rasterisation of a 120 px shape


def test_segments_are_what_their_labels_say():
    """Stuff: a segment's mean colour is nearest its own texture's base colour. Things: a segment away from the
    borders fills its box as its label's shape does, unless a later shape occludes it (measured: 34 of 40 at 128 px
    match the nearest fill ratio, all of the mismatches occluded); more than three quarters must."""
    names = {category["id"]: category["name"] for category in TERRAIN_VOCABULARY.coco_categories()}
    stuff_colors = {c.name: np.array(c.color, dtype=float) for c in TERRAIN_VOCABULARY.categories if not c.isthing}
    matched = things = 0
    for index in range(40):
        files = shapes_sample_files(0, index, 128, "train", domain="terrain")
        ids = rgb2id(np.asarray(PIL.Image.open(io.BytesIO(files["png"]))))
        pixels = np.asarray(PIL.Image.open(io.BytesIO(files["jpeg"])), dtype=float)
        for segment in files["annotation"]["segments_info"]:
            name, mask = names[segment["category_id"]], ids == segment["id"]
            if name in stuff_colors:
                mean = pixels[mask].mean(0)
                assert min(stuff_colors, key=lambda s: np.abs(stuff_colors[s] - mean).sum()) == name
                continue
            x, y, width, height = segment["bbox"]
            if min(x, y) == 0 or max(x + width, y + height) >= 128 or segment["area"] < 150:
                continue  # cut by the border, or too few pixels for a ratio
            ratio = segment["area"] / (width * height)
            things += 1
            matched += min(FILL_RATIOS, key=lambda shape: abs(FILL_RATIOS[shape] - ratio)) == name
    assert things >= 30 and matched / things > 0.75, (matched, things)


def test_the_folder_validates_and_loads_with_the_second_vocabulary(tmp_path):
    paths = make_shapes_dataset(tmp_path, num_train=3, num_val=2, image_size=64, domain="terrain")
    validate_coco_panoptic(paths["val"]["image_dir"], paths["val"]["panoptic_dir"], paths["val"]["panoptic_json"])
    rows = load_coco_panoptic(paths["val"]["image_dir"], paths["val"]["panoptic_dir"], paths["val"]["panoptic_json"],
                              paths["val"]["grounding_json"])
    held_out = ShapesStream.held_out(2, seed=0, image_size=64, domain="terrain")
    assert [_row_digest(row) for row in rows] == [_row_digest(row) for row in held_out]
    with pytest.raises(ValueError, match="Unknown shapes domain 'desert'.*shapes.*terrain"):
        ShapesStream(domain="desert")


def test_an_example_trains_on_the_second_domain(tmp_path, capsys):
    from transformers import AutoProcessor

    from tests.examples.test_finetune_lseg import TINY, _example

    output = tmp_path / "run"
    metrics = _example().main(["--output_dir", str(output), "--stream", "--domain", "terrain", "--max_steps", "1",
                               "--eval_steps", "1", "--save_strategy", "no", *TINY])
    assert "eval_miou" in metrics
    labels = set(AutoProcessor.from_pretrained(output).id2label.values())
    assert labels == {category.name for category in TERRAIN_VOCABULARY.categories}
    assert "domain terrain" in (output / "README.md").read_text()
    with pytest.raises(ValueError, match="--domain terrain picks a generated dataset; drop it"):
        _example().main(["--output_dir", str(tmp_path / "x"), "--domain", "terrain", "--data_dir", str(tmp_path),
                         *TINY])

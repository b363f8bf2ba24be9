"""The bundled dataset, the COCO-panoptic reader and its validator (every bad-data case named)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from seem_hf.data import (
    SHAPES_VOCABULARY,
    CategorySpec,
    LabelVocabulary,
    grounding_mask,
    id2rgb,
    load_coco_panoptic,
    make_shapes_dataset,
    panoptic_targets,
    rgb2id,
    semantic_map,
    validate_coco_panoptic,
)
from seem_hf.data.validate import main as validate_main


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return root, make_shapes_dataset(root, num_train=6, num_val=2, image_size=96, seed=3)


def _arguments(paths, split="train"):
    split = paths[split]
    return split["image_dir"], split["panoptic_dir"], split["panoptic_json"], split["grounding_json"]


def _copy(shapes, tmp_path):
    root, _ = shapes
    shutil.copytree(root, tmp_path / "copy")
    copy = tmp_path / "copy"
    return copy, {
        "train": {
            "image_dir": copy / "train",
            "panoptic_dir": copy / "annotations" / "panoptic_train",
            "panoptic_json": copy / "annotations" / "panoptic_train.json",
            "grounding_json": copy / "annotations" / "grounding_train.json",
        }
    }


def _digest(folder):
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_same_seed_same_bytes(tmp_path, shapes):
    first = make_shapes_dataset(tmp_path / "a", num_train=3, num_val=1, image_size=64, seed=7)
    make_shapes_dataset(tmp_path / "b", num_train=3, num_val=1, image_size=64, seed=7)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    make_shapes_dataset(tmp_path / "c", num_train=3, num_val=1, image_size=64, seed=8)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert sorted(first) == ["train", "val"]
    assert len(list(first["train"]["image_dir"].glob("*.jpg"))) == 3


def test_bundled_dataset_is_sound_and_complete(shapes):
    _, paths = shapes
    for split in ("train", "val"):
        assert validate_coco_panoptic(*_arguments(paths, split)) == []
    data = json.loads(paths["train"]["panoptic_json"].read_text())
    assert [c["name"] for c in data["categories"]] == [c.name for c in SHAPES_VOCABULARY.categories]
    things = [s for a in data["annotations"] for s in a["segments_info"] if s["category_id"] > 4]
    stuff = [s for a in data["annotations"] for s in a["segments_info"] if s["category_id"] <= 4]
    assert things and stuff
    grounding = json.loads(paths["train"]["grounding_json"].read_text())
    by_image = {}
    for annotation in grounding["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation["sentences"][0]["raw"])
    for sentences in by_image.values():
        assert len(sentences) == len(set(sentences))  # each sentence identifies one segment


def test_loader_rows_masks_and_semantic_maps(shapes):
    _, paths = shapes
    dataset = load_coco_panoptic(*_arguments(paths))
    data = json.loads(paths["train"]["panoptic_json"].read_text())
    assert len(dataset) == len(data["annotations"]) == 6  # counts in, counts out
    row = dataset[0]
    assert isinstance(row["image"], PIL.Image.Image) and row["image"].size == (96, 96)
    targets = panoptic_targets(row)
    assert targets["masks"].shape == (len(row["segments"]), 96, 96)
    assert not (targets["masks"].sum(0) > 1).any()  # segments never overlap
    assert targets["masks"].any(0).all()  # the synthetic scenes have no void
    assert (targets["masks"].sum((1, 2)) == [s["area"] for s in row["segments"]]).all()
    assert set(targets["labels"].tolist()) <= set(range(len(SHAPES_VOCABULARY)))
    semantic = semantic_map(row)
    written = np.asarray(PIL.Image.open(paths["train"]["semantic_dir"] / "000001.png"))
    assert np.array_equal(semantic, written)
    for grounding in row["groundings"]:
        mask = grounding_mask(grounding, row["height"], row["width"])
        segment = [s for s in row["segments"] if s["id"] == grounding["segment_id"]][0]
        assert np.array_equal(mask, targets["masks"][row["segments"].index(segment)])
        assert grounding["sentences"]


def test_polygon_groundings_are_read(shapes, tmp_path):
    _, paths = _copy(shapes, tmp_path)
    grounding_json = paths["train"]["grounding_json"]
    data = json.loads(grounding_json.read_text())
    data["annotations"][0]["segmentation"] = [[10, 10, 40, 10, 40, 30, 10, 30]]
    del data["annotations"][0]["segment_id"]  # a sentence about a region, not one of the segments
    grounding_json.write_text(json.dumps(data))
    row = load_coco_panoptic(*_arguments(paths))[0]
    mask = grounding_mask(row["groundings"][0], row["height"], row["width"])
    assert mask[15:25, 15:35].all() and not mask[50:].any()


def _expect(paths, *fragments):
    problems = validate_coco_panoptic(*_arguments(paths))
    text = "\n".join(problems)
    for fragment in fragments:
        assert fragment in text, (fragment, problems)
    noun = "problem" if len(problems) == 1 else "problems"
    with pytest.raises(ValueError, match=f"(?s){len(problems)} {noun} in .*python -m seem_hf.data.validate") as error:
        load_coco_panoptic(*_arguments(paths))
    assert problems[0] in str(error.value)
    return problems


def test_png_id_missing_from_json_and_json_segment_missing_from_png(shapes, tmp_path):
    _, paths = _copy(shapes, tmp_path)
    panoptic_json = paths["train"]["panoptic_json"]
    data = json.loads(panoptic_json.read_text())
    dropped = data["annotations"][0]["segments_info"].pop(0)
    data["annotations"][1]["segments_info"].append(
        {"id": 999, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 1, 1], "area": 1}
    )
    panoptic_json.write_text(json.dumps(data))
    problems = _expect(
        paths,
        f"000001.png: image 1: segment {dropped['id']}: {dropped['area']} pixels in the PNG but not in segments_info",
        "000002.png: image 2: segment 999: in segments_info but has no pixel in the PNG",
        f"(image 1): segment_id {dropped['id']} is not a segment of image 1",  # its grounding sentences too
    )
    assert len(problems) == 3


def test_unknown_category_wrong_area_and_duplicates(shapes, tmp_path):
    _, paths = _copy(shapes, tmp_path)
    panoptic_json = paths["train"]["panoptic_json"]
    data = json.loads(panoptic_json.read_text())
    segments = data["annotations"][2]["segments_info"]
    segments[0]["category_id"] = 77
    segments[1]["area"] += 5
    panoptic_json.write_text(json.dumps(data))
    _expect(
        paths,
        f"000003.png: image 3: segment {segments[0]['id']}: unknown category_id 77",
        f"000003.png: image 3: segment {segments[1]['id']}: area {segments[1]['area']} in the JSON",
    )
    segments[0]["category_id"] = 1
    segments.append(dict(segments[0]))
    panoptic_json.write_text(json.dumps(data))
    _expect(paths, f"000003.png: image 3: segment id {segments[0]['id']} appears 2 times")


def test_size_mismatch_missing_and_corrupt_files(shapes, tmp_path):
    _, paths = _copy(shapes, tmp_path)
    split = paths["train"]
    PIL.Image.new("RGB", (50, 40)).save(split["image_dir"] / "000001.jpg")
    (split["image_dir"] / "000002.jpg").unlink()
    (split["panoptic_dir"] / "000003.png").write_bytes(b"not a png")
    _expect(
        paths,
        "000001.jpg: image 1: size (40, 50) (H, W) differs from the JSON's height x width (96, 96)",
        "000002.jpg: file is missing",
        "000003.png: cannot be read as an image",
    )


def test_bad_groundings_and_unannotated_images(shapes, tmp_path):
    _, paths = _copy(shapes, tmp_path)
    grounding_json = paths["train"]["grounding_json"]
    data = json.loads(grounding_json.read_text())
    data["annotations"][0]["segmentation"] = [[1, 1, 5, 5]]
    data["annotations"][1]["sentences"] = []
    data["annotations"][2]["image_id"] = 4242
    grounding_json.write_text(json.dumps(data))
    panoptic_json = paths["train"]["panoptic_json"]
    panoptic = json.loads(panoptic_json.read_text())
    panoptic["annotations"].pop()
    panoptic_json.write_text(json.dumps(panoptic))
    _expect(
        paths,
        "grounding annotation 1 (image 1): polygon with 4 coordinates; a polygon needs at least 3 (x, y) points",
        "grounding annotation 2 (image 1): `sentences` must be a non-empty list",
        "grounding annotation 3 (image 4242): image_id 4242 is not among the panoptic JSON's images",
        "panoptic_train.json: image 6 (000006.jpg) has no panoptic annotation",
    )


def test_missing_or_broken_json(tmp_path):
    assert "file is missing" in validate_coco_panoptic(tmp_path, tmp_path, tmp_path / "nope.json")[0]
    (tmp_path / "broken.json").write_text('{\n  "images": [],\n  "annotations": [}\n')
    assert validate_coco_panoptic(tmp_path, tmp_path, tmp_path / "broken.json") == [
        f"{tmp_path / 'broken.json'}: not valid JSON at line 3, column 19: Expecting value"
    ]
    for text, fragment in (("[]", "must hold a JSON object"), ('{"images": {}, "annotations": [], "categories": []}',
                                                               "`images` must be a list")):
        (tmp_path / "odd.json").write_text(text)
        assert fragment in validate_coco_panoptic(tmp_path, tmp_path, tmp_path / "odd.json")[0]


def test_validate_command(shapes, tmp_path, capsys):
    _, paths = shapes
    image_dir, panoptic_dir, panoptic_json, grounding_json = _arguments(paths)
    assert validate_main([str(image_dir), str(panoptic_dir), str(panoptic_json), "--grounding", str(grounding_json)]) == 0
    _, broken = _copy(shapes, tmp_path)
    (broken["train"]["panoptic_dir"] / "000001.png").unlink()
    image_dir, panoptic_dir, panoptic_json, _ = _arguments(broken)
    assert validate_main([str(image_dir), str(panoptic_dir), str(panoptic_json)]) == 1
    assert "000001.png: file is missing" in capsys.readouterr().out


def test_panoptic_png_encoding_round_trips():
    ids = np.array([[0, 1, 255], [256, 65536, 256**3 - 1]])
    assert np.array_equal(rgb2id(id2rgb(ids)), ids)
    with pytest.raises(ValueError, match="RGB"):
        rgb2id(np.zeros((4, 4)))


def test_category_spec_and_vocabulary():
    vocabulary = LabelVocabulary([CategorySpec("road", (1, 2, 3), False), CategorySpec("car", (4, 5, 6), True)])
    assert vocabulary.id2label == {0: "road", 1: "car"} and vocabulary.thing_label_ids == [1]
    assert vocabulary.coco_categories()[1] == {
        "id": 2, "name": "car", "supercategory": "thing", "isthing": 1, "color": [4, 5, 6]
    }
    again, contiguous = LabelVocabulary.from_coco(vocabulary.coco_categories())
    assert again.id2label == vocabulary.id2label and contiguous == {1: 0, 2: 1}
    with pytest.raises(ValueError, match="Duplicate"):
        LabelVocabulary([CategorySpec("a", (0, 0, 0), True)] * 2)
    with pytest.raises(ValueError, match="color"):
        CategorySpec("a", (0, 0, 300), True)


def test_semantic_maps_leave_crowd_and_void_out(shapes, tmp_path):
    from seem_hf.data.prepare_semantic import main as prepare_main

    _, paths = _copy(shapes, tmp_path)
    panoptic_json = paths["train"]["panoptic_json"]
    data = json.loads(panoptic_json.read_text())
    crowd = data["annotations"][0]["segments_info"][-1]
    crowd["iscrowd"] = 1
    panoptic_json.write_text(json.dumps(data))
    png = np.asarray(PIL.Image.open(paths["train"]["panoptic_dir"] / "000001.png")).copy()
    png[:5, :5] = 0  # some void (the JSON's areas and boxes follow)
    PIL.Image.fromarray(png).save(paths["train"]["panoptic_dir"] / "000001.png")
    for segment in data["annotations"][0]["segments_info"]:
        mask = rgb2id(png) == segment["id"]
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        segment["area"] = int(mask.sum())
        segment["bbox"] = [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]
    panoptic_json.write_text(json.dumps(data))
    prepare_main([str(paths["train"]["panoptic_dir"]), str(panoptic_json), str(tmp_path / "semantic")])
    semantic = np.asarray(PIL.Image.open(tmp_path / "semantic" / "000001.png"))
    ids = rgb2id(png)
    assert (semantic[ids == crowd["id"]] == 255).all() and (semantic[:5, :5] == 255).all()
    other = data["annotations"][0]["segments_info"][0]
    if other["id"] != crowd["id"]:
        assert (semantic[ids == other["id"]] == other["category_id"] - 1).all()
    from seem_hf.data import write_semantic_maps

    wide = write_semantic_maps(paths["train"]["panoptic_dir"], panoptic_json, tmp_path / "wide", ignore_index=1000)
    assert np.asarray(PIL.Image.open(wide[0])).max() == 1000  # 16-bit maps when the ignore index needs it


def test_semantic_maps_keep_the_annotations_subfolders(shapes, tmp_path):
    from seem_hf.data import write_semantic_maps

    _, paths = _copy(shapes, tmp_path)
    panoptic_dir, panoptic_json = paths["train"]["panoptic_dir"], paths["train"]["panoptic_json"]
    data = json.loads(panoptic_json.read_text())
    for city, annotation in zip(("city1", "city2"), data["annotations"][:2]):  # one base name in two folders
        (panoptic_dir / city).mkdir()
        shutil.move(panoptic_dir / annotation["file_name"], panoptic_dir / city / "a.png")
        annotation["file_name"] = f"{city}/a.png"
    panoptic_json.write_text(json.dumps(data))
    written = write_semantic_maps(panoptic_dir, panoptic_json, tmp_path / "semantic")
    assert {tmp_path / "semantic" / "city1" / "a.png", tmp_path / "semantic" / "city2" / "a.png"} <= set(written)
    assert len(set(written)) == len(data["annotations"])  # none written over another


def test_augmented_on_the_fly(shapes):
    from seem_hf.data import AugmentedPanopticDataset, LargeScaleJitter

    _, paths = shapes
    dataset = load_coco_panoptic(*_arguments(paths))
    augmented = AugmentedPanopticDataset(dataset, LargeScaleJitter(output_size=64), seed=1)
    first, again = augmented[0], augmented[0]
    assert first["image"].shape == (64, 64, 3) and first["valid"].shape == (64, 64)
    assert len(first["labels"]) == len(first["masks"]) == len(dataset[0]["segments"]) - first["segments_dropped"]
    assert np.array_equal(first["image"], again["image"])  # one epoch, one sample per image
    augmented.set_epoch(1)
    assert not np.array_equal(augmented[0]["image"], first["image"])  # a new epoch draws afresh
    replay = AugmentedPanopticDataset(dataset, LargeScaleJitter(output_size=64), seed=1)
    assert np.array_equal(replay[0]["image"], first["image"])  # same seed and epoch, same sample


def test_a_corrupt_training_image_is_named(tmp_path):
    from seem_hf.data import AugmentedPanopticDataset, LargeScaleJitter

    paths = make_shapes_dataset(tmp_path / "shapes", num_train=2, num_val=0, image_size=64, seed=0)["train"]
    dataset = load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"])
    broken = sorted(Path(paths["image_dir"]).iterdir())[1]
    broken.write_bytes(b"not an image")
    augmented = AugmentedPanopticDataset(dataset, LargeScaleJitter(output_size=64))
    assert augmented[0]["image"].shape == (64, 64, 3)
    with pytest.raises(ValueError, match=broken.name):
        augmented[1]

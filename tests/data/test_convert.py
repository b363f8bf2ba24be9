"""The converters to COCO-panoptic as a user meets them (`seem_hf.data.convert`'s functions and its CLI): each
format built in the test from the bundled shapes dataset, whose segments are known, converts back to the same masks
and classes; the output passes the validator; every problem of a hostile input is reported at once, naming file,
image and segment; and an example trains on a converter's output through `--data_dir`."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import PIL.Image
import pytest
from pycocotools import mask as mask_utils
from scipy import ndimage

from seem_hf.data import (
    coco_panoptic_paths,
    load_coco_panoptic,
    make_shapes_dataset,
    panoptic_targets,
    vocabulary_of,
    write_semantic_maps,
)
from seem_hf.data.convert import (
    ConversionError,
    add_sentences,
    convert_coco_instances,
    convert_instance_annotations,
    convert_semantic_masks,
    main,
    read_category_table,
)
from seem_hf.data.shapes import SHAPES_VOCABULARY
from seem_hf.data.validation import validate_coco_panoptic
from seem_hf.testing import FIXTURES
from tests.helpers import load_example

NAMES = [category.name for category in SHAPES_VOCABULARY.categories]
STUFF = [category.name for category in SHAPES_VOCABULARY.categories if not category.isthing]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Six 64 px shapes images (train split) and their rows: the known segments every format is derived from."""
    root = tmp_path_factory.mktemp("shapes")
    paths = make_shapes_dataset(root, num_train=6, num_val=0, image_size=64, seed=3)["train"]
    return paths, list(load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"]))


def _segments(paths) -> dict[str, list[tuple[str, bool, bytes]]]:
    """Per image file name: sorted (class name, iscrowd, packed mask) of every segment of a COCO-panoptic folder."""
    dataset = load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"])
    names = vocabulary_of(dataset).id2label
    result = {}
    for row in dataset:
        targets = panoptic_targets(row)
        file_name = row["image"].filename.rsplit("/", 1)[-1]
        result[file_name] = sorted(
            (names[int(label)], bool(crowd), np.packbits(mask).tobytes())
            for label, crowd, mask in zip(targets["labels"], targets["iscrowd"], targets["masks"]))
    return result


def _sound(paths) -> None:
    """The converted folder passes the validator, and its semantic maps are the package writer's."""
    assert validate_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"],
                                  paths["grounding_json"]) == []
    written = write_semantic_maps(paths["panoptic_dir"], paths["panoptic_json"], paths["semantic_dir"].with_name("ref"))
    assert len(written) == len(list(paths["semantic_dir"].glob("*.png"))) > 0
    for path in written:
        converted = PIL.Image.open(paths["semantic_dir"] / path.name)
        assert converted.mode == PIL.Image.open(path).mode
        assert np.array_equal(np.asarray(converted), np.asarray(PIL.Image.open(path)))


def _image_dir_copy(shapes, folder):
    shutil.copytree(shapes[0]["image_dir"], folder)
    return folder


# ---------------------------------------------------------------------------------------------------------------
# coco-instances


def _instances_json(shapes, path, extra=()):
    """The shapes' things as a COCO instances JSON (compressed RLE for even segment ids, uncompressed run lengths
    for odd ones), their stuff as index PNGs (stuff label + 1, 0 unlabelled), and the stuff table."""
    rows = shapes[1]
    categories = [{"id": index + 1, "name": c.name} for index, c in enumerate(SHAPES_VOCABULARY.categories)
                  if c.isthing]
    images, annotations = [], []
    stuff_dir = path.parent / "stuff"
    stuff_dir.mkdir()
    for row in rows:
        name = row["image"].filename.rsplit("/", 1)[-1]
        images.append({"id": row["image_id"], "file_name": name, "height": row["height"], "width": row["width"]})
        targets = panoptic_targets(row)
        stuff = np.zeros((row["height"], row["width"]), np.uint8)
        for segment, mask in zip(row["segments"], targets["masks"]):
            if not segment["isthing"]:
                stuff[mask] = segment["label"] + 1
                continue
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            if segment["id"] % 2:
                flat = mask.T.ravel()  # COCO run lengths run down the columns, starting with a run of zeros
                changes = np.flatnonzero(np.diff(np.concatenate([[0], flat.astype(np.int8), [2]])) != 0)
                segmentation = {"size": [row["height"], row["width"]], "counts": np.diff(np.concatenate([[0], changes]))
                                .tolist()}
                assert mask_utils.decode(mask_utils.frPyObjects(segmentation, *mask.shape)).astype(bool).tolist() == \
                    mask.tolist()  # the hand-made run lengths are right
            else:
                segmentation = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
            annotations.append({"id": len(annotations) + 1, "image_id": row["image_id"],
                                "category_id": segment["category_id"], "segmentation": segmentation,
                                "iscrowd": 0, "area": int(mask.sum()), "bbox": segment["bbox"]})
        PIL.Image.fromarray(stuff).save(stuff_dir / name.replace(".jpg", ".png"))
    annotations += list(extra)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    table = path.parent / "stuff.csv"
    table.write_text("index,name,isthing\n" + "".join(f"{NAMES.index(n) + 1},{n},stuff\n" for n in STUFF))
    return stuff_dir, table


def test_coco_instances_round_trip_with_a_stuff_map(shapes, tmp_path):
    stuff_dir, table = _instances_json(shapes, tmp_path / "instances.json")
    report = convert_coco_instances(tmp_path / "instances.json", shapes[0]["image_dir"], tmp_path / "out",
                                    stuff_dir=stuff_dir, stuff_categories=table, stuff_ignore_index=0)
    paths = coco_panoptic_paths(tmp_path / "out")["train"]
    _sound(paths)
    assert _segments(paths) == _segments(shapes[0])
    assert report.images == 6 and report.segments == sum(len(row["segments"]) for row in shapes[1])
    assert report.problems == [] and "skipped 0 images and 0 segments" in report.summary()
    # A sentence naming the input's annotation id lands on that instance's converted segment.
    instances = json.loads((tmp_path / "instances.json").read_text())["annotations"]
    last = instances[-1]
    (tmp_path / "sentences.json").write_text(json.dumps([{"image": last["image_id"], "sentence": "that one",
                                                          "annotation_id": last["id"]}]))
    add_sentences(tmp_path / "out", tmp_path / "sentences.json")
    row = next(r for r in load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"],
                                             paths["grounding_json"]) if r["image_id"] == last["image_id"])
    (grounding,) = row["groundings"]
    mask = panoptic_targets(row)["masks"][[s["id"] for s in row["segments"]].index(grounding["segment_id"])]
    assert grounding["sentences"] == ["that one"]
    assert np.array_equal(mask, mask_utils.decode(mask_utils.frPyObjects(last["segmentation"], 64, 64)).astype(bool))


def test_coco_instances_overlap_rule_and_unlabelled_pixels(shapes, tmp_path):
    """Two polygons over one image without a stuff map: the smaller keeps the shared pixels (or the later one,
    with `later_on_top`), and the pixels of neither are unlabelled."""
    image = {"id": 1, "file_name": "000001.jpg", "height": 64, "width": 64}
    big = [0, 0, 40, 0, 40, 40, 0, 40]
    small = [20, 20, 60, 20, 60, 30, 20, 30]
    data = {"images": [image], "categories": [{"id": 7, "name": "box"}, {"id": 9, "name": "bar"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 9, "segmentation": [small]},
                            {"id": 2, "image_id": 1, "category_id": 7, "segmentation": [big]}]}
    (tmp_path / "instances.json").write_text(json.dumps(data))
    small_mask = mask_utils.decode(mask_utils.frPyObjects([small], 64, 64))[..., 0].astype(bool)
    big_mask = mask_utils.decode(mask_utils.frPyObjects([big], 64, 64))[..., 0].astype(bool)
    for rule, on_top in (("smaller_on_top", "bar"), ("later_on_top", "box")):
        convert_coco_instances(tmp_path / "instances.json", shapes[0]["image_dir"], tmp_path / rule, overlap=rule)
        paths = coco_panoptic_paths(tmp_path / rule)["train"]
        _sound(paths)
        expected = {"bar": small_mask & ~big_mask, "box": big_mask & ~small_mask}
        expected[on_top] = small_mask if on_top == "bar" else big_mask
        assert _segments(paths)["000001.jpg"] == sorted((name, False, np.packbits(mask).tobytes())
                                                        for name, mask in expected.items())
        categories = json.loads(paths["panoptic_json"].read_text())["categories"]
        assert [(c["id"], c["name"], c["isthing"]) for c in categories] == [(7, "box", 1), (9, "bar", 1)]


def test_coco_instances_hostile_input_lists_every_problem(shapes, tmp_path):
    images = _image_dir_copy(shapes, tmp_path / "images")
    shutil.copyfile(images / "000001.jpg", images / "000002.png")  # a second picture named 000002
    data = {"images": [{"id": 1, "file_name": "000001.jpg", "height": 64, "width": 64},
                       {"id": 2, "file_name": "000002.jpg", "height": 64, "width": 64},
                       {"id": 3, "file_name": "other/000002.jpg", "height": 64, "width": 64}],
            "categories": [{"id": 1, "name": "circle"}],
            "annotations": [{"id": 11, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 90, 0, 90, 20]]},
                            {"id": 12, "image_id": 1, "category_id": 5, "segmentation": [[0, 0, 9, 0, 9, 9]]},
                            {"id": 13, "image_id": 1, "category_id": 1, "segmentation": [[5, 5, 5, 5, 5, 5]]},
                            {"id": 14, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 30, 1, 30, 30]]}]}
    source = tmp_path / "instances.json"
    source.write_text(json.dumps(data))
    with pytest.raises(ConversionError) as refused:
        convert_coco_instances(source, images, tmp_path / "out")
    problems = refused.value.problems
    assert len(problems) == 5, problems
    where = f"{source}: image 1 (000001.jpg): annotation"
    assert f"{where} 11: polygon outside the image: x 0..90" in problems[0]
    assert f"{where} 12: category_id 5 is missing" in problems[1]
    assert f"{where} 13: empty instance" in problems[2]
    assert all("duplicate file name '000002'" in p for p in problems[3:]) and "image 2 (000002.jpg)" in problems[3]
    assert not (tmp_path / "out" / "annotations").exists()  # refused: nothing written
    report = convert_coco_instances(source, images, tmp_path / "out", skip_problems=True)
    assert (report.images, report.segments, report.skipped_images, report.skipped_segments) == (1, 1, 2, 3)
    assert report.summary().startswith("coco-instances: converted 1 image with 1 segment (1 things, 0 stuff)")
    assert report.summary().endswith("skipped 2 images and 3 segments (5 problems listed).")
    _sound(coco_panoptic_paths(tmp_path / "out")["train"])


# ---------------------------------------------------------------------------------------------------------------
# semantic-masks


def _touching(row) -> bool:
    """Whether two things of one class touch (8-connected): a semantic map then holds them as one component."""
    targets = panoptic_targets(row)
    things = [(label, mask) for label, mask, thing in zip(targets["labels"], targets["masks"], targets["isthing"])
              if thing]
    grown = [ndimage.binary_dilation(mask, np.ones((3, 3), bool)) for _, mask in things]
    return any(a == b and (grown[i] & mask).any() for i, (a, _) in enumerate(things)
               for j, (b, mask) in enumerate(things) if i != j)


def test_semantic_masks_colour_pngs_split_things_into_components(shapes, tmp_path):
    paths, rows = shapes
    masks = tmp_path / "masks"
    masks.mkdir()
    colours = {index: c.color for index, c in enumerate(SHAPES_VOCABULARY.categories)}
    for row in rows:
        semantic = np.zeros((row["height"], row["width"], 3), np.uint8)  # black: unlabelled
        for label, mask in zip(panoptic_targets(row)["labels"], panoptic_targets(row)["masks"]):
            semantic[mask] = colours[int(label)]
        PIL.Image.fromarray(semantic).save(masks / f"{row['image_id']:06d}.png")
    table = tmp_path / "categories.json"
    table.write_text(json.dumps([{"name": c.name, "isthing": "thing" if c.isthing else "stuff",
                                  "color": "#{:02x}{:02x}{:02x}".format(*c.color)}
                                 for c in SHAPES_VOCABULARY.categories]))
    convert_semantic_masks(paths["image_dir"], masks, table, tmp_path / "out")
    out = coco_panoptic_paths(tmp_path / "out")["train"]
    _sound(out)
    separate = [row["image"].filename.rsplit("/", 1)[-1] for row in rows if not _touching(row)]
    assert separate, "no image with separate things to compare"
    converted, original = _segments(out), _segments(paths)
    assert {name: converted[name] for name in separate} == {name: original[name] for name in separate}


def test_semantic_masks_index_pngs_one_segment_per_class(shapes, tmp_path):
    """The dataset's own semantic maps (contiguous labels, 255 unlabelled) as index PNGs, things one per class."""
    paths, rows = shapes
    table = tmp_path / "categories.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "name", "isthing"])
        writer.writerows([index, c.name, int(c.isthing)] for index, c in enumerate(SHAPES_VOCABULARY.categories))
    report = convert_semantic_masks(paths["image_dir"], paths["semantic_dir"], table, tmp_path / "out",
                                    things="one_per_class")
    out = coco_panoptic_paths(tmp_path / "out")["train"]
    _sound(out)
    expected = {}
    for row in rows:
        targets, merged = panoptic_targets(row), {}
        for label, mask in zip(targets["labels"], targets["masks"]):
            merged[NAMES[label]] = merged.get(NAMES[label], False) | mask
        expected[row["image"].filename.rsplit("/", 1)[-1]] = sorted(
            (name, False, np.packbits(mask).tobytes()) for name, mask in merged.items())
    assert _segments(out) == expected
    assert report.segments == sum(len(v) for v in expected.values())


def test_semantic_masks_hostile_input_lists_every_problem(shapes, tmp_path):
    images = _image_dir_copy(shapes, tmp_path / "images")
    masks = tmp_path / "masks"
    masks.mkdir()
    for number in (1, 2, 3, 4, 5, 6):
        semantic = np.zeros((64, 64, 3), np.uint8)
        semantic[:, :32] = (135, 206, 235)  # sky
        if number == 2:
            semantic[10:12, 40:43] = (1, 2, 3)  # a colour the table lacks: 6 pixels
        PIL.Image.fromarray(semantic).save(masks / f"{number:06d}.png")
    (images / "000006.jpg").unlink()
    (images / "000005.jpg").rename(images / "000005.JPG")
    shutil.copyfile(images / "000005.JPG", images / "000005.jpeg")
    table = [{"name": "sky", "isthing": 0, "color": [135, 206, 235]}]
    with pytest.raises(ConversionError) as refused:
        convert_semantic_masks(images, masks, table, tmp_path / "out")
    problems = refused.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"{images}: duplicate file name '000005'")
    assert problems[1].startswith(f"{masks / '000006.png'}: no image named 000006")
    assert problems[2] == (f"{masks / '000002.png'}: image 000002.jpg: segment of unknown colour (1, 2, 3) (6 pixels, "
                           f"first at x=40, y=10): missing from the category table (left unlabelled)")
    with pytest.raises(ConversionError, match=r"row 2 \(grass\): needs `index`.*\n.*color \(135, 206, 235\) appears"):
        convert_semantic_masks(images, masks, table + [{"name": "grass", "isthing": 0},
                                                       {"name": "wall", "isthing": 0, "color": "135 206 235"}],
                               tmp_path / "out")


# ---------------------------------------------------------------------------------------------------------------
# instance-annotations


def _instance_annotations(shapes, folder, broken: bool = False):
    """transformers' 3-channel layout: class (label + 1; 0 background), instance id (the segment id), zeros."""
    folder.mkdir()
    for row in shapes[1]:
        targets = panoptic_targets(row)
        annotation = np.zeros((row["height"], row["width"], 3), np.uint8)
        for segment, mask in zip(row["segments"], targets["masks"]):
            annotation[mask, 0] = segment["label"] + 1
            annotation[mask, 1] = segment["id"]
        PIL.Image.fromarray(annotation).save(folder / f"{row['image_id']:06d}.png")
    mapping = {"background": 0} | {name: index + 1 for index, name in enumerate(NAMES)}
    return mapping


def test_instance_annotations_round_trip(shapes, tmp_path):
    mapping = _instance_annotations(shapes, tmp_path / "annotations")
    (tmp_path / "classes.json").write_text(json.dumps(mapping))
    report = convert_instance_annotations(shapes[0]["image_dir"], tmp_path / "annotations", tmp_path / "classes.json",
                                          tmp_path / "out", stuff_classes=STUFF, do_reduce_labels=True)
    out = coco_panoptic_paths(tmp_path / "out")["train"]
    _sound(out)
    assert _segments(out) == _segments(shapes[0])
    categories = json.loads(out["panoptic_json"].read_text())["categories"]
    assert [(c["name"], c["isthing"]) for c in categories] == [(c.name, int(c.isthing))
                                                               for c in SHAPES_VOCABULARY.categories]
    assert report.things == sum(s["isthing"] for row in shapes[1] for s in row["segments"])
    kept = json.loads(out["panoptic_json"].read_text())["annotations"][0]["segments_info"]
    assert sorted(s["instance_id"] for s in kept if "instance_id" in s) == sorted(
        s["id"] for s in shapes[1][0]["segments"] if s["isthing"])  # the input's instance ids, for `sentences`


def test_instance_annotations_hostile_input_lists_every_problem(shapes, tmp_path):
    mapping = _instance_annotations(shapes, tmp_path / "annotations")
    del mapping["star"]  # class 8 is missing from the table
    annotation = np.asarray(PIL.Image.open(tmp_path / "annotations" / "000003.png")).copy()
    annotation[0, 5, 2] = 7  # not the (class, instance, 0) layout
    PIL.Image.fromarray(annotation).save(tmp_path / "annotations" / "000003.png")
    stars = {row["image_id"]: [s["id"] for s in row["segments"] if s["label"] == NAMES.index("star")]
             for row in shapes[1]}
    assert any(ids for image_id, ids in stars.items() if image_id != 3), "no star to miss"
    with pytest.raises(ConversionError) as refused:
        convert_instance_annotations(shapes[0]["image_dir"], tmp_path / "annotations", mapping, tmp_path / "out",
                                     stuff_classes=STUFF, do_reduce_labels=True)
    problems = refused.value.problems
    expected = []
    for image_id, ids in sorted(stars.items()):  # image by image
        where = f"{tmp_path / 'annotations' / f'{image_id:06d}.png'}: image {image_id:06d}.jpg"
        expected += ([f"{where}: channel 2 is not zero (1 pixels, first at x=5, y=0)"] if image_id == 3 else
                     [f"{where}: segment of class 8, instance {segment_id} (" for segment_id in ids])
    assert len(problems) == len(expected) and all(p.startswith(e) for p, e in zip(problems, expected)), problems
    assert sum("class 8 is missing from semantic_class_to_id" in p for p in problems) == len(problems) - 1


def test_instance_annotations_leave_the_ignore_index_unlabelled(shapes, tmp_path, capsys):
    """Pixels of class 255 (unlabelled, as --dataset_name's instance layout and transformers read it) refused the
    whole conversion as 'class 255 is missing'; a semantic_class_to_id naming 255 made the unlabelled pixels that
    class. 255 is unlabelled (--ignore-index picks another value), and a class given it is refused, naming it."""
    mapping = _instance_annotations(shapes, tmp_path / "annotations")
    annotation = np.asarray(PIL.Image.open(tmp_path / "annotations" / "000001.png")).copy()
    annotation[:3, :, :2] = (255, 0)
    PIL.Image.fromarray(annotation).save(tmp_path / "annotations" / "000001.png")
    (tmp_path / "classes.json").write_text(json.dumps(mapping))
    arguments = ["instance-annotations", str(shapes[0]["image_dir"]), str(tmp_path / "annotations"),
                 str(tmp_path / "classes.json"), str(tmp_path / "out"), "--stuff-classes", ",".join(STUFF),
                 "--do-reduce-labels"]
    assert main(arguments) == 0
    out = coco_panoptic_paths(tmp_path / "out")["train"]
    _sound(out)
    row = next(row for row in load_coco_panoptic(out["image_dir"], out["panoptic_dir"], out["panoptic_json"])
               if row["image_id"] == 1)
    assert not panoptic_targets(row)["masks"][:, :3].any()  # the 255 rows are void
    (tmp_path / "classes.json").write_text(json.dumps({**mapping, "void": 255}))
    assert main([*arguments, "--overwrite"]) == 1
    assert (f"{tmp_path / 'classes.json'}: class 'void' has id 255, also the ignore index (ignore_index=255, CLI "
            "--ignore-index), whose pixels are unlabelled") in capsys.readouterr().out
    assert main([*arguments, "--overwrite", "--ignore-index", "254"]) == 0  # another ignore index: 255 is a class


def test_workers_write_the_same_folder_and_list_problems_in_the_same_order(shapes, tmp_path):
    """Two processes convert side by side (`num_workers=2`): the same JSON and PNG bytes as one process, and a hostile
    input's problems in the same (image) order."""
    mapping = _instance_annotations(shapes, tmp_path / "annotations")
    for workers in (1, 2):
        convert_instance_annotations(shapes[0]["image_dir"], tmp_path / "annotations", mapping, tmp_path / f"{workers}",
                                     stuff_classes=STUFF, do_reduce_labels=True, num_workers=workers)
    one, two = (coco_panoptic_paths(tmp_path / f"{workers}")["train"] for workers in (1, 2))
    assert one["panoptic_json"].read_bytes() == two["panoptic_json"].read_bytes()
    for key in ("panoptic_dir", "semantic_dir"):
        names = sorted(path.name for path in one[key].iterdir())
        assert len(names) == 6 and names == sorted(path.name for path in two[key].iterdir())
        assert all((one[key] / name).read_bytes() == (two[key] / name).read_bytes() for name in names)
    del mapping["star"]
    refusals = []
    for workers in (1, 2):
        with pytest.raises(ConversionError) as refused:
            convert_instance_annotations(shapes[0]["image_dir"], tmp_path / "annotations", mapping, tmp_path / "bad",
                                         stuff_classes=STUFF, do_reduce_labels=True, num_workers=workers)
        refusals.append(refused.value.problems)
    assert len(refusals[0]) > 1 and refusals[0] == refusals[1]


# ---------------------------------------------------------------------------------------------------------------
# sentences


def test_sentences_attach_by_segment_id_and_by_polygon(shapes, tmp_path):
    mapping = _instance_annotations(shapes, tmp_path / "annotations")
    convert_instance_annotations(shapes[0]["image_dir"], tmp_path / "annotations", mapping, tmp_path / "out",
                                 stuff_classes=STUFF, do_reduce_labels=True)
    out = coco_panoptic_paths(tmp_path / "out")["train"]
    rows = list(load_coco_panoptic(out["image_dir"], out["panoptic_dir"], out["panoptic_json"]))
    row = rows[0]
    filled = [(s, s["area"] / (s["bbox"][2] * s["bbox"][3])) for s in row["segments"] if s["isthing"]]
    boxed = max(filled, key=lambda item: item[1])[0]  # the thing that fills its box most: its box is its polygon
    assert boxed["area"] / (boxed["bbox"][2] * boxed["bbox"][3]) > 0.6
    x, y, w, h = boxed["bbox"]
    stuff = next(s for s in row["segments"] if not s["isthing"])
    sentences = tmp_path / "sentences.csv"
    with sentences.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "sentence", "segment_id", "polygon"])
        writer.writerow(["000001.jpg", "the ground behind", stuff["id"], ""])
        writer.writerow(["1", "the thing in its box", "", json.dumps([x, y, x + w, y, x + w, y + h, x, y + h])])
        writer.writerow(["000001", "the ground behind", stuff["id"], ""])  # the same again: counted once
    report = add_sentences(tmp_path / "out", sentences)
    assert (report.sentences, report.groundings) == (2, 2) and report.problems == []
    again = add_sentences(tmp_path / "out", sentences)  # a second run adds nothing twice
    assert again.sentences == 0
    dataset = load_coco_panoptic(out["image_dir"], out["panoptic_dir"], out["panoptic_json"], out["grounding_json"])
    groundings = {g["segment_id"]: g["sentences"] for g in dataset[0]["groundings"]}
    assert groundings == {stuff["id"]: ["the ground behind"], boxed["id"]: ["the thing in its box"]}
    assert validate_coco_panoptic(out["image_dir"], out["panoptic_dir"], out["panoptic_json"],
                                  out["grounding_json"]) == []


def test_sentences_hostile_input_lists_every_problem(shapes, tmp_path):
    shutil.copytree(shapes[0]["image_dir"].parent, tmp_path / "data")
    sentences = tmp_path / "sentences.json"
    sentences.write_text(json.dumps([
        {"image": "000009.jpg", "sentence": "nowhere", "segment_id": 1},
        {"image": "000002.jpg", "sentence": "no such segment", "segment_id": 99},
        {"image": "000002.jpg", "sentence": "off the picture", "polygon": [[50, 50, 200, 50, 200, 90]]},
        {"image": "000002.jpg", "sentence": "  ", "segment_id": 1},
        {"image": "000002.jpg", "sentence": "a fine one", "segment_id": 1},
    ]))
    before = (tmp_path / "data" / "annotations" / "grounding_train.json").read_text()
    with pytest.raises(ConversionError) as refused:
        add_sentences(tmp_path / "data", sentences)
    problems = refused.value.problems
    panoptic_json = tmp_path / "data" / "annotations" / "panoptic_train.json"
    assert problems[0] == (f"{sentences}: row 1 (image 000009.jpg): image '000009.jpg' is not in {panoptic_json} "
                           f"(give its file name, stem or id)")
    assert problems[1].startswith(f"{sentences}: row 2 (image 000002.jpg): segment 99: not a segment of this image")
    assert problems[2].startswith(f"{sentences}: row 3 (image 000002.jpg): polygon outside the image: x 50..200")
    assert problems[3] == f"{sentences}: row 4 (image 000002.jpg): empty sentence"
    assert len(problems) == 4
    assert (tmp_path / "data" / "annotations" / "grounding_train.json").read_text() == before


# ---------------------------------------------------------------------------------------------------------------
# The CLI, and training on a converter's output


def _segment_csv(shapes, tmp_path):
    paths = shapes[0]
    table = tmp_path / "categories.csv"
    table.write_text("index,name,isthing\n" + "".join(f"{i},{c.name},{int(c.isthing)}\n"
                                                      for i, c in enumerate(SHAPES_VOCABULARY.categories)))
    return paths, table


def test_cli_converts_and_reports(shapes, tmp_path, capsys):
    paths, table = _segment_csv(shapes, tmp_path)
    assert main(["semantic-masks", str(paths["image_dir"]), str(paths["semantic_dir"]), str(table),
                 str(tmp_path / "out"), "--things", "one-per-class", "--split", "val"]) == 0
    output = capsys.readouterr().out.splitlines()
    assert output[-1].startswith("semantic-masks: converted 6 images with ")
    assert output[-1].endswith(f"into {tmp_path / 'out' / 'annotations' / 'panoptic_val.json'}; skipped 0 images and "
                               "0 segments.")
    _sound(coco_panoptic_paths(tmp_path / "out", ("val",))["val"])
    # The same split again is refused (nothing is replaced without --overwrite); a table row without its value is
    # a problem listed on stdout, with exit status 1.
    assert main(["semantic-masks", str(paths["image_dir"]), str(paths["semantic_dir"]), str(table),
                 str(tmp_path / "out"), "--split", "val"]) == 1
    assert "already exist(s)" in capsys.readouterr().err


def _converted(converter: str, shapes, tmp_path):
    """The shapes converted by `converter` from the input the tests above build, into `tmp_path / "data"`."""
    if converter == "coco-instances":
        stuff_dir, table = _instances_json(shapes, tmp_path / "instances.json")
        convert_coco_instances(tmp_path / "instances.json", shapes[0]["image_dir"], tmp_path / "data",
                               stuff_dir=stuff_dir, stuff_categories=table, stuff_ignore_index=0)
    elif converter == "semantic-masks":
        table = tmp_path / "categories.csv"
        table.write_text("index,name,isthing\n" + "".join(f"{index},{c.name},{int(c.isthing)}\n"
                                                           for index, c in enumerate(SHAPES_VOCABULARY.categories)))
        convert_semantic_masks(shapes[0]["image_dir"], shapes[0]["semantic_dir"], table, tmp_path / "data")
    else:
        mapping = _instance_annotations(shapes, tmp_path / "annotations")
        convert_instance_annotations(shapes[0]["image_dir"], tmp_path / "annotations", mapping, tmp_path / "data",
                                     stuff_classes=STUFF, do_reduce_labels=True)
    return tmp_path / "data"


@pytest.mark.parametrize("example", ["finetune_seem", "finetune_detr_panoptic"])
@pytest.mark.parametrize("converter", ["coco-instances", "semantic-masks", "instance-annotations"])
def test_panoptic_examples_train_a_step_on_each_converter_s_output(shapes, tmp_path, converter, example):
    """Issue 22: SEEM and DETR-panoptic train from what each converter writes (SEEM with sentences attached)."""
    data = _converted(converter, shapes, tmp_path)
    if example == "finetune_seem":
        rows = list(load_coco_panoptic(*(coco_panoptic_paths(data)["train"][key] for key in
                                         ("image_dir", "panoptic_dir", "panoptic_json"))))
        sentences = tmp_path / "sentences.json"
        sentences.write_text(json.dumps([{"image": row["image_id"], "sentence": f"segment {s['id']}",
                                          "segment_id": s["id"]} for row in rows for s in row["segments"]]))
        assert add_sentences(data, sentences).sentences == sum(len(row["segments"]) for row in rows)
    output = tmp_path / "run"
    metrics = load_example(example).main([
        "--model_name_or_path", str(FIXTURES / f"tiny-random-{example.removeprefix('finetune_')}"),
        "--data_dir", str(data), "--output_dir", str(output), "--max_steps", "1", "--image_size", "64",
        "--per_device_train_batch_size", "2", "--eval_strategy", "no", "--save_strategy", "no", "--disable_tqdm",
        "true", "--report_to", "none"])
    assert metrics == {}
    assert json.loads((output / "trainer_state.json").read_text())["global_step"] == 1
    config = json.loads((output / "config.json").read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    assert sorted(labels) == sorted(NAMES)  # the converted folder's labels


# ---------------------------------------------------------------------------------------------------------------
# Inputs as labelling tools and users write them (tiny synthetic folders)


def _photo(path, width: int = 64, height: int = 48, orientation: int | None = None):
    """A plain photo of `width` x `height` stored pixels, with an EXIF orientation tag when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = PIL.Image.new("RGB", (width, height), (30, 90, 160))
    if orientation is None:
        picture.save(path)
    else:
        exif = picture.getexif()
        exif[0x0112] = orientation
        picture.save(path, exif=exif)


def _index_mask(path, values: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(values.astype(np.uint8)).save(path, format="PNG")


def _boat_mask(height: int = 48, width: int = 64, boat: int = 2) -> np.ndarray:
    values = np.ones((height, width), np.uint8)  # 1: sea
    values[10:20, 10:30] = boat
    return values


def _box(index: int) -> list[list[int]]:
    """A 8 x 8 box polygon, the index-th along a row (no two overlap)."""
    x = 2 + 10 * index
    return [[x, 4, x + 8, 4, x + 8, 12, x, 12]]


def _write_instances(path, categories, annotations, images=None):
    images = images if images is not None else [{"id": 1, "file_name": "a.jpg", "height": 48, "width": 64}]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_sentences_key_naming_different_images_by_id_and_stem_is_refused(tmp_path):
    """Images are numbered in file-name order (1.jpg: 1, 10.jpg: 2, 2.jpg: 3), so `2` is image 2 by its id and
    image 3 by its stem: the row used to go silently to the id's image. Exact file names win."""
    for number in (1, 2, 10):
        _photo(tmp_path / "images" / f"{number}.jpg")
        _index_mask(tmp_path / "masks" / f"{number}.png", _boat_mask())
    (tmp_path / "table.csv").write_text("index,name,isthing\n1,sea,stuff\n2,boat,thing\n")
    convert_semantic_masks(tmp_path / "images", tmp_path / "masks", tmp_path / "table.csv", tmp_path / "out")
    out = coco_panoptic_paths(tmp_path / "out")["train"]
    ids = {image["file_name"]: image["id"] for image in json.loads(out["panoptic_json"].read_text())["images"]}
    assert ids == {"1.jpg": 1, "10.jpg": 2, "2.jpg": 3}
    sentences = tmp_path / "sentences.csv"
    sentences.write_text("image,sentence,segment_id\n2,the boat of picture 2,2\n2.jpg,the boat in 2.jpg,2\n"
                         "1,the boat of picture 1,2\n")
    with pytest.raises(ConversionError) as refused:
        add_sentences(tmp_path / "out", sentences)
    assert refused.value.problems == [
        f"{sentences}: row 1 (image 2): image '2' is ambiguous: it names image 2 (10.jpg) by its id and image 3 "
        f"(2.jpg) by its stem; give the image's file name as in {out['panoptic_json']}"]
    report = add_sentences(tmp_path / "out", sentences, skip_problems=True)
    assert report.sentences == 2 and report.skipped_sentences == 1
    grounding = json.loads(out["grounding_json"].read_text())
    assert sorted((a["image_id"], a["sentences"][0]["raw"]) for a in grounding["annotations"]) == [
        (1, "the boat of picture 1"), (3, "the boat in 2.jpg")]


def test_semantic_masks_refuse_a_category_on_the_ignore_index(tmp_path):
    """A table row on the ignore index used to be voided silently: refused, naming the row and both fixes, even
    with skip_problems (it is a setting, not a problem of one image); another ignore index converts it."""
    _photo(tmp_path / "images" / "a.jpg")
    _index_mask(tmp_path / "masks" / "a.png", _boat_mask(boat=255))
    table = tmp_path / "table.csv"
    table.write_text("index,name,isthing\n1,sea,stuff\n255,boat,thing\n")
    for skip in (False, True):
        with pytest.raises(ConversionError) as refused:
            convert_semantic_masks(tmp_path / "images", tmp_path / "masks", table, tmp_path / "out",
                                   skip_problems=skip)
        assert refused.value.problems == [
            f"{table}: row 2 (boat): index 255 is also the ignore index (ignore_index=255, CLI --ignore-index), whose "
            f"pixels are unlabelled, so this category would silently vanish; renumber the category (in the table and "
            f"its PNGs) or pick another ignore index (ignore_index=..., --ignore-index N)"]
    assert not (tmp_path / "out" / "annotations").exists()
    report = convert_semantic_masks(tmp_path / "images", tmp_path / "masks", table, tmp_path / "out", ignore_index=0)
    assert (report.segments, report.things) == (2, 1)


def test_coco_instances_refuse_a_stuff_category_on_the_stuff_ignore_index(tmp_path):
    _photo(tmp_path / "images" / "a.jpg")
    _index_mask(tmp_path / "stuff" / "a.png", np.zeros((48, 64)))  # all "sea", index 0
    instances = _write_instances(tmp_path / "instances.json", [{"id": 1, "name": "boat"}],
                                 [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": _box(0), "iscrowd": 0}])
    table = [{"index": 0, "name": "sea", "isthing": "stuff"}]
    with pytest.raises(ConversionError) as refused:
        convert_coco_instances(instances, tmp_path / "images", tmp_path / "out", stuff_dir=tmp_path / "stuff",
                               stuff_categories=table, stuff_ignore_index=0, skip_problems=True)
    assert refused.value.problems[0].startswith(
        "stuff_categories: row 1 (sea): index 0 is also the ignore index (stuff_ignore_index=0, CLI "
        "--stuff-ignore-index)")
    report = convert_coco_instances(instances, tmp_path / "images", tmp_path / "out", stuff_dir=tmp_path / "stuff",
                                    stuff_categories=table)  # the default ignore index, 255
    assert (report.segments, report.things) == (2, 1)


@pytest.mark.parametrize("converter", ["semantic-masks", "instance-annotations"])
def test_folder_converters_read_subfolders_and_upper_case_suffixes(tmp_path, converter):
    """A Cityscapes-like tree (`images/aachen/*.jpg`, `masks/aachen/*.png`) used to convert only the top level and
    report "skipped 0"; subfolders are kept in the file names, and `IMG_1.PNG` pairs with `IMG_1.jpg`."""
    for name in ("aachen/a1", "bremen/b1", "IMG_1"):
        _photo(tmp_path / "images" / f"{name}.jpg")
    suffixes = {"aachen/a1": ".png", "bremen/b1": ".png", "IMG_1": ".PNG", "bonn/orphan": ".png"}
    if converter == "semantic-masks":
        for name, suffix in suffixes.items():
            _index_mask(tmp_path / "labels" / f"{name}{suffix}", _boat_mask())
        (tmp_path / "table.csv").write_text("index,name,isthing\n1,sea,stuff\n2,boat,thing\n")
        convert = lambda **kw: convert_semantic_masks(tmp_path / "images", tmp_path / "labels",  # noqa: E731
                                                      tmp_path / "table.csv", tmp_path / "out", **kw)
    else:
        for name, suffix in suffixes.items():
            layers = np.zeros((48, 64, 3), np.uint8)
            layers[..., 0] = _boat_mask()
            layers[..., 1] = layers[..., 0] == 2
            (tmp_path / "labels" / name).parent.mkdir(parents=True, exist_ok=True)
            PIL.Image.fromarray(layers).save(tmp_path / "labels" / f"{name}{suffix}", format="PNG")
        convert = lambda **kw: convert_instance_annotations(tmp_path / "images", tmp_path / "labels",  # noqa: E731
                                                            {"sea": 1, "boat": 2}, tmp_path / "out",
                                                            stuff_classes=["sea"], **kw)
    with pytest.raises(ConversionError) as refused:
        convert()
    assert refused.value.problems == [
        f"{tmp_path / 'labels' / 'bonn' / 'orphan.png'}: no image named bonn/orphan.* in {tmp_path / 'images'} "
        f"({'mask' if converter == 'semantic-masks' else 'annotation'} skipped)"]
    report = convert(skip_problems=True)
    assert (report.images, report.segments, report.skipped_images) == (3, 6, 1)
    out = coco_panoptic_paths(tmp_path / "out")["train"]
    data = json.loads(out["panoptic_json"].read_text())
    assert sorted(image["file_name"] for image in data["images"]) == ["IMG_1.jpg", "aachen/a1.jpg", "bremen/b1.jpg"]
    assert sorted(a["file_name"] for a in data["annotations"]) == ["IMG_1.png", "aachen/a1.png", "bremen/b1.png"]
    assert (out["semantic_dir"] / "aachen" / "a1.png").is_file()
    assert validate_coco_panoptic(out["image_dir"], out["panoptic_dir"], out["panoptic_json"],
                                  out["grounding_json"]) == []
    rows = load_coco_panoptic(out["image_dir"], out["panoptic_dir"], out["panoptic_json"])
    assert [sorted(s["area"] for s in row["segments"]) for row in rows] == [[200, 48 * 64 - 200]] * 3


def test_coco_instances_keep_image_subfolders_and_their_stuff_maps(tmp_path):
    for name in ("aachen/a.jpg", "bremen/a.jpg"):
        _photo(tmp_path / "images" / name)
        _index_mask(tmp_path / "stuff" / name.replace(".jpg", ".png"), np.ones((48, 64)))
    images = [{"id": 1, "file_name": "aachen/a.jpg", "height": 48, "width": 64},
              {"id": 2, "file_name": "bremen/a.jpg", "height": 48, "width": 64}]
    instances = _write_instances(tmp_path / "instances.json", [{"id": 1, "name": "boat"}], [
        {"id": n, "image_id": n, "category_id": 1, "segmentation": _box(n), "iscrowd": 0} for n in (1, 2)], images)
    report = convert_coco_instances(instances, tmp_path / "images", tmp_path / "out", stuff_dir=tmp_path / "stuff",
                                    stuff_categories=[{"index": 1, "name": "sea", "isthing": "stuff"}])
    assert (report.images, report.segments) == (2, 4)
    data = json.loads(coco_panoptic_paths(tmp_path / "out")["train"]["panoptic_json"].read_text())
    assert [(i["file_name"], a["file_name"]) for i, a in zip(data["images"], data["annotations"])] == [
        ("aachen/a.jpg", "aachen/a.png"), ("bremen/a.jpg", "bremen/a.png")]


def test_coco_instances_iscrowd_values(tmp_path):
    """`"iscrowd": "0"` used to become a crowd (int(bool("0"))). 0/1, true/false, 0.0/1.0 and the texts "0"/"1" are
    read as they mean; anything else is a problem naming the annotation."""
    _photo(tmp_path / "images" / "a.jpg")
    given = ["0", True, 1.0, "1", 0, "yes", 2]
    instances = _write_instances(tmp_path / "instances.json", [{"id": 1, "name": "boat"}], [
        {"id": 10 + n, "image_id": 1, "category_id": 1, "segmentation": _box(n), "iscrowd": value}
        for n, value in enumerate(given)])
    with pytest.raises(ConversionError) as refused:
        convert_coco_instances(instances, tmp_path / "images", tmp_path / "out")
    assert refused.value.problems == [
        f"{instances}: image 1 (a.jpg): annotation 15: `iscrowd` must be 0 or 1 (or true/false), got 'yes'",
        f"{instances}: image 1 (a.jpg): annotation 16: `iscrowd` must be 0 or 1 (or true/false), got 2"]
    report = convert_coco_instances(instances, tmp_path / "images", tmp_path / "out", skip_problems=True)
    assert report.skipped_segments == 2
    data = json.loads(coco_panoptic_paths(tmp_path / "out")["train"]["panoptic_json"].read_text())
    crowds = {s["annotation_id"]: s["iscrowd"] for s in data["annotations"][0]["segments_info"]}
    assert crowds == {10: 0, 11: 1, 12: 1, 13: 1, 14: 0}


def test_coco_instances_renumber_category_ids_counted_from_zero(tmp_path, capsys):
    """Label Studio numbers categories from 0 and Roboflow adds an unused supercategory 0: both used to be refused.
    Ids become 1..K in id order, names kept, and the report (and the CLI) says what was renumbered; an unused
    category stays in the label set, as in the other converters, and is named."""
    _photo(tmp_path / "images" / "a.jpg")
    label_studio = _write_instances(tmp_path / "label_studio.json", [{"id": 0, "name": "boat"},
                                                                     {"id": 1, "name": "buoy"}], [
        {"id": 0, "image_id": 1, "category_id": 0, "segmentation": _box(0), "iscrowd": 0},
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": _box(1), "iscrowd": 0}])
    report = convert_coco_instances(label_studio, tmp_path / "images", tmp_path / "ls")
    assert report.notes == [f"{label_studio}: category ids renumbered 1..2 (COCO-panoptic ids must be positive; "
                            f"names kept): 0 (boat) -> 1, 1 (buoy) -> 2"]
    data = json.loads(coco_panoptic_paths(tmp_path / "ls")["train"]["panoptic_json"].read_text())
    assert [(c["id"], c["name"]) for c in data["categories"]] == [(1, "boat"), (2, "buoy")]
    assert {s["annotation_id"]: s["category_id"] for s in data["annotations"][0]["segments_info"]} == {0: 1, 1: 2}
    roboflow = _write_instances(tmp_path / "roboflow.json", [
        {"id": 0, "name": "boats-xyz", "supercategory": "none"},
        {"id": 1, "name": "boat", "supercategory": "boats-xyz"}],
        [{"id": 0, "image_id": 1, "category_id": 1, "segmentation": _box(0), "iscrowd": 0}])
    assert main(["coco-instances", str(roboflow), str(tmp_path / "images"), str(tmp_path / "rf")]) == 0
    output = capsys.readouterr().out.splitlines()
    assert output[:2] == [
        f"note: {roboflow}: category ids renumbered 1..2 (COCO-panoptic ids must be positive; names kept): "
        f"0 (boats-xyz) -> 1, 1 (boat) -> 2",
        f"note: {roboflow}: 1 category used by no annotation, kept in the label set (remove them from the JSON to "
        f"leave them out, such as Roboflow's supercategory): 0 (boats-xyz)"]
    data = json.loads(coco_panoptic_paths(tmp_path / "rf")["train"]["panoptic_json"].read_text())
    assert [s["category_id"] for s in data["annotations"][0]["segments_info"]] == [2]


def test_coco_instances_float_sizes_and_hex_colours(tmp_path):
    """Sizes written as 48.0 used to crash with a TypeError and `"color": "#ff0000"` with `invalid literal for
    int()`: both are read; a size or colour that is neither is a problem naming the image or the category."""
    _photo(tmp_path / "images" / "a.jpg")
    _photo(tmp_path / "images" / "b.jpg")
    images = [{"id": 1, "file_name": "a.jpg", "height": 48.0, "width": 64.0},
              {"id": 2, "file_name": "b.jpg", "height": 48.5, "width": 64}]
    annotations = [{"id": n, "image_id": n, "category_id": 1, "segmentation": _box(0), "iscrowd": 0} for n in (1, 2)]
    categories = [{"id": 1, "name": "boat", "color": "#ff0000"}, {"id": 2, "name": "buoy", "color": "#ff00"}]
    instances = _write_instances(tmp_path / "instances.json", categories, annotations, images)
    with pytest.raises(ConversionError) as refused:
        convert_coco_instances(instances, tmp_path / "images", tmp_path / "out")
    assert refused.value.problems == [
        f"{instances}: category 2 (buoy): `color` must be three integers in 0..255 ([r, g, b], 'r g b' or "
        f"'#rrggbb'), got '#ff00'",
        f"{instances}: image 2 (b.jpg): `height` and `width` must be positive whole numbers (or both left out, to "
        f"take the image file's), got 48.5 x 64 (skipped)"]
    report = convert_coco_instances(instances, tmp_path / "images", tmp_path / "out", skip_problems=True)
    assert (report.images, report.segments, report.skipped_images, report.skipped_segments) == (1, 1, 1, 1)
    data = json.loads(coco_panoptic_paths(tmp_path / "out")["train"]["panoptic_json"].read_text())
    assert data["categories"] == [{"id": 1, "name": "boat", "supercategory": "thing", "isthing": 1,
                                   "color": [255, 0, 0]}]
    assert (data["images"][0]["height"], data["images"][0]["width"]) == (48, 64)


def test_converters_take_sizes_upright_by_exif_orientation(tmp_path):
    """A phone photo stored 64 x 48 (W x H) with EXIF orientation 6 is 48 x 64 upright, as labelling tools show it
    and the loader reads it (`read_annotated_image`): annotations of either size are converted; any other size is
    refused naming both."""
    _photo(tmp_path / "images" / "a.jpg", width=64, height=48, orientation=6)
    polygon = [[4, 40, 20, 40, 20, 60, 4, 60]]  # lies only on the upright picture (y up to 60 of 64)
    upright = {"id": 1, "file_name": "a.jpg", "height": 64, "width": 48}
    annotation = {"id": 1, "image_id": 1, "category_id": 1, "segmentation": polygon, "iscrowd": 0}
    instances = _write_instances(tmp_path / "instances.json", [{"id": 1, "name": "boat"}], [annotation], [upright])
    convert_coco_instances(instances, tmp_path / "images", tmp_path / "coco")
    out = coco_panoptic_paths(tmp_path / "coco")["train"]
    row = load_coco_panoptic(out["image_dir"], out["panoptic_dir"], out["panoptic_json"])[0]
    assert (row["height"], row["width"]) == (64, 48)
    left_out = _write_instances(tmp_path / "no_size.json", [{"id": 1, "name": "boat"}], [annotation],
                                [{"id": 1, "file_name": "a.jpg"}])
    convert_coco_instances(left_out, tmp_path / "images", tmp_path / "coco", overwrite=True)
    assert json.loads(out["panoptic_json"].read_text())["images"][0] | {"id": 1} == upright
    wrong = _write_instances(tmp_path / "wrong.json", [{"id": 1, "name": "boat"}], [annotation],
                             [upright | {"height": 60}])
    with pytest.raises(ConversionError, match=r"size 48 x 64 \(64 x 48 upright by its EXIF orientation\) \(H x W\) "
                                              r"differs from the JSON's height x width 60 x 48"):
        convert_coco_instances(wrong, tmp_path / "images", tmp_path / "wrong")
    _index_mask(tmp_path / "masks" / "a.png", _boat_mask(height=64, width=48))
    (tmp_path / "table.csv").write_text("index,name,isthing\n1,sea,stuff\n2,boat,thing\n")
    report = convert_semantic_masks(tmp_path / "images", tmp_path / "masks", tmp_path / "table.csv",
                                    tmp_path / "semantic")
    assert report.images == 1


def test_coco_instances_rle_runs_must_cover_the_image(tmp_path):
    """An RLE whose runs do not add up to its size: COCO's uncompressed crowd RLE cut short decoded from uninitialised
    memory (another mask on each call), and a compressed RLE encoded at another size, its `size` edited to the
    image's, decoded into pixels in the wrong places. Both are problems naming the annotation; sound ones convert."""
    _photo(tmp_path / "images" / "a.jpg")
    box = np.zeros((48, 64), np.uint8)
    box[4:20, 4:20] = 1
    small = mask_utils.encode(np.asfortranarray(box[:24, :32]))["counts"].decode("ascii")
    whole = mask_utils.encode(np.asfortranarray(box))["counts"].decode("ascii")
    instances = _write_instances(tmp_path / "instances.json", [{"id": 1, "name": "boat"}], [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 1, "segmentation": {"size": [48, 64],
                                                                                  "counts": [200, 30]}},
        {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": {"size": [48, 64], "counts": small}},
        {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": {"size": [48, 64], "counts": whole}},
    ])
    with pytest.raises(ConversionError) as refused:
        convert_coco_instances(instances, tmp_path / "images", tmp_path / "out")
    where = f"{instances}: image 1 (a.jpg): annotation"
    assert [problem.split(" (ValueError")[0] for problem in refused.value.problems] == [
        f"{where} 1: segmentation cannot be decoded", f"{where} 2: segmentation cannot be decoded"]
    assert "RLE runs cover 230 pixels, but its size 48 x 64 has 3072" in refused.value.problems[0]
    assert "RLE runs cover 768 pixels" in refused.value.problems[1]
    report = convert_coco_instances(instances, tmp_path / "images", tmp_path / "out", skip_problems=True)
    assert (report.segments, report.skipped_segments) == (1, 2)
    out = coco_panoptic_paths(tmp_path / "out")["train"]
    (row,) = load_coco_panoptic(out["image_dir"], out["panoptic_dir"], out["panoptic_json"])
    np.testing.assert_array_equal(panoptic_targets(row)["masks"][0], box.astype(bool))


def test_text_files_saved_by_excel_or_in_another_encoding(shapes, tmp_path):
    """Excel's 'CSV UTF-8' starts with a byte-order mark, which made the first column `\\ufeffname` (every row then
    'missing `name`') or `\\ufeffimage`; a file saved as Windows-1252 failed with a bare UnicodeDecodeError. The mark
    is read (in CSV and JSON inputs, and in a dataset's JSON files); another encoding is a problem naming the file,
    the line and the column."""
    table = tmp_path / "categories.csv"
    table.write_bytes("name,isthing,index\nsea,stuff,0\nboat,thing,1\n".encode("utf-8-sig"))
    assert [row["name"] for row in read_category_table(table)] == ["sea", "boat"]
    table.write_bytes("name,isthing,index\nsea,stuff,0\ncaf\xe9,thing,1\n".encode("cp1252"))
    with pytest.raises(ConversionError) as refused:
        read_category_table(table)
    assert refused.value.problems == [f"{table}: not UTF-8 text (byte 0xe9 at line 3, column 4: 'caf\ufffd'); save the "
                                      f"file as UTF-8 (Excel: 'CSV UTF-8'; an editor: 'save with encoding UTF-8') "
                                      f"(category table)"]
    data = tmp_path / "data"
    shutil.copytree(shapes[0]["image_dir"].parent, data)
    panoptic_json = data / "annotations" / "panoptic_train.json"
    panoptic_json.write_bytes(b"\xef\xbb\xbf" + panoptic_json.read_bytes())  # the dataset's own JSON, BOM-marked
    sentences = tmp_path / "sentences.csv"
    sentences.write_bytes("image,sentence,segment_id\n000002.jpg,la forme à gauche,1\n".encode("utf-8-sig"))
    report = add_sentences(data, sentences)
    assert report.sentences == 1
    paths = coco_panoptic_paths(data)["train"]
    rows = load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"],
                              paths["grounding_json"])
    assert "la forme à gauche" in [s for row in rows for g in row["groundings"] for s in g["sentences"]]
    sentences.write_bytes("image,sentence,segment_id\n000002.jpg,la forme à gauche,1\n".encode("cp1252"))
    with pytest.raises(ConversionError, match=r"sentences.csv: not UTF-8 text \(byte 0xe0 at line 2, column 21"):
        add_sentences(data, sentences)


def test_a_labelme_file_given_as_coco_instances_is_named(tmp_path):
    """A LabelMe JSON (one per image) given to coco-instances was refused as not a COCO instances JSON, with no word
    of what it is; the problem names LabelMe and the step that makes one COCO instances JSON of such files."""
    _photo(tmp_path / "images" / "a.jpg")
    labelme = tmp_path / "a.json"
    labelme.write_text(json.dumps({"version": "5.2.1", "shapes": [{"label": "boat", "points": [[1, 1], [9, 1], [9, 9]],
                                                                   "shape_type": "polygon"}],
                                   "imagePath": "a.jpg", "imageHeight": 48, "imageWidth": 64}))
    with pytest.raises(ConversionError) as refused:
        convert_coco_instances(labelme, tmp_path / "images", tmp_path / "out")
    assert refused.value.problems == [f"{labelme}: must hold an object with `images`, `annotations` and `categories` "
                                      f"lists (a COCO instances JSON); this is a LabelMe file (one per image, `shapes` "
                                      f"and `imagePath`): turn the folder of them into one COCO instances JSON first "
                                      f"(labelme2coco)"]


def test_coco_instances_label_set_and_file_names_as_exports_have_them(tmp_path, capsys):
    """Two categories of one name (CVAT and Label Studio exports of a label defined twice) crashed the converter with
    'Duplicate category names: ['car'].' (no file, even with --skip-problems), and so did a JSON of no category ('A
    label vocabulary needs at least one category.'). Both are refused naming the JSON, the ids and the fix. A
    file_name in another case than the file (P1.JPG for p1.jpg) names the file that is there."""
    _photo(tmp_path / "images" / "a.jpg")
    boxes = [{"id": n, "image_id": 1, "category_id": n, "segmentation": _box(n), "iscrowd": 0} for n in (1, 2)]
    twice = _write_instances(tmp_path / "twice.json", [{"id": 1, "name": "car"}, {"id": 2, "name": "car"}], boxes)
    for skip in ([], ["--skip-problems"]):
        assert main(["coco-instances", str(twice), str(tmp_path / "images"), str(tmp_path / "out"), *skip]) == 1
        assert (f"{twice}: category name 'car' is given to ids [1, 2]: the label set names each class once (the "
                "models tell classes apart by name). Rename one, or give their annotations one category_id and drop "
                "the other category.") in capsys.readouterr().out
    empty = _write_instances(tmp_path / "empty.json", [], [])
    with pytest.raises(ConversionError, match="empty.json: no sound category"):
        convert_coco_instances(empty, tmp_path / "images", tmp_path / "out")
    upper = _write_instances(tmp_path / "upper.json", [{"id": 1, "name": "car"}, {"id": 2, "name": "bus"}], boxes,
                             images=[{"id": 1, "file_name": "A.JPG", "height": 48, "width": 64}])
    with pytest.raises(ConversionError) as refused:
        convert_coco_instances(upper, tmp_path / "images", tmp_path / "out")
    assert refused.value.problems == [
        f"{tmp_path / 'images' / 'A.JPG'}: file is missing (image 1); a.jpg is there, its name in another case (file "
        "names are case-sensitive here): rename the file or correct the JSON's file_name"]


def test_semantic_masks_with_an_alpha_channel(tmp_path, capsys):
    """An index mask saved with an opaque alpha channel (RGBA or LA PNGs of a grey map) was refused as 'a colour PNG?
    give the table colors'; it is read by its grey values. A colour mask's transparent pixels were read by their
    colour without a word: refused unless they hold the void colour, counted and located."""
    index = np.full((32, 32), 255, np.uint8)
    index[:16], index[20:, :10] = 1, 2
    opaque = np.full_like(index, 255)
    colours = np.zeros((32, 32, 3), np.uint8)
    colours[:16], colours[20:, :10] = (30, 90, 160), (215, 35, 35)
    transparent = np.dstack([colours, opaque])
    transparent[:16, :4, 3] = 0  # 64 "sea" pixels transparent
    transparent[28:, 20:, 3] = 0  # black (the void colour) and transparent: unlabelled either way
    masks = {"rgba": (PIL.Image.fromarray(np.dstack([index, index, index, opaque]), "RGBA"), "index"),
             "la": (PIL.Image.fromarray(np.dstack([index, opaque]), "LA"), "index"),
             "colour": (PIL.Image.fromarray(transparent, "RGBA"), "color")}
    tables = {"index": "name,isthing,index\nsea,stuff,1\nboat,thing,2\n",
              "color": "name,isthing,color\nsea,stuff,#1e5aa0\nboat,thing,215 35 35\n"}
    for name, (mask, kind) in masks.items():
        _photo(tmp_path / name / "images" / "x.jpg", 32, 32)
        (tmp_path / name / "masks").mkdir()
        mask.save(tmp_path / name / "masks" / "x.png")
        (tmp_path / name / "table.csv").write_text(tables[kind])
        status = main(["semantic-masks", str(tmp_path / name / "images"), str(tmp_path / name / "masks"),
                       str(tmp_path / name / "table.csv"), str(tmp_path / name / "out")])
        output = capsys.readouterr().out
        if name == "colour":
            assert status == 1 and (f"{tmp_path / name / 'masks' / 'x.png'}: image x.jpg: 64 transparent or "
                                    "translucent pixels (first at x=0, y=0) not of the void colour") in output, output
            continue
        assert status == 0, output
        data = json.loads(coco_panoptic_paths(tmp_path / name / "out")["train"]["panoptic_json"].read_text())
        assert [(s["category_id"], s["area"]) for s in data["annotations"][0]["segments_info"]] == [(1, 512), (2, 120)]


def test_semantic_masks_given_cvat_s_labelmap_write_the_table_to_use(tmp_path, capsys):
    """CVAT's and Pascal VOC's segmentation exports carry a labelmap.txt (name:r,g,b:parts:actions); given as the
    category table it failed with 'not valid JSON ... line 1 column 1'. It is named as a labelmap, which does not say
    what is a thing, with the CSV to write in its place; that CSV, edited, converts the export."""
    colours = np.zeros((32, 32, 3), np.uint8)
    colours[:16] = (61, 61, 245)
    colours[20:, :10] = (250, 50, 83)
    _photo(tmp_path / "JPEGImages" / "x.jpg", 32, 32)
    (tmp_path / "SegmentationClass").mkdir()
    PIL.Image.fromarray(colours).save(tmp_path / "SegmentationClass" / "x.png")
    (tmp_path / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\ncar:250,50,83::\n"
                                           "road:61,61,245::\n")
    arguments = ["semantic-masks", str(tmp_path / "JPEGImages"), str(tmp_path / "SegmentationClass")]
    assert main([*arguments, str(tmp_path / "labelmap.txt"), str(tmp_path / "out")]) == 1
    output = capsys.readouterr().out
    assert f"{tmp_path / 'labelmap.txt'}: a labelmap.txt (CVAT, Pascal VOC: name:r,g,b), which does not say" in output
    table = output[output.index("name,isthing,color"):output.index("\n(background")]
    assert table == "name,isthing,color\ncar,thing,250 50 83\nroad,thing,61 61 245"
    (tmp_path / "table.csv").write_text(table.replace("road,thing", "road,stuff") + "\n")
    assert main([*arguments, str(tmp_path / "table.csv"), str(tmp_path / "out")]) == 0
    data = json.loads(coco_panoptic_paths(tmp_path / "out")["train"]["panoptic_json"].read_text())
    assert [(c["name"], c["isthing"]) for c in data["categories"]] == [("car", 1), ("road", 0)]

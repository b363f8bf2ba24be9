"""The dataset validator as a user meets it (`python -m seem_hf.data.validate`, `load_coco_panoptic`,
`python -m seem_hf.data.prepare_semantic`): every rule the loader relies on is checked, every problem line names
its file (and image and segment), and no malformed input crashes the validator."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import PIL.Image
import pytest

from seem_hf.data import AugmentedPanopticDataset, LargeScaleJitter, load_coco_panoptic, make_shapes_dataset
from seem_hf.data.prepare_semantic import main as prepare_main
from seem_hf.data.validate import main as validate_main
from seem_hf.data.validation import validate_coco_panoptic


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    make_shapes_dataset(root, num_train=3, num_val=0, image_size=64, seed=1)
    return root


@pytest.fixture
def dataset(pristine, tmp_path):
    """A fresh copy of a sound 3-image dataset: (paths, panoptic JSON data, grounding JSON data, save)."""
    root = tmp_path / "data"
    shutil.copytree(pristine, root)
    paths = {
        "image_dir": root / "train",
        "panoptic_dir": root / "annotations" / "panoptic_train",
        "panoptic_json": root / "annotations" / "panoptic_train.json",
        "grounding_json": root / "annotations" / "grounding_train.json",
    }
    panoptic = json.loads(paths["panoptic_json"].read_text())
    grounding = json.loads(paths["grounding_json"].read_text())

    def save():
        paths["panoptic_json"].write_text(json.dumps(panoptic))
        paths["grounding_json"].write_text(json.dumps(grounding))

    return paths, panoptic, grounding, save


def _cli(paths, capsys) -> tuple[int, list[str], str]:
    status = validate_main([str(paths["image_dir"]), str(paths["panoptic_dir"]), str(paths["panoptic_json"]),
                            "--grounding", str(paths["grounding_json"])])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


def _refused(paths, *fragments) -> list[str]:
    """Assert the validator reports each fragment, every line names a file of the dataset, and the loader refuses
    with the same lines and the validate command."""
    arguments = [paths[key] for key in ("image_dir", "panoptic_dir", "panoptic_json", "grounding_json")]
    problems = validate_coco_panoptic(*arguments)
    text = "\n".join(problems)
    for fragment in fragments:
        assert fragment in text, (fragment, problems)
    root = str(paths["image_dir"].parent)
    assert problems and all(line.startswith(root) for line in problems), problems
    with pytest.raises(ValueError, match="python -m seem_hf.data.validate") as error:
        load_coco_panoptic(*arguments)
    assert problems[0] in str(error.value)
    return problems


def test_duplicate_image_id_is_refused(dataset, capsys):
    """The issue's case: two images with one id passed and paired a PNG with the wrong picture."""
    paths, panoptic, grounding, save = dataset
    panoptic["images"][1]["id"] = panoptic["images"][0]["id"]
    save()
    status, lines, summary = _cli(paths, capsys)
    assert status == 1 and summary.strip().endswith("found.") and "No problems" not in summary
    assert any("image id 1 appears 2 times" in line for line in lines), lines
    _refused(paths, "image id 1 appears 2 times")


def test_every_uniqueness_and_pairing_rule(dataset):
    paths, panoptic, grounding, save = dataset
    panoptic["images"][2]["file_name"] = panoptic["images"][1]["file_name"]
    panoptic["annotations"][2]["file_name"] = panoptic["annotations"][1]["file_name"]
    panoptic["annotations"].append(copy.deepcopy(panoptic["annotations"][0]))
    panoptic["annotations"].append(dict(panoptic["annotations"][0], image_id=77, file_name="000077.png"))
    panoptic["images"].append({"id": 9, "file_name": "000009.jpg", "height": 64, "width": 64})
    panoptic["categories"].append(dict(panoptic["categories"][0]))
    panoptic["categories"].append(dict(panoptic["categories"][1], id=42))
    grounding["annotations"][1]["id"] = grounding["annotations"][0]["id"]
    save()
    _refused(
        paths,
        "image file_name '000002.jpg' appears 2 times",
        "annotation file_name '000002.png' appears 2 times",
        "annotation image_id 1 appears 2 times",
        "000077.png: image 77: image_id 77 is not among the JSON's images",
        "image 9 (000009.jpg) has no panoptic annotation",
        "category id 1 appears 2 times",
        "category name 'sky' appears 2 times",
        "grounding annotation id 1 appears 2 times",
    )


def test_segment_without_area_bbox_or_id_is_named_not_crashed(dataset, capsys):
    paths, panoptic, grounding, save = dataset
    segments = panoptic["annotations"][0]["segments_info"]
    del segments[0]["area"]
    del segments[1]["bbox"]
    del segments[2]["id"]
    save()
    status, lines, summary = _cli(paths, capsys)  # a segment without `id` crashed the validator
    assert status == 1
    problems = _refused(
        paths,
        f"000001.png: image 1: segment {segments[0]['id']}: missing `area`",
        f"000001.png: image 1: segment {segments[1]['id']}: missing `bbox`",
        "000001.png: image 1: segments_info #2: missing `id`",
    )
    assert lines == problems and summary.startswith(f"{len(problems)} problems found")


def test_loader_names_the_record_it_cannot_read(dataset, monkeypatch):
    """Defence in depth: if a rule were ever missing from the validator, the loader's error still names the file,
    image and segment and points at the validator, instead of a bare KeyError."""
    paths, panoptic, grounding, save = dataset
    del panoptic["annotations"][1]["segments_info"][0]["area"]
    save()
    monkeypatch.setattr("seem_hf.data.coco_panoptic.validate_coco_panoptic_once", lambda *arguments: [])
    segment = panoptic["annotations"][1]["segments_info"][0]["id"]
    with pytest.raises(ValueError, match=rf"000002.png: image 2: segment {segment}: cannot be read \(missing field "
                                         rf"'area'\)\. List every problem with: python -m seem_hf.data.validate"):
        load_coco_panoptic(*(paths[key] for key in ("image_dir", "panoptic_dir", "panoptic_json")))


def test_types_and_ranges_of_fields(dataset):
    paths, panoptic, grounding, save = dataset
    panoptic["images"][0]["height"] = "64"
    panoptic["categories"][0]["color"] = [1, 2]
    panoptic["categories"][1]["isthing"] = "no"
    segments = panoptic["annotations"][1]["segments_info"]
    segments[0]["bbox"] = [0, 0, -3, 4]
    segments[1]["iscrowd"] = "0"
    segments[2]["area"] = 12.5
    panoptic["annotations"][2]["segments_info"] = {"id": 1}
    save()
    _refused(
        paths,
        "image 1 (000001.jpg): `height` must be a positive integer, got '64'",
        "category 1: `color` must be three integers in 0..255",
        "category 2: `isthing` must be 0 or 1, got 'no'",
        f"image 2: segment {segments[0]['id']}: `bbox` must be [x, y, width, height]",
        f"image 2: segment {segments[1]['id']}: `iscrowd` must be 0 or 1, got '0'",
        f"image 2: segment {segments[2]['id']}: `area` must be a whole number of pixels, got 12.5",
        "annotation #2: `segments_info` must be a list",
    )


def test_sizes_encoding_area_and_box_against_the_files(dataset):
    paths, panoptic, grounding, save = dataset
    panoptic["images"][0]["width"] = 65  # the JSON disagrees with both files
    segment = panoptic["annotations"][1]["segments_info"][0]
    segment["area"] += 3
    segment["bbox"] = [segment["bbox"][0] + 5, *segment["bbox"][1:]]
    save()
    PIL.Image.fromarray(np.zeros((64, 64), np.uint8)).save(paths["panoptic_dir"] / "000003.png")  # a label map
    PIL.Image.fromarray(np.full((64, 64), 40000, np.uint16)).save(paths["image_dir"] / "000002.jpg".replace(
        ".jpg", ".png"))
    panoptic["images"][1]["file_name"] = "000002.png"  # a 16-bit image: read by read_image's value rule, accepted
    save()
    problems = _refused(
        paths,
        "000001.jpg: image 1: size (64, 64) (H, W) differs from the JSON's height x width (64, 65)",
        "000001.png: image 1: PNG size (64, 64) (H, W) differs from the JSON's height x width (64, 65)",
        f"000002.png: image 2: segment {segment['id']}: area {segment['area']} in the JSON, {segment['area'] - 3} "
        f"pixels in the PNG",
        f"000002.png: image 2: segment {segment['id']}: bbox {json.dumps(segment['bbox'])} in the JSON",
        "000003.png: image 3: panoptic PNG must be RGB (segment id = R + 256 G + 256^2 B), got mode L",
    )
    assert not [line for line in problems if "mode I;16" in line]


def test_jpeg_data_in_a_png_file_is_named_as_lossy(dataset):
    """JPEG data saved under a `.png` name used to be reported as stray segment ids, with no hint."""
    paths, panoptic, grounding, save = dataset
    png = paths["panoptic_dir"] / "000002.png"
    PIL.Image.open(png).convert("RGB").save(png, format="JPEG", quality=90)
    problems = _refused(paths, "000002.png: image 2: panoptic PNG holds JPEG data, not PNG (lossy",
                        "write the id map (segment id = R + 256 G + 256^2 B) as a lossless PNG")
    assert not [line for line in problems if "not in segments_info" in line], problems


def test_palette_panoptic_png_is_read_by_its_colours(dataset):
    """An RGB panoptic PNG that an optimiser saved with a palette is the same id map: the validator reads it by its
    colours, as the loader's convert("RGB") does, and the rows are unchanged. A one-channel label map is refused
    with the way to convert it."""
    paths, panoptic, grounding, save = dataset
    arguments = [paths[key] for key in ("image_dir", "panoptic_dir", "panoptic_json", "grounding_json")]
    before = [row["segments"] for row in load_coco_panoptic(*arguments)]
    png = paths["panoptic_dir"] / "000001.png"
    original = np.asarray(PIL.Image.open(png))
    PIL.Image.open(png).quantize(colors=256, method=PIL.Image.Quantize.MAXCOVERAGE).save(png)
    assert PIL.Image.open(png).mode == "P"
    assert np.array_equal(np.asarray(PIL.Image.open(png).convert("RGB")), original)  # few colours: lossless
    assert validate_coco_panoptic(*arguments) == []
    assert [row["segments"] for row in load_coco_panoptic(*arguments)] == before
    PIL.Image.fromarray(np.zeros((64, 64), np.uint8)).save(png)
    _refused(paths, "000001.png: image 1: panoptic PNG must be RGB", "python -m seem_hf.data.convert semantic-masks")


def test_negative_image_id_is_refused(dataset):
    """Augmentation seeds numpy with [seed, image_id, epoch]: a negative id used to pass and fail inside training."""
    paths, panoptic, grounding, save = dataset
    panoptic["images"][1]["id"] = panoptic["annotations"][1]["image_id"] = -2
    for annotation in grounding["annotations"]:
        if annotation["image_id"] == 2:
            annotation["image_id"] = -2
    save()
    _refused(paths, "image -2 (000002.jpg): `id` must be a non-negative integer (it seeds the image's "
             "augmentation), got -2; renumber the images")


def test_box_conventions_within_one_pixel_pass(dataset):
    """COCO writes w = x_max - x_min + 1; other tools x_max - x_min. Both are accepted (BBOX_TOLERANCE)."""
    paths, panoptic, grounding, save = dataset
    for segment in panoptic["annotations"][0]["segments_info"]:
        x, y, w, h = segment["bbox"]
        segment["bbox"] = [x, y, w - 1, h - 1]
    save()
    assert validate_coco_panoptic(*(paths[key] for key in ("image_dir", "panoptic_dir", "panoptic_json"))) == []


def test_grounding_rules(dataset):
    paths, panoptic, grounding, save = dataset
    annotations = grounding["annotations"]
    first_image = [a for a in annotations if a["image_id"] == 1]
    first_image[0]["segment_id"] = 99
    first_image[1]["category_id"] = 8 if first_image[1]["category_id"] != 8 else 7
    first_image[2]["sentences"] = [{"raw": "  "}, {"text": "no raw"}]
    second = [a for a in annotations if a["image_id"] == 2]
    second[0]["segmentation"] = dict(second[0]["segmentation"], size=[32, 32])
    second[1]["segmentation"] = {"size": [64, 64], "counts": "garbage!!"}
    second[2]["segmentation"] = [[0, 0, 0, 0, 0, 0]]  # a polygon of no area
    third = [a for a in annotations if a["image_id"] == 3]
    other = [a for a in third if a["segment_id"] != third[0]["segment_id"]][0]
    third[0]["segmentation"] = other["segmentation"]  # sentence and mask about another segment
    del third[1]["segmentation"]
    save()
    _refused(
        paths,
        f"grounding annotation {first_image[0]['id']} (image 1): segment_id 99 is not a segment of image 1",
        f"grounding annotation {first_image[1]['id']} (image 1): category_id {first_image[1]['category_id']}, but its "
        f"segment",
        f"grounding annotation {first_image[2]['id']} (image 1): sentence #0 is empty",
        f"grounding annotation {first_image[2]['id']} (image 1): sentence #1 must be {{'raw': text}}",
        f"grounding annotation {second[0]['id']} (image 2): RLE size [32, 32] differs",
        f"grounding annotation {second[1]['id']} (image 2): segmentation cannot be decoded",
        f"grounding annotation {second[2]['id']} (image 2): segmentation covers no pixel",
        f"grounding annotation {third[0]['id']} (image 3): segmentation overlaps its segment "
        f"{third[0]['segment_id']} with IoU 0.00",
        f"grounding annotation {third[1]['id']} (image 3): missing `segmentation`",
    )


def _mutations(value):
    """Wrong values of every JSON type, and removal."""
    yield from (None, "x", -1, 1.5, True, [], {})


def _paths_of(data, prefix=()):
    """Every (path, value) in a JSON document, limited to the first two items of each list (the rest repeat)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield prefix + (key,), value
            yield from _paths_of(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data[:2]):
            yield prefix + (index,), value
            yield from _paths_of(value, prefix + (index,))


def _set(data, path, value):
    for key in path[:-1]:
        data = data[key]
    if value is _DELETE:
        del data[path[-1]]
    else:
        data[path[-1]] = value


_DELETE = object()


@pytest.mark.parametrize("document", ["panoptic_json", "grounding_json"])
def test_no_malformed_json_crashes_and_what_passes_loads(dataset, document):
    """Every field of both JSON files (first two items of each list), deleted or replaced by a value of another
    type: the validator returns problems and never raises, and whenever it returns none the loader and the
    augmented dataset read every row (the validator passes only what the loader can read)."""
    paths, panoptic, grounding, save = dataset
    original = panoptic if document == "panoptic_json" else grounding
    arguments = [paths[key] for key in ("image_dir", "panoptic_dir", "panoptic_json", "grounding_json")]
    checked = passed = 0
    for path, _ in list(_paths_of(original)):
        for value in (_DELETE, *_mutations(None)):
            mutated = copy.deepcopy(original)
            _set(mutated, path, value)
            paths[document].write_text(json.dumps(mutated))
            problems = validate_coco_panoptic(*arguments)  # must not raise
            checked += 1
            if not problems:
                passed += 1
                if passed > 12:  # a sample of the accepted mutations keeps the test fast (each load ~0.1 s)
                    continue
                rows = AugmentedPanopticDataset(load_coco_panoptic(*arguments), LargeScaleJitter(64, 1.0, 1.0))
                for index in range(len(rows)):
                    rows[index]
    assert checked > 300 and passed < checked  # the mutations did reach the validator
    print(f"{checked} mutations, {passed} accepted")


def test_prepare_semantic_refuses_a_broken_dataset(dataset, tmp_path, capsys):
    paths, panoptic, grounding, save = dataset
    segment = panoptic["annotations"][0]["segments_info"].pop()
    save()
    out = tmp_path / "semantic"
    assert prepare_main([str(paths["panoptic_dir"]), str(paths["panoptic_json"]), str(out)]) == 1
    error = capsys.readouterr().err
    assert "1 problem in the dataset" in error
    assert f"000001.png: image 1: segment {segment['id']}:" in error and "python -m seem_hf.data.validate" in error
    assert not out.exists() or not any(out.iterdir())  # nothing written
    panoptic["annotations"][0]["segments_info"].append(segment)
    save()
    assert prepare_main([str(paths["panoptic_dir"]), str(paths["panoptic_json"]), str(out)]) == 0
    assert len(list(out.iterdir())) == 3


@pytest.mark.parametrize("command", [validate_main, prepare_main])
def test_help_texts(command, capsys):
    with pytest.raises(SystemExit):
        command(["--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m seem_hf.data.")
    assert not any(line.rstrip().endswith(":") and not line.startswith(("positional", "options")) for line in
                   text.splitlines()), text  # no dangling colon from a docstring cut short
    positional = text.split("positional arguments:")[1].split("options:")[0]
    entries = [line.split() for line in positional.splitlines() if line.startswith("  ") and line[2] != " "]
    assert entries and all(len(words) > 1 for words in entries), text  # every positional has a help text


def test_a_grounding_rle_of_another_size_is_refused(dataset):
    """A compressed RLE encoded at another image size whose `size` says the image's decoded into pixels in the wrong
    places, and trained the sentence on them; its runs do not add up to the size, and the validator says so."""
    from pycocotools import mask as mask_utils

    paths, panoptic, grounding, save = dataset
    annotation = grounding["annotations"][0]
    height, width = annotation["segmentation"]["size"]
    smaller = np.zeros((height // 2, width // 2), np.uint8)
    smaller[:4, :4] = 1
    annotation["segmentation"]["counts"] = mask_utils.encode(np.asfortranarray(smaller))["counts"].decode("ascii")
    save()
    _refused(paths, f"grounding annotation {annotation['id']} (image {annotation['image_id']}): segmentation cannot be "
                    f"decoded (ValueError: RLE runs cover {height // 2 * (width // 2)} pixels, but its size {height} x "
                    f"{width} has {height * width}")


def test_a_missing_folder_is_one_problem_naming_what_is_there(dataset):
    """A typo'd split folder (`valid/` for `val/`) gave one 'file is missing' line per image (the first 100 of
    COCO's 5,000 shown, and the folder never named); it is one problem naming the folder and its parent's folders."""
    paths, panoptic, grounding, save = dataset
    paths["image_dir"].rename(paths["image_dir"].with_name("training"))
    problems = _refused(paths, f"{paths['image_dir']}: image folder is missing (3 annotations of panoptic_train.json "
                               f"name files in it); {paths['image_dir'].parent} holds the folders ['annotations', "
                               f"'training', 'val']")
    assert len(problems) == 1, problems
    paths["panoptic_dir"].rename(paths["panoptic_dir"].with_name("pngs"))
    problems = validate_coco_panoptic(*(paths[key] for key in ("image_dir", "panoptic_dir", "panoptic_json",
                                                               "grounding_json")))
    assert len(problems) == 2 and problems[1].startswith(f"{paths['panoptic_dir']}: panoptic PNG folder is missing")


def test_a_missing_file_names_the_one_beside_it_in_another_case_or_suffix(dataset):
    """A file_name that differs from the file in case (Windows and macOS exports: IMG_1.JPG) or suffix (a photo saved
    as .png, a panoptic PNG listed as .jpg) was only 'file is missing'; the problem names the file that is there and
    the fix."""
    paths, panoptic, grounding, save = dataset
    first, second = (paths["image_dir"] / image["file_name"] for image in panoptic["images"][:2])
    first.rename(first.with_name(first.stem + ".JPG"))
    PIL.Image.open(second).save(second.with_suffix(".png"))
    second.unlink()
    png = paths["panoptic_dir"] / panoptic["annotations"][2]["file_name"]
    panoptic["annotations"][2]["file_name"] = png.with_suffix(".PNG").name.upper()
    save()
    _refused(paths,
             f"{first}: file is missing (image 1); {first.stem}.JPG is there, its name in another case (file names are "
             "case-sensitive here): rename the file or correct the JSON's file_name",
             f"{second}: file is missing (image 2); {second.stem}.png is there, with another suffix: correct the "
             "JSON's file_name",
             f"{png.stem.upper()}.PNG: file is missing (panoptic PNG of image 3); {png.name} is there, its name in "
             "another case")


def test_panoptic_png_with_an_alpha_channel(dataset):
    """A panoptic PNG saved with an opaque alpha channel (RGBA, by an image editor) was refused though its ids are
    plain; it is read by its colours and trains as before. Transparent pixels are refused, counted."""
    from seem_hf.data import panoptic_targets

    paths, panoptic, grounding, save = dataset
    arguments = [paths[key] for key in ("image_dir", "panoptic_dir", "panoptic_json", "grounding_json")]
    before = [panoptic_targets(row)["masks"] for row in load_coco_panoptic(*arguments)]
    png = paths["panoptic_dir"] / "000001.png"
    PIL.Image.open(png).convert("RGBA").save(png)
    assert validate_coco_panoptic(*arguments) == []
    rows = load_coco_panoptic(*arguments)
    assert all(np.array_equal(panoptic_targets(row)["masks"], masks) for row, masks in zip(rows, before))
    AugmentedPanopticDataset(rows, LargeScaleJitter(64, 1.0, 1.0))[0]
    rgba = np.asarray(PIL.Image.open(png)).copy()
    rgba[:2, :, 3] = 0
    PIL.Image.fromarray(rgba, "RGBA").save(png)
    _refused(paths, "000001.png: image 1: panoptic PNG of mode RGBA has 128 transparent or translucent pixels")

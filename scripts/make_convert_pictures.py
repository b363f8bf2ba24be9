"""Make the pictures of docs/your_data.md: one bundled shapes image written in each input format the converters
read (`seem_hf.data.convert`), converted to COCO-panoptic, and drawn from the converted folder (each segment
tinted in its class's colour, outlined in white and named; the sentences picture shows the grounded segments with
their sentences), so that a reader sees the conversion read the colours, classes and instances right.

    .venv/bin/python scripts/make_convert_pictures.py [--output-dir docs/images]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import PIL.Image
from pycocotools import mask as mask_utils

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seem_hf.data import (
    coco_panoptic_paths,
    load_coco_panoptic,
    make_shapes_dataset,
    panoptic_targets,
    vocabulary_of,
)
from seem_hf.data.convert import (
    add_sentences,
    convert_coco_instances,
    convert_instance_annotations,
    convert_semantic_masks,
)
from seem_hf.data.shapes import SHAPES_VOCABULARY
from seem_hf.visualize import overlay_masks, overlay_segments

SAMPLE = 2
"""The shapes image shown (train split, seed 0, 256 px): two stars and a square over wall and sky."""


def _converted_overlay(root: Path) -> PIL.Image.Image:
    """The first image of a converted folder with its segments drawn, each in its own colour (so that two
    instances of one class are told apart) and named by its class."""
    paths = coco_panoptic_paths(root)["train"]
    dataset = load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"])
    vocabulary, row = vocabulary_of(dataset), dataset[0]
    targets = panoptic_targets(row)
    ids = np.zeros((row["height"], row["width"]), np.int64)
    for segment, mask in zip(row["segments"], targets["masks"]):
        ids[mask] = segment["id"]
    segments = [{"id": s["id"], "label_id": index} for index, s in enumerate(row["segments"])]
    names = {index: vocabulary.id2label[s["label"]] for index, s in enumerate(row["segments"])}
    return overlay_segments(row["image"], ids, segments, names)


def _save(picture: PIL.Image.Image, path: Path) -> Path:
    """As a 128-colour PNG: the textures' noise makes a full-colour one twice the size, for no visible gain."""
    picture.quantize(128, method=PIL.Image.Quantize.MEDIANCUT, dither=PIL.Image.Dither.NONE).save(path, optimize=True)
    return path


def make_pictures(output_dir: Path) -> list[Path]:
    output_dir.mkdir(parents=True, exist_ok=True)
    names = [category.name for category in SHAPES_VOCABULARY.categories]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        shapes = make_shapes_dataset(work / "shapes", num_train=SAMPLE + 1, num_val=0, image_size=256)["train"]
        row = load_coco_panoptic(shapes["image_dir"], shapes["panoptic_dir"], shapes["panoptic_json"],
                                 shapes["grounding_json"])[SAMPLE]
        targets, name = panoptic_targets(row), f"{row['image_id']:06d}"
        images = work / "images"
        images.mkdir()
        row["image"].save(images / f"{name}.jpg", quality=95)
        height, width = row["height"], row["width"]

        # coco-instances: the things as RLE instances, the stuff as an index map (0 unlabelled)
        stuff = np.zeros((height, width), np.uint8)
        annotations = []
        for segment, mask in zip(row["segments"], targets["masks"]):
            if segment["isthing"]:
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                annotations.append({"id": len(annotations) + 1, "image_id": 1, "category_id": segment["label"] + 1,
                                    "iscrowd": 0, "segmentation": {"size": rle["size"],
                                                                   "counts": rle["counts"].decode("ascii")}})
            else:
                stuff[mask] = segment["label"] + 1
        (work / "stuff").mkdir()
        PIL.Image.fromarray(stuff).save(work / "stuff" / f"{name}.png")
        (work / "instances.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": f"{name}.jpg", "height": height, "width": width}],
            "categories": [{"id": i + 1, "name": c.name, "color": list(c.color)}
                           for i, c in enumerate(SHAPES_VOCABULARY.categories) if c.isthing],
            "annotations": annotations}))
        table = [{"index": i + 1, "name": c.name, "isthing": "stuff", "color": list(c.color)}
                 for i, c in enumerate(SHAPES_VOCABULARY.categories) if not c.isthing]
        convert_coco_instances(work / "instances.json", images, work / "coco", stuff_dir=work / "stuff",
                               stuff_categories=table, stuff_ignore_index=0)

        # semantic-masks: a colour PNG (the table's colours, black unlabelled), things split into components
        colours = np.zeros((height, width, 3), np.uint8)
        for label, mask in zip(targets["labels"], targets["masks"]):
            colours[mask] = SHAPES_VOCABULARY.categories[int(label)].color
        (work / "masks").mkdir()
        PIL.Image.fromarray(colours).save(work / "masks" / f"{name}.png")
        table = [{"name": c.name, "isthing": int(c.isthing), "color": list(c.color)}
                 for c in SHAPES_VOCABULARY.categories]
        convert_semantic_masks(images, work / "masks", table, work / "semantic")

        # instance-annotations: (class + 1, instance id, 0), class 0 the background
        layered = np.zeros((height, width, 3), np.uint8)
        for segment, mask in zip(row["segments"], targets["masks"]):
            layered[mask, 0], layered[mask, 1] = segment["label"] + 1, segment["id"]
        (work / "annotations").mkdir()
        PIL.Image.fromarray(layered).save(work / "annotations" / f"{name}.png")
        mapping = {"background": 0} | {n: i + 1 for i, n in enumerate(names)}
        convert_instance_annotations(images, work / "annotations", mapping, work / "instances", do_reduce_labels=True,
                                     stuff_classes=[c.name for c in SHAPES_VOCABULARY.categories if not c.isthing])

        # sentences: the shapes' own referring sentences, attached by instance id (channel 1 above)
        things = {segment["id"] for segment in row["segments"] if segment["isthing"]}  # stuff has no instance id
        rows = [{"image": f"{name}.jpg", "sentence": sentence, "instance_id": grounding["segment_id"]}
                for grounding in row["groundings"] for sentence in grounding["sentences"][:1]
                if grounding["segment_id"] in things]
        (work / "sentences.json").write_text(json.dumps(rows))
        add_sentences(work / "instances", work / "sentences.json")

        written = []
        for folder_name, picture in (("coco", "coco-instances"), ("semantic", "semantic-masks"),
                                     ("instances", "instance-annotations")):
            written.append(_save(_converted_overlay(work / folder_name),
                                 output_dir / f"convert_{picture.replace('-', '_')}.png"))
        paths = coco_panoptic_paths(work / "instances")["train"]
        grounded = load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"],
                                      paths["grounding_json"])[0]
        masks = panoptic_targets(grounded)["masks"]
        index_of = {s["id"]: i for i, s in enumerate(grounded["segments"])}
        things = [g for g in grounded["groundings"] if grounded["segments"][index_of[g["segment_id"]]]["isthing"]]
        picture = overlay_masks(grounded["image"], np.stack([masks[index_of[g["segment_id"]]] for g in things]),
                                [g["sentences"][0] for g in things])
        written.append(_save(picture, output_dir / "convert_sentences.png"))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python scripts/make_convert_pictures.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "docs" / "images", metavar="DIR",
                        help="where the PNGs go (default: docs/images, the pictures docs/your_data.md shows)")
    arguments = parser.parse_args(argv)
    for path in make_pictures(arguments.output_dir):
        print(f"Wrote {path}")


if __name__ == "__main__":
    main()

"""What the data costs at scale: conversion (`seem_hf.data.convert`, each format) and validation
(`validate_coco_panoptic`, the check `load_coco_panoptic` and `--data_dir` run first; "validate again": the same
start once the dataset passed, `validate_coco_panoptic_once`) per 1,000 images, extrapolated
to COCO's 118k, and each one's peak memory at two image counts (flat in the number of images when the two agree).

    python benchmarks/data_scale.py [--counts 250 1000] [--image-size 512] [--num-workers 1 2] [--results FILE]

The inputs are the bundled shapes images (`make_shapes_dataset`, 512 px by default: about the pixel count of a COCO
image, 640x480) written in each format: a COCO instances JSON (things as RLE) with a stuff map, colour masks with
their table, and 3-channel instance annotations. Each measurement runs in its own process, so its peak resident
memory (`VmHWM`) is its own; the figure includes the interpreter with torch imported (the package imports it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import PIL.Image
from pycocotools import mask as mask_utils

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import peak_resident_gb

from seem_hf.data import make_shapes_dataset, rgb2id
from seem_hf.data.shapes import SHAPES_VOCABULARY

MEASURED = ("validate", "validate again", "coco-instances", "semantic-masks", "instance-annotations")


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"
COCO_TRAIN_IMAGES = 118_287


def write_inputs(root: Path, count: int, image_size: int) -> None:
    """The shapes dataset (COCO-panoptic, with groundings) and the same images in the three input formats."""
    paths = make_shapes_dataset(root / "shapes", num_train=count, num_val=0, image_size=image_size)["train"]
    data = json.loads(paths["panoptic_json"].read_text())
    categories = {c["id"]: c for c in data["categories"]}
    for folder in ("stuff", "colours", "layered"):
        (root / folder).mkdir()
    annotations = []
    for annotation in data["annotations"]:
        ids = rgb2id(np.asarray(PIL.Image.open(paths["panoptic_dir"] / annotation["file_name"]).convert("RGB")))
        stuff = np.zeros(ids.shape, np.uint8)
        colours = np.zeros((*ids.shape, 3), np.uint8)
        layered = np.zeros((*ids.shape, 3), np.uint8)
        for segment in annotation["segments_info"]:
            mask, category = ids == segment["id"], categories[segment["category_id"]]
            colours[mask] = category["color"]
            layered[mask, 0], layered[mask, 1] = category["id"], segment["id"]
            if category["isthing"]:
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                annotations.append({"id": len(annotations) + 1, "image_id": annotation["image_id"], "iscrowd": 0,
                                    "category_id": category["id"],
                                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")}})
            else:
                stuff[mask] = category["id"]
        for folder, picture in (("stuff", stuff), ("colours", colours), ("layered", layered)):
            PIL.Image.fromarray(picture).save(root / folder / annotation["file_name"])
    things = [{"id": c["id"], "name": c["name"]} for c in data["categories"] if c["isthing"]]
    (root / "instances.json").write_text(json.dumps({"images": data["images"], "annotations": annotations,
                                                     "categories": things}))
    (root / "stuff.json").write_text(json.dumps([{"index": c["id"], "name": c["name"], "isthing": "stuff"}
                                                 for c in data["categories"] if not c["isthing"]]))
    (root / "colours.json").write_text(json.dumps([{"name": c.name, "isthing": int(c.isthing), "color": list(c.color)}
                                                   for c in SHAPES_VOCABULARY.categories]))
    (root / "classes.json").write_text(json.dumps({"background": 0} | {c["name"]: c["id"]
                                                                       for c in data["categories"]}))


def measure(what: str, root: Path, num_workers: int = 1) -> dict:
    """One measurement, in this process: seconds and peak resident GB (of this process; with workers, of the
    parent, each forked worker holding one image at a time)."""
    from seem_hf.data.convert import convert_coco_instances, convert_instance_annotations, convert_semantic_masks

    images = root / "shapes" / "train"
    started = time.perf_counter()
    if what in ("validate", "validate again"):
        # What load_coco_panoptic runs at each start: the full check, then (a dataset that passed, unchanged) the
        # fingerprint of its files only.
        from seem_hf.data.validation import VALIDATION_CACHE_ENV, validate_coco_panoptic_once

        os.environ[VALIDATION_CACHE_ENV] = str(root / "validated")
        folder = root / "shapes" / "annotations"
        problems = validate_coco_panoptic_once(images, folder / "panoptic_train", folder / "panoptic_train.json",
                                               folder / "grounding_train.json")
        assert not problems, problems[:3]
    elif what == "coco-instances":
        convert_coco_instances(root / "instances.json", images, root / "out_coco", stuff_dir=root / "stuff",
                               stuff_categories=root / "stuff.json", stuff_ignore_index=0, overwrite=True,
                               num_workers=num_workers)
    elif what == "semantic-masks":
        convert_semantic_masks(images, root / "colours", root / "colours.json", root / "out_semantic", overwrite=True,
                               num_workers=num_workers)
    else:
        stuff = [c.name for c in SHAPES_VOCABULARY.categories if not c.isthing]
        convert_instance_annotations(images, root / "layered", root / "classes.json", root / "out_layered",
                                     stuff_classes=stuff, do_reduce_labels=True, overwrite=True,
                                     num_workers=num_workers)
    return {"seconds": time.perf_counter() - started, "peak_gb": peak_resident_gb()}


def _child(what: str, root: Path, num_workers: int) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", what, str(root), str(num_workers)],
                            capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/data_scale.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[250, 1000], help="image counts (default 250 1000)")
    parser.add_argument("--image-size", type=int, default=512, help="side of the square images (default 512)")
    parser.add_argument("--num-workers", type=int, nargs="+", default=[1],
                        help="worker processes of the conversions, each count measured (default 1)")
    parser.add_argument("--results", type=Path, help="append the table to this Markdown file")
    parser.add_argument("--child", nargs=3, metavar=("WHAT", "ROOT", "WORKERS"), help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.child:
        print(json.dumps(measure(arguments.child[0], Path(arguments.child[1]), int(arguments.child[2]))))
        return
    results = {}
    steps = [("validate", 1), ("validate again", 1)] + [(step, workers) for step in MEASURED[2:]
                                                        for workers in arguments.num_workers]
    with tempfile.TemporaryDirectory() as folder:
        for count in arguments.counts:
            root = Path(folder) / str(count)
            root.mkdir()
            started = time.perf_counter()
            write_inputs(root, count, arguments.image_size)
            print(f"{count} images written in {time.perf_counter() - started:.0f} s", flush=True)
            for what in steps:
                step, workers = what
                results[what, count] = _child(step, root, workers)
                print(what, count, results[what, count], flush=True)
    largest = max(arguments.counts)
    rows = []
    for what in steps:
        per_thousand = results[what, largest]["seconds"] / largest * 1000
        name = what[0] if what[0].startswith("validate") else f"{what[0]}, {plural(what[1], 'process', 'processes')}"
        rows.append(f"| {name} | {per_thousand:.3g} | {per_thousand * COCO_TRAIN_IMAGES / 1000 / 60:.3g} | "
                    + " | ".join(f"{results[what, count]['peak_gb']:.2f}" for count in arguments.counts) + " |")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python benchmarks/data_scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = "\n".join([
        f"### Data at scale: conversion and validation ({stamp})", "",
        (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
         f"{platform.python_version()}  "),
        f"Command: `{command.strip()}`", "",
        (f"Shapes images of {arguments.image_size}x{arguments.image_size} px; seconds per 1,000 from the {largest}-"
         f"image run; 118k = COCO train2017 ({COCO_TRAIN_IMAGES:,} images) at that rate."), "",
        ("| step | s per 1,000 images | minutes for 118k | "
         + " | ".join(f"peak GB at {c}" for c in arguments.counts) + " |"),
        "|---|---|---|" + "---|" * len(arguments.counts),
        *rows, "",
    ])
    print(table)
    if arguments.results:
        with arguments.results.open("a") as handle:
            handle.write("\n" + table)


if __name__ == "__main__":
    main()

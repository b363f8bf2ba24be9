"""The README's main command: segment a few bundled images with each embedded default model and write overlay PNGs
and a table of segments.

    ./run demo [--output-dir outputs/demo] [--count 3] [--seem FOLDER] [--lseg FOLDER] [--detr-panoptic FOLDER]

(`./run demo ARGS` is `.venv/bin/python -m seem_hf.demo ARGS`.)

The defaults are the small checkpoints trained on the bundled shapes dataset and shipped in
`seem_hf/checkpoints/` (`scripts/train_defaults.py` made them); the images are the validation split of that
dataset, generated on the spot (deterministic, a second or two). Per image:
- DETR-panoptic: panoptic and semantic segmentation;
- SEEM: panoptic segmentation, referring segmentation of one of the image's sentences, and interactive
  segmentation from one click (at the innermost point of a shape);
- LSeg: semantic segmentation over the dataset's label list.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from seem_hf.data import load_coco_panoptic, make_shapes_dataset
from seem_hf.visualize import overlay_masks, overlay_segments, overlay_semantic, save_overlay

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
DEFAULTS = {name: CHECKPOINTS / f"{name}-shapes" for name in ("seem", "lseg", "detr_panoptic")}


@functools.lru_cache(maxsize=8)
def _example_image(index: int) -> PIL.Image.Image:
    with tempfile.TemporaryDirectory() as folder:
        paths = make_shapes_dataset(folder, num_train=0, num_val=index + 1, image_size=256, seed=0)["val"]
        with PIL.Image.open(sorted(paths["image_dir"].glob("*.jpg"))[index]) as image:
            return image.convert("RGB")


def example_image(index: int = 0) -> PIL.Image.Image:
    """A bundled picture: the `index`-th validation image of the shapes dataset the demo uses (256x256 RGB, made on
    the spot and always the same; the documentation's examples segment it)."""
    if index < 0:
        raise ValueError(f"example_image(index) needs an index >= 0, got {index}.")
    return _example_image(index).copy()


def demo_examples(output_dir: Path, count: int = 3) -> list[dict]:
    """A few validation rows of the bundled shapes dataset (written under `output_dir/data`): `image`, one
    referring `sentence` and a `click` (x, y) at the innermost point of one shape."""
    from seem_hf.data.coco_panoptic import panoptic_targets
    from seem_hf.models.seem.visual_sampler_seem import next_click

    paths = make_shapes_dataset(output_dir / "data", num_train=0, num_val=count, image_size=256, seed=0)["val"]
    dataset = load_coco_panoptic(paths["image_dir"], paths["panoptic_dir"], paths["panoptic_json"],
                                 paths["grounding_json"])
    examples = []
    for row in dataset:
        targets = panoptic_targets(row)
        thing = int(np.flatnonzero(targets["isthing"])[0]) if targets["isthing"].any() else 0
        target = torch.from_numpy(targets["masks"][thing])
        click, _ = next_click(torch.zeros_like(target), target, torch.zeros_like(target))
        y, x = (float(v) for v in torch.nonzero(click).float().mean(0))
        sentences = [text for grounding in row["groundings"] for text in grounding["sentences"]]
        examples.append({"image": row["image"].convert("RGB"), "sentence": sentences[-1] if sentences else "the shape",
                         "click": (x, y)})
    return examples


def _load(folder: Path):
    import seem_hf  # noqa: F401  (registers the Auto classes)
    from transformers import AutoModel, AutoProcessor

    return AutoModel.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)


def _rows_of(result, id2label, model, index, task, prompt=""):
    rows = []
    for segment in result["segments_info"]:
        area = int((result["segmentation"] == segment["id"]).sum())
        rows.append((model, index, task, prompt, id2label[segment["label_id"]], segment["score"], area))
    return rows


def run_detr_panoptic(examples, output_dir: Path, folder: Path):
    model, processor = _load(folder)
    images = [example["image"] for example in examples]
    sizes = [(image.height, image.width) for image in images]
    with torch.inference_mode():
        outputs = model(**processor(images=images, return_tensors="pt"))
    panoptic = processor.post_process_panoptic_segmentation(outputs, target_sizes=sizes)
    semantic = processor.post_process_semantic_segmentation(outputs, target_sizes=sizes)
    id2label, colors = processor.image_processor.id2label, processor.image_processor.label_colors
    rows, written = [], []
    for index, (image, result, labels) in enumerate(zip(images, panoptic, semantic)):
        rows += _rows_of(result, id2label, "DETR-panoptic", index, "panoptic")
        written.append(save_overlay(overlay_segments(image, result["segmentation"], result["segments_info"], id2label,
                                                     colors), output_dir / f"detr_panoptic_{index}_panoptic.png"))
        written.append(save_overlay(overlay_semantic(image, labels, id2label, colors),
                                    output_dir / f"detr_panoptic_{index}_semantic.png"))
    return rows, written


def run_seem(examples, output_dir: Path, folder: Path):
    model, processor = _load(folder)
    id2label = processor.image_processor.id2label
    rows, written = [], []
    for index, example in enumerate(examples):
        image, size = example["image"], [(example["image"].height, example["image"].width)]
        inputs = processor(images=image, sentences=[example["sentence"]],
                           visual_prompts=[{"points": [example["click"]]}], text=list(id2label.values()))
        with torch.inference_mode():
            features = model.get_image_features(inputs["pixel_values"])
            outputs = model(image_features=features, generator=torch.Generator().manual_seed(0), **{
                key: value for key, value in inputs.items() if key != "pixel_values"})
        # The small default is less sure of its classes than the released model: keep segments above 0.5, not 0.8.
        panoptic = processor.post_process_panoptic_segmentation(outputs, threshold=0.5, target_sizes=size)[0]
        rows += _rows_of(panoptic, id2label, "SEEM", index, "panoptic", "score > 0.5")
        written.append(save_overlay(overlay_segments(image, panoptic["segmentation"], panoptic["segments_info"],
                                                     id2label), output_dir / f"seem_{index}_panoptic.png"))
        # the best match; none when even the best query's mask is empty (then the picture is the bare image)
        referring = processor.post_process_referring_segmentation(outputs, target_sizes=size, top_k=1)[0][0]
        matched = len(referring["scores"]) > 0
        rows.append(("SEEM", index, "referring", repr(example["sentence"]), "-" if matched else "no match",
                     float(referring["scores"][0]) if matched else None, int(referring["masks"].sum())))
        named = [example["sentence"]] if matched else None
        written.append(save_overlay(overlay_masks(image, referring["masks"], named),
                                    output_dir / f"seem_{index}_referring.png"))
        interactive = processor.post_process_interactive_segmentation(outputs, target_sizes=size)[0]
        x, y = example["click"]
        label = id2label[int(interactive["labels"][0])]
        rows.append(("SEEM", index, "interactive", f"click ({x:.0f}, {y:.0f})", label,
                     float(interactive["scores"][0]), int(interactive["masks"][0].sum())))
        written.append(save_overlay(overlay_masks(image, interactive["masks"], [label], points=[(x, y, True)]),
                                    output_dir / f"seem_{index}_interactive.png"))
    return rows, written


def run_lseg(examples, output_dir: Path, folder: Path):
    model, processor = _load(folder)
    labels = [processor.id2label[index] for index in sorted(processor.id2label)]
    rows, written = [], []
    for index, example in enumerate(examples):
        image = example["image"]
        with torch.inference_mode():
            outputs = model(**processor(images=image, text=labels, return_tensors="pt"))
        semantic = processor.post_process_semantic_segmentation(outputs, target_sizes=[(image.height, image.width)])[0]
        for label in torch.unique(semantic).tolist():
            rows.append(("LSeg", index, "semantic", "label list", labels[label], None, int((semantic == label).sum())))
        written.append(save_overlay(overlay_semantic(image, semantic, dict(enumerate(labels))),
                                    output_dir / f"lseg_{index}_semantic.png"))
    return rows, written


def format_table(rows) -> str:
    lines = ["| model | image | task | prompt | label | score | pixels |", "|---|---|---|---|---|---|---|"]
    for model, index, task, prompt, label, score, pixels in rows:
        shown = "-" if score is None else f"{score:.3f}"
        lines.append(f"| {model} | {index} | {task} | {prompt} | {label} | {shown} | {pixels} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m seem_hf.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/demo"), metavar="DIR",
                        help="where the overlay PNGs and segments.md go (default: %(default)s)")
    parser.add_argument("--count", type=int, default=3, metavar="N",
                        help="how many bundled images to segment (default: %(default)s)")
    for name in DEFAULTS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=Path, default=DEFAULTS[name], metavar="FOLDER",
                            help=f"the {name} checkpoint folder (default: the embedded {DEFAULTS[name].name})")
    arguments = parser.parse_args(argv)
    if arguments.count < 1:
        parser.error(f"--count must be at least 1, got {arguments.count}.")
    examples = demo_examples(arguments.output_dir, arguments.count)
    for index, example in enumerate(examples):
        save_overlay(example["image"], arguments.output_dir / f"input_{index}.png")
    rows, written = [], []
    for run, folder in ((run_detr_panoptic, arguments.detr_panoptic), (run_seem, arguments.seem),
                        (run_lseg, arguments.lseg)):
        model_rows, model_written = run(examples, arguments.output_dir, folder)
        rows, written = rows + model_rows, written + model_written
    table = format_table(rows)
    (arguments.output_dir / "segments.md").write_text(table + "\n")
    print(table)
    print(f"\nWrote {len(written)} overlay PNGs and segments.md to {arguments.output_dir}/")


if __name__ == "__main__":
    main()

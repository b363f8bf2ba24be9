"""The README's main command: segment a few bundled images with the default models and write overlay PNGs.

    ./run demo [--output-dir outputs/demo]

For now the default is the tiny random-weight DETR-panoptic checkpoint shipped for the tests (trained
defaults come later); the images are the validation split of the bundled shapes dataset, generated on the
spot (deterministic, a second or two).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import PIL.Image
import torch

from seem_hf import DetrPanopticForSegmentation, DetrPanopticProcessor
from seem_hf.data import make_shapes_dataset
from seem_hf.testing import FIXTURES
from seem_hf.visualize import overlay_segments, overlay_semantic, save_overlay

DEFAULT_DETR_PANOPTIC = FIXTURES / "tiny-random-detr_panoptic"


def demo_images(output_dir: Path, count: int = 3) -> list[PIL.Image.Image]:
    """A few validation images of the bundled shapes dataset (written under `output_dir/data`)."""
    paths = make_shapes_dataset(output_dir / "data", num_train=0, num_val=count, image_size=256, seed=0)
    return [PIL.Image.open(path).convert("RGB") for path in sorted(paths["val"]["image_dir"].glob("*.jpg"))]


def run_detr_panoptic(images, output_dir: Path, checkpoint: Path = DEFAULT_DETR_PANOPTIC) -> list[Path]:
    processor = DetrPanopticProcessor.from_pretrained(checkpoint)
    model = DetrPanopticForSegmentation.from_pretrained(checkpoint).eval()
    inputs = processor(images=images, return_tensors="pt")
    with torch.inference_mode():
        outputs = model(**inputs)
    sizes = [(image.height, image.width) for image in images]
    panoptic = processor.post_process_panoptic_segmentation(outputs, target_sizes=sizes)
    semantic = processor.post_process_semantic_segmentation(outputs, target_sizes=sizes)
    written = []
    print(f"DETR-panoptic ({checkpoint.name})")
    print(f"{'image':>5}  {'segment':>7}  {'label':<10} {'score':>6} {'pixels':>7}")
    for index, (image, result, labels) in enumerate(zip(images, panoptic, semantic)):
        for segment in result["segments_info"]:
            area = int((result["segmentation"] == segment["id"]).sum())
            name = processor.id2label[segment["label_id"]]
            print(f"{index:>5}  {segment['id']:>7}  {name:<10} {segment['score']:>6.3f} {area:>7}")
        picture = overlay_segments(image, result["segmentation"], result["segments_info"], processor.id2label,
                                   processor.label_colors)
        written.append(save_overlay(picture, output_dir / f"detr_panoptic_{index}_panoptic.png"))
        picture = overlay_semantic(image, labels, processor.id2label, processor.label_colors)
        written.append(save_overlay(picture, output_dir / f"detr_panoptic_{index}_semantic.png"))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("outputs/demo"))
    arguments = parser.parse_args(argv)
    images = demo_images(arguments.output_dir)
    for index, image in enumerate(images):
        save_overlay(image, arguments.output_dir / f"input_{index}.png")
    written = run_detr_panoptic(images, arguments.output_dir)
    print(f"Wrote {len(written)} overlay PNGs to {arguments.output_dir}/")


if __name__ == "__main__":
    main()

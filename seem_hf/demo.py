"""The README's main command: segment a few bundled images with the default models and write overlay PNGs.

    ./run demo [--output-dir outputs/demo]

For now the default is the tiny random-weight DETR-panoptic checkpoint shipped for the tests (trained
defaults come with the bundled dataset); the images are drawn here, deterministically: stuff backgrounds and
a few shapes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import torch

from seem_hf import DetrPanopticForSegmentation, DetrPanopticProcessor
from seem_hf.testing import FIXTURES
from seem_hf.visualize import overlay_segments, overlay_semantic, save_overlay

DEFAULT_DETR_PANOPTIC = FIXTURES / "tiny-random-detr_panoptic"


def demo_images(count: int = 3, size: tuple[int, int] = (160, 224), seed: int = 0) -> list[PIL.Image.Image]:
    """Sky over grass with a circle, a square and a triangle at random places."""
    rng = np.random.default_rng(seed)
    images = []
    height, width = size
    for _ in range(count):
        horizon = int(rng.integers(height // 3, 2 * height // 3))
        pixels = np.zeros((height, width, 3), dtype=np.float32)
        pixels[:horizon] = (135, 206, 235)
        pixels[horizon:] = (60, 160, 60)
        pixels += rng.normal(0, 12, pixels.shape)
        image = PIL.Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
        draw = PIL.ImageDraw.Draw(image)
        for shape, color in (("circle", (220, 40, 40)), ("square", (40, 80, 220)), ("triangle", (240, 200, 40))):
            radius = int(rng.integers(12, 30))
            cx, cy = int(rng.integers(radius, width - radius)), int(rng.integers(radius, height - radius))
            if shape == "circle":
                draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=color)
            elif shape == "square":
                draw.rectangle((cx - radius, cy - radius, cx + radius, cy + radius), fill=color)
            else:
                draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=color)
        images.append(image)
    return images


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
    images = demo_images()
    for index, image in enumerate(images):
        save_overlay(image, arguments.output_dir / f"input_{index}.png")
    written = run_detr_panoptic(images, arguments.output_dir)
    print(f"Wrote {len(written)} overlay PNGs to {arguments.output_dir}/")


if __name__ == "__main__":
    main()

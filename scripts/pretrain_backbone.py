"""Stage 1 of the embedded defaults' recipe: pretrain the image backbone on the shapes stream's object crops.

The released SEEM, LSeg and DETR-panoptic start their segmentation training from backbones pretrained on ImageNet
(or CLIP); the embedded defaults have no such data, and from random weights their backbones never learn shape
identity within a run that fits this machine: after 1,500 SEEM steps a linear probe of the backbone's and the pixel
decoder's features pooled over each held-out thing tells its shape no better than chance (0.31-0.38, random weights
0.21-0.31; the decoder's query features 0.28), so things get the right mask but a chance class. This stage gives the
backbone what ImageNet gives the released ones, from the project's own data: each thing of the stream (large-scale
jitter as in training) is cropped at its box with a margin, resized to `CROP` px, and the backbone, pooled by a
linear head, learns its shape. The head is dropped; the segmentation training starts from the backbone.

    python scripts/pretrain_backbone.py --model seem --steps 1500   # prints held-out accuracy (a check)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seem_hf.data import AugmentedPanopticDataset, LargeScaleJitter, ShapesStream  # noqa: E402
from seem_hf.data.shapes import SHAPES, STUFF  # noqa: E402

CROP = 64
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # the three image processors' ImageNet statistics
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def thing_crops(dataset, indices, size: int = CROP, normalise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(crops (N, 3, size, size), shape index (N,)) of every thing of at least 30 visible pixels in rows `indices`
    of `dataset`, cropped at its box with a 4 px margin; in [0, 1], or normalised as the image processors do."""
    crops, labels = [], []
    for index in indices:
        row = dataset[index]
        for mask, label in zip(np.asarray(row["masks"]), np.asarray(row["labels"])):
            rows, cols = np.nonzero(mask)
            if label < len(STUFF) or len(rows) < 30:
                continue
            top, left = max(rows.min() - 4, 0), max(cols.min() - 4, 0)
            crop = torch.from_numpy(row["image"][top:rows.max() + 5, left:cols.max() + 5]).permute(2, 0, 1)
            crops.append(F.interpolate(crop[None].float() / 255, size=(size, size), mode="bilinear")[0])
            labels.append(int(label) - len(STUFF))
    crops = torch.stack(crops)
    return ((crops - MEAN) / STD if normalise else crops), torch.tensor(labels)


def image_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """The backbone's deepest feature map `(batch, channels, h, w)` for SEEM, DETR-panoptic, or LSeg (whose image
    side, ViT and DPT neck, is its backbone)."""
    kind = model.config.model_type
    if kind == "seem":
        return model.backbone(pixel_values)[-1]
    if kind == "detr_panoptic":
        return model.detr.model.backbone.model(pixel_values).feature_maps[-1]
    if kind == "lseg":
        return model.get_image_features(pixel_values)
    raise ValueError(f"No backbone pretraining for model type {kind!r}.")


def pretrain_backbone(model, steps: int, images_per_step: int = 4, learning_rate: float = 1e-3, seed: int = 0,
                      log=print) -> list[tuple[int, float]]:
    """Train `model`'s backbone (in place) for `steps` steps of `images_per_step` stream images' thing crops (seed
    `seed + 1`: other images than the segmentation training's) with a linear head on its pooled deepest features.
    Returns (step, held-out shape accuracy) every `steps // 5` steps, on the things of `ShapesStream.held_out(16)`
    (chance 0.25)."""
    torch.manual_seed(seed)
    train = AugmentedPanopticDataset(ShapesStream(seed=seed + 1, image_size=256), LargeScaleJitter(256, 0.5, 2.0),
                                     seed=seed)
    held_out = AugmentedPanopticDataset(ShapesStream.held_out(16, seed=0, image_size=256),
                                        LargeScaleJitter(256, 1.0, 1.0, flip_probability=0.0))
    held_x, held_y = thing_crops(held_out, range(16))
    with torch.no_grad():
        channels = image_features(model, held_x[:1]).shape[1]
    head = torch.nn.Linear(channels, len(SHAPES))
    # Everything trains here, also what fine-tuning keeps frozen (DETR's ResNet stem, meant to come from ImageNet).
    frozen = [p for p in model.parameters() if not p.requires_grad]
    model.requires_grad_(True)
    parameters = list(model.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.05)
    was_training = model.training
    model.train()
    history, started = [], time.perf_counter()
    for step in range(1, steps + 1):
        x, y = thing_crops(train, range(step * images_per_step, (step + 1) * images_per_step))
        loss = F.cross_entropy(head(image_features(model, x).mean((2, 3))), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % max(1, steps // 5) == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                accuracy = float((head(image_features(model, held_x).mean((2, 3))).argmax(1) == held_y).float().mean())
            model.train()
            history.append((step, accuracy))
            log(f"backbone pretraining step {step}/{steps}: loss {loss.item():.3f}, held-out shape accuracy "
                f"{accuracy:.2f} ({time.perf_counter() - started:.0f} s)")
    model.train(was_training)
    for parameter in frozen:
        parameter.requires_grad_(False)
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["seem", "lseg", "detr_panoptic"], default="seem")
    parser.add_argument("--steps", type=int, default=1500)
    options = parser.parse_args()
    sys.path.insert(0, str(ROOT / "scripts"))
    from train_defaults import CONFIGS
    from transformers import AutoModel

    torch.manual_seed(0)
    model = AutoModel.from_config(CONFIGS[options.model]())  # the package's models are registered on import
    pretrain_backbone(model, options.steps)


if __name__ == "__main__":
    main()

"""scripts/make_tiny_checkpoints.py's initialisations, on the configs `train_defaults.py` starts from."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seem_hf import DetrPanopticForSegmentation
from seem_hf.data import ShapesStream

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from make_tiny_checkpoints import separate_detr_panoptic_masks, sharpen_detr_panoptic  # noqa: E402
from train_defaults import shapes_detr_panoptic_config  # noqa: E402


@pytest.mark.parametrize("dilation", [False, True])
@pytest.mark.parametrize("separate", [False, True])
def test_detr_panoptic_masks_differ_across_queries_only_when_separated(separate, dilation):
    """DETR's attention map softmaxes over heads x positions jointly, so its channels are ~0.002 beside the mask head's
    features of ~1 and every query gets the same mask (measured: 3.5e-6 across queries; with the separation 0.068,
    and 0.073 on the DC5 map, whose four times as many positions the separation weighs four times more).
    Same weights otherwise: the separation rescales, it adds nothing."""
    image = np.asarray(ShapesStream.held_out(1, image_size=256)[0]["image"], dtype=np.float32) / 255
    pixel_values = (torch.from_numpy(image).permute(2, 0, 1)[None] - 0.45) / 0.25
    torch.manual_seed(0)
    config = shapes_detr_panoptic_config()
    config.dilation = dilation  # the default's DC5 map (16x16) and the undilated one (8x8)
    model = DetrPanopticForSegmentation(config).eval()
    sharpen_detr_panoptic(model)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    if separate:
        separate_detr_panoptic_masks(model)
    with torch.no_grad():
        masks = model(pixel_values=pixel_values).pred_masks.sigmoid()
    spread = masks.std(dim=1).mean().item()
    if separate:
        assert spread > 0.03, spread
        changed = {name for name, tensor in model.state_dict().items() if not torch.equal(tensor, before[name])}
        assert changed == {"bbox_attention.q_proj.weight", "bbox_attention.k_proj.weight",
                           "mask_head.conv1.conv.weight"}
    else:
        assert spread < 1e-3, spread

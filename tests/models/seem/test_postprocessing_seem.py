"""SEEM's post-processing, made fast (issue 19), against its faithful form: each mask resized by torch's bilinear
then antialiased bicubic `interpolate`, every query's mask at full size, and the rules written out plainly."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from seem_hf import SeemImageProcessor
from seem_hf.postprocessing import crop_and_resize_masks, panoptic_segmentation

from ...helpers import voronoi_outputs


def _torch_resize(mask_logits, padded, image, target, mode="bicubic"):
    upsampled = F.interpolate(mask_logits[None], size=padded, mode="bilinear", align_corners=False)
    cropped = upsampled[..., : image[0], : image[1]]
    return F.interpolate(cropped, size=target, mode=mode, align_corners=False, antialias=mode == "bicubic")[0]


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
@pytest.mark.parametrize(
    "low, padded, image, target",
    [
        ((16, 20), (64, 80), (64, 80), (64, 82)),  # about the same size (the 800x1066 benchmark's case)
        ((16, 20), (64, 80), (60, 71), (30, 35)),  # padding cropped, then halved
        ((16, 20), (64, 80), (64, 80), (9, 7)),  # a large reduction: wide antialiasing kernels
        ((16, 20), (64, 80), (50, 80), (150, 241)),  # enlarged
        ((1, 3), (4, 12), (4, 12), (5, 13)),  # a single row
    ],
)
def test_resize_equals_torch_interpolate(mode, low, padded, image, target):
    masks = torch.randn(5, *low) * 8
    expected = _torch_resize(masks, padded, image, target, mode)
    # the same weights summed in another order: float32 rounding of logits of magnitude ~10-30
    torch.testing.assert_close(crop_and_resize_masks(masks, padded, image, target, mode), expected,
                               atol=1e-4, rtol=1e-5)
    assert crop_and_resize_masks(masks[:0], padded, image, target, mode).shape == (0, *target)


def _outputs(seed):
    raw = voronoi_outputs(num_queries=24, num_labels=40, height=24, width=32, num_segments=7, seed=seed)
    return raw, SimpleNamespace(class_queries_logits=raw.logits, masks_queries_logits=raw.pred_masks)


SIZE = (150, 190)


@pytest.mark.parametrize("seed", range(3))
def test_semantic_equals_the_faithful_rule(seed):
    raw, outputs = _outputs(seed)
    result = SeemImageProcessor().post_process_semantic_segmentation(outputs, target_sizes=[SIZE])[0]
    masks = _torch_resize(raw.pred_masks[0], (96, 128), (96, 128), SIZE).sigmoid()
    scores = torch.einsum("qc,qhw->chw", raw.logits[0].softmax(-1)[:, :-1], masks)
    expected = scores.argmax(0)
    differ = result != expected
    # only pixels whose two best labels tie to float rounding (sums in another order) may differ
    top2 = scores.topk(2, dim=0).values
    assert bool(((top2[0] - top2[1])[differ] < 1e-5).all())
    assert int(differ.sum()) <= 5


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("threshold", [0.0, 0.8])
def test_panoptic_equals_the_faithful_rule(seed, threshold):
    raw, outputs = _outputs(seed)
    fuse = set(range(20, 40))
    result = SeemImageProcessor().post_process_panoptic_segmentation(
        outputs, threshold=threshold, label_ids_to_fuse=fuse, target_sizes=[SIZE])[0]
    masks = _torch_resize(raw.pred_masks[0], (96, 128), (96, 128), SIZE)
    expected = panoptic_segmentation(raw.logits, masks[None], threshold, 0.5, 0.8, fuse)[0]
    assert result["segments_info"] == expected["segments_info"]
    # resized logits agree to ~1e-5 (test above): only near-tied pixels may go to the other query
    assert int((result["segmentation"] != expected["segmentation"]).sum()) <= 5


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("threshold", [0.0, 0.5])
def test_instance_binary_maps_equal_the_faithful_rule(seed, threshold):
    raw, outputs = _outputs(seed)
    result = SeemImageProcessor().post_process_instance_segmentation(
        outputs, threshold=threshold, return_binary_maps=True, top_k=30, target_sizes=[SIZE])[0]
    # SEEM's rule written out: the top-30 (query, label) pairs, every pair's mask resized
    probabilities = raw.logits[0].softmax(-1)[:, :-1]
    scores, flat = probabilities.flatten().topk(30)
    labels, queries = flat % 40, flat // 40
    masks = _torch_resize(raw.pred_masks[0, queries], (96, 128), (96, 128), SIZE)
    binary = masks > 0
    scores = scores * (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    order = scores.argsort(descending=True)
    order = order[scores[order] > threshold]
    assert [info["label_id"] for info in result["segments_info"]] == labels[order].tolist()
    assert [info["score"] for info in result["segments_info"]] == pytest.approx(scores[order].tolist(), rel=1e-5)
    # masks are logits > 0 of resized logits equal to ~1e-5: a pixel at logit ~0 may flip
    assert int((result["segmentation"] != binary[order]).sum()) <= 5
    assert len(result["segments_info"]) > 0

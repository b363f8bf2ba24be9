"""Multi-scale, flipped, sliding-window evaluation: each piece against the plain forward it is built from."""

import pytest
import torch
from torch.nn import functional as F

from seem_hf import LSegForSemanticSegmentation
from seem_hf.models.lseg.evaluation_lseg import multi_scale_logits
from seem_hf.testing import tiny_lseg_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LSegForSemanticSegmentation(tiny_lseg_config()).eval()


@pytest.fixture(scope="module")
def labels(model):
    ids = torch.full((3, 77), 49407)
    ids[:, 0], ids[:, 1] = 49406, torch.tensor([320, 1125, 2368])
    with torch.no_grad():
        return model.get_text_features(ids)


def _forward(model, x, labels):
    with torch.no_grad():
        return model(pixel_values=x, class_embeddings=labels).logits


def test_one_scale_without_flip_is_the_plain_forward(model, labels):
    image = torch.randn(1, 3, 64, 64)
    result = multi_scale_logits(model, image, labels, scales=(1.0,), flip=False, base_size=64, crop_size=64)
    torch.testing.assert_close(result, _forward(model, image, labels))


def test_flip_adds_the_flipped_back_logits(model, labels):
    image = torch.randn(1, 3, 64, 64)
    result = multi_scale_logits(model, image, labels, scales=(1.0,), flip=True, base_size=64, crop_size=64)
    expected = _forward(model, image, labels) + _forward(model, image.flip(-1), labels).flip(-1)
    torch.testing.assert_close(result, expected)


def test_small_scales_are_padded_and_cropped_back(model, labels):
    image = torch.randn(1, 3, 64, 64)
    result = multi_scale_logits(model, image, labels, scales=(0.5,), flip=False, base_size=64, crop_size=64)
    small = F.interpolate(image, size=(32, 32), mode="bilinear", align_corners=True)
    padded = F.pad(small, (0, 32, 0, 32), value=-1.0)
    expected = F.interpolate(_forward(model, padded, labels)[..., :32, :32], size=(64, 64), mode="bilinear",
                             align_corners=True)
    torch.testing.assert_close(result, expected)


def test_large_images_are_covered_by_averaged_sliding_windows(model, labels):
    image = torch.randn(1, 3, 64, 96)  # long side 96 > crop 64: windows at columns 0 and 32 (stride 42 -> 2 cols)
    result = multi_scale_logits(model, image, labels, scales=(1.0,), flip=False, base_size=96, crop_size=64)
    left, right = _forward(model, image[..., :64], labels), _forward(model, image[..., 32:], labels)
    expected = torch.zeros(1, 3, 64, 96)
    expected[..., :32], expected[..., 64:] = left[..., :32], right[..., 32:]
    expected[..., 32:64] = (left[..., 32:] + right[..., :32]) / 2
    torch.testing.assert_close(result, expected)


def test_scales_are_summed(model, labels):
    image = torch.randn(1, 3, 64, 64)
    arguments = dict(flip=False, base_size=64, crop_size=64)
    both = multi_scale_logits(model, image, labels, scales=(0.5, 1.0), **arguments)
    parts = sum(multi_scale_logits(model, image, labels, scales=(s,), **arguments) for s in (0.5, 1.0))
    torch.testing.assert_close(both, parts)
    with pytest.raises(ValueError, match="multiple of 32"):
        multi_scale_logits(model, image, labels, crop_size=50)

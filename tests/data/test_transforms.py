"""Large-scale jitter: fixed output size, masks that stay on their pixels, reported crops, determinism."""

import numpy as np
import pytest

from seem_hf.data.transforms import LargeScaleJitter


def _scene():
    image = np.zeros((60, 90, 3), dtype=np.uint8)
    masks = np.zeros((3, 60, 90), dtype=bool)
    masks[0, :, :30] = True  # red band on the left
    masks[1, :, 30:] = True  # green on the right
    masks[2, 20:40, 60:80] = True  # a blue square, over the green (segments may overlap in this test)
    image[masks[0]] = (255, 0, 0)
    image[masks[1]] = (0, 255, 0)
    image[masks[2]] = (0, 0, 255)
    return image, masks


@pytest.mark.parametrize("seed", range(8))
def test_masks_stay_on_their_pixels(seed):
    image, masks = _scene()
    out = LargeScaleJitter(output_size=128, min_scale=0.5, max_scale=2.0)(image, masks, np.random.default_rng(seed))
    assert out.image.shape == (128, 128, 3) and out.masks.shape[1:] == (128, 128) and out.valid.shape == (128, 128)
    assert (out.image[~out.valid] == 128).all() and not out.masks[:, ~out.valid].any()
    colors = {0: (255, 0, 0), 1: (0, 0, 0), 2: (0, 0, 255)}
    for mask, index in zip(out.masks, out.kept):
        if index == 1:
            continue  # the green band is partly under the blue square
        inner = mask.copy()  # away from edges, where bilinear colours blend
        inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
        inner[[0, -1]] = False
        inner[:, [0, -1]] = False
        if inner.any():
            assert (np.abs(out.image[inner].astype(int) - colors[index]).max(1) <= 40).mean() > 0.95


def test_cropped_out_segments_are_reported():
    image, masks = _scene()
    jitter = LargeScaleJitter(output_size=64, min_scale=2.0, max_scale=2.0, flip_probability=0.0)
    seen = set()
    for seed in range(20):
        out = jitter(image, masks, np.random.default_rng(seed))
        assert len(out.kept) == len(out.masks) and set(out.kept.tolist()) <= {0, 1, 2}
        seen.add(tuple(out.kept.tolist()))
    assert any(len(kept) < 3 for kept in seen)  # at 2x zoom some crops lose a segment, and say so


def test_same_seed_same_result_and_flip():
    image, masks = _scene()
    jitter = LargeScaleJitter(output_size=96)
    first, second = (jitter(image, masks, np.random.default_rng(5)) for _ in range(2))
    assert np.array_equal(first.image, second.image) and np.array_equal(first.masks, second.masks)
    flipped = LargeScaleJitter(output_size=96, min_scale=1.0, max_scale=1.0, flip_probability=1.0)(
        image, masks, np.random.default_rng(0)
    )
    assert flipped.masks[0][:, -20:].any() and not flipped.masks[0][:, :20].any()  # the left band moved right


def test_bad_arguments():
    with pytest.raises(ValueError, match="output_size"):
        LargeScaleJitter(output_size=8)
    with pytest.raises(ValueError, match="min_scale"):
        LargeScaleJitter(min_scale=2.0, max_scale=1.0)
    image, masks = _scene()
    with pytest.raises(ValueError, match="do not match"):
        LargeScaleJitter(output_size=64)(image, masks[:, :10], np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8"):
        LargeScaleJitter(output_size=64)(image.astype(float), masks, np.random.default_rng(0))

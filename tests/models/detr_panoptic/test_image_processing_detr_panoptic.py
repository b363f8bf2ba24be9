"""DetrPanopticImageProcessor: transformers' DETR pre-processing without torchvision, every input form, and
clear errors for input it cannot read."""

import numpy as np
import PIL.Image
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import DetrImageProcessorPil

from seem_hf import DetrPanopticImageProcessor, DetrPanopticProcessor


@pytest.fixture(scope="module")
def processor():
    return DetrPanopticImageProcessor()


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)


def test_defaults_are_detrs(processor):
    assert processor.size.shortest_edge == 800 and processor.size.longest_edge == 1333
    assert processor.do_pad and processor.backend == "pil"
    np.testing.assert_allclose(processor.image_mean, [0.485, 0.456, 0.406])


def test_equals_transformers_detr_processor(processor, rgb):
    ours = processor(images=PIL.Image.fromarray(rgb), return_tensors="pt")
    theirs = DetrImageProcessorPil()(images=PIL.Image.fromarray(rgb), return_tensors="pt")
    assert ours["pixel_values"].shape == (1, 3, 800, 1200)
    torch.testing.assert_close(ours["pixel_values"], theirs["pixel_values"])
    assert torch.equal(ours["pixel_mask"], theirs["pixel_mask"])


def test_longest_edge_is_capped(processor):
    outputs = processor(images=np.zeros((100, 400, 3), dtype=np.uint8), return_tensors="pt")
    assert outputs["pixel_values"].shape[-1] == 1333


def test_every_input_form_gives_the_same_pixels(rgb):
    processor = DetrPanopticImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    reference = processor(images=PIL.Image.fromarray(rgb), return_tensors="pt")["pixel_values"]
    forms = {
        "numpy HWC": rgb,
        "numpy CHW": np.ascontiguousarray(rgb.transpose(2, 0, 1)),
        "torch CHW": torch.from_numpy(rgb).permute(2, 0, 1).contiguous(),
        "RGBA PIL": PIL.Image.fromarray(np.concatenate([rgb, np.full((60, 90, 1), 255, np.uint8)], -1)),
        "RGBA numpy": np.concatenate([rgb, np.full((60, 90, 1), 255, np.uint8)], -1),
        "list": [rgb],
    }
    for name, image in forms.items():
        pixels = processor(images=image, return_tensors="pt")["pixel_values"]
        torch.testing.assert_close(pixels, reference, msg=name)
    # Semi-transparent pixels are composited on white, as transformers does, whatever the input form.
    rgba = np.concatenate([rgb, np.full((60, 90, 1), 128, np.uint8)], -1)
    from_numpy = processor(images=rgba, return_tensors="pt")["pixel_values"]
    from_pil = processor(images=PIL.Image.fromarray(rgba), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(from_numpy, from_pil)
    assert from_numpy.mean() > reference.mean()


def test_grayscale_becomes_three_equal_channels():
    processor = DetrPanopticImageProcessor(size={"shortest_edge": 32, "longest_edge": 64}, do_normalize=False)
    gray = np.random.default_rng(1).integers(0, 256, (30, 40), dtype=np.uint8)
    for image in (gray, gray[..., None], PIL.Image.fromarray(gray), torch.from_numpy(gray)[None]):
        pixels = processor(images=image, return_tensors="pt")["pixel_values"]
        assert pixels.shape[1] == 3
        assert torch.equal(pixels[0, 0], pixels[0, 1]) and torch.equal(pixels[0, 1], pixels[0, 2])


def test_batch_is_padded_with_mask():
    processor = DetrPanopticImageProcessor(size={"shortest_edge": 64, "longest_edge": 128})
    batch = [np.zeros((40, 80, 3), np.uint8), np.zeros((80, 40, 3), np.uint8)]
    outputs = processor(images=batch, return_tensors="pt")
    assert outputs["pixel_values"].shape == (2, 3, 128, 128)
    assert outputs["pixel_mask"][0].sum() == 64 * 128 and outputs["pixel_mask"][1].sum() == 128 * 64
    four_d = processor(images=np.stack([batch[0], batch[0]]), return_tensors="pt")
    assert four_d["pixel_values"].shape[0] == 2


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((2, 3, 4, 5, 3)), "2 or 3 dimensions"),
        (np.zeros(7), "2 or 3 dimensions"),
        (np.zeros((0, 5, 3)), "Empty image"),
        (np.zeros((5, 5, 7)), "1, 3 or 4 channels"),
        (np.full((4, 4, 3), np.nan, dtype=np.float32), "NaN"),
        (torch.full((3, 4, 4), float("inf")), "NaN or infinite"),
        (np.full((4, 4, 3), "a"), "numbers or bool"),  # bool images are black and white (seem_hf.image_utils)
        ("not an image", "Unsupported image type"),
        ([], "empty list"),
        (PIL.Image.new("RGB", (0, 0)), "Empty image"),
    ],
)
def test_bad_input_raises_a_clear_error(image, message):
    with pytest.raises(ValueError, match=message):
        DetrPanopticImageProcessor()(images=image)


def test_vocabulary_round_trips(tmp_path):
    processor = DetrPanopticProcessor(
        DetrPanopticImageProcessor(
            id2label={0: "sky", 1: "car"}, thing_label_ids=[1], label_colors={0: [1, 2, 3]}, panoptic_rule="detr"
        )
    )
    processor.save_pretrained(tmp_path)
    loaded = DetrPanopticProcessor.from_pretrained(tmp_path)
    assert loaded.id2label == {0: "sky", 1: "car"}
    assert loaded.thing_label_ids == [1] and loaded.label_colors == {0: [1, 2, 3]}
    assert loaded.image_processor.stuff_label_ids == [0]
    assert loaded.image_processor.panoptic_rule == "detr"
    with pytest.raises(ValueError, match="panoptic_rule"):
        DetrPanopticImageProcessor(panoptic_rule="oneformer")
    with pytest.raises(ValueError, match="needs `images`"):
        loaded()


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    channels=st.sampled_from([None, 1, 2, 3, 4, 5]),
    channels_first=st.booleans(),
    dtype=st.sampled_from(["uint8", "float32", "float64", "int32"]),
    as_tensor=st.booleans(),
)
def test_any_array_works_or_raises_a_clear_error(height, width, channels, channels_first, dtype, as_tensor):
    """Odd sizes (1x1, thin), dtypes, channel counts and orders: a (1, 3, H', W') result or a ValueError."""
    processor = DetrPanopticImageProcessor(size={"shortest_edge": 32, "longest_edge": 64})
    shape = (height, width) if channels is None else ((channels, height, width) if channels_first else (height, width, channels))
    array = (np.random.default_rng(0).random(shape) * (255 if dtype in ("uint8", "int32") else 1)).astype(dtype)
    image = torch.from_numpy(array) if as_tensor else array
    try:
        outputs = processor(images=image, return_tensors="pt")
    except ValueError as error:
        assert str(error)  # a message, naming the problem
        return
    pixels = outputs["pixel_values"]
    assert pixels.shape[:2] == (1, 3) and torch.isfinite(pixels).all()
    assert min(pixels.shape[-2:]) >= 1 and max(pixels.shape[-2:]) <= 64

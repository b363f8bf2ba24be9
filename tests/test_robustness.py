"""Property-based robustness of every processor: any image size (1x1, very thin, large), layout (H, W), (H, W, C),
(C, H, W), channel count, dtype and container either gives well-formed model inputs or a clear ValueError; odd
outputs (NaN logits, nothing kept) never crash post-processing deep inside torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from transformers import AutoModel, AutoProcessor

from seem_hf.testing import FIXTURES

NAMES = ("seem", "lseg", "detr_panoptic")
PROCESSORS = {name: AutoProcessor.from_pretrained(FIXTURES / f"tiny-random-{name}") for name in NAMES}


@st.composite
def images(draw):
    height = draw(st.one_of(st.integers(1, 8), st.integers(1, 400)))
    width = draw(st.one_of(st.integers(1, 8), st.integers(1, 400)))
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    layout = draw(st.sampled_from(["last", "first"]))
    dtype = draw(st.sampled_from([np.uint8, np.float32]))
    shape = (height, width) if channels is None else (
        (height, width, channels) if layout == "last" else (channels, height, width))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    array = rng.integers(0, 255, shape).astype(np.uint8) if dtype == np.uint8 else rng.random(shape, np.float32)
    as_tensor = draw(st.booleans()) and layout == "first"  # tensors are channel-first, as torch images are
    return (torch.from_numpy(array) if as_tensor else array), (height, width)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(example=images())
@example(example=(np.full((287, 8), 128, np.uint8), (287, 8)))  # 8 px resized to 3.6 px rounds to 4 (found by CI)
def test_any_image_gives_well_formed_inputs(name, example):
    image, (height, width) = example
    outputs = PROCESSORS[name](images=image, return_tensors="pt")
    pixel_values = outputs["pixel_values"]
    assert pixel_values.ndim == 4 and pixel_values.shape[:2] == (1, 3) and torch.isfinite(pixel_values).all()
    if name != "detr_panoptic":
        assert pixel_values.shape[-2] % 32 == 0 and pixel_values.shape[-1] % 32 == 0
    if "pixel_mask" in outputs:  # the real pixels keep the image's aspect ratio (up to rounding)
        rows, columns = outputs["pixel_mask"][0].any(1).sum(), outputs["pixel_mask"][0].any(0).sum()
        assert rows >= 1 and columns >= 1
        if min(height, width) >= 8:  # each side rounded by at most a pixel: |rows * w - columns * h| <= w + h
            assert abs(float(rows) * width - float(columns) * height) <= width + height + 0.1 * float(rows) * width


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 4, 3), np.uint8), "Empty image"),
    (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
    (np.zeros((5, 5, 2), np.uint8), "1, 3 or 4 channels"),
    (np.zeros((2, 4, 4, 3, 1), np.uint8), "2 or 3 dimensions"),
    ("not an image", "No image file at 'not an image'"),  # a string is a path, as for transformers' processors
    ([], "empty list"),
])
def test_bad_images_are_named(name, bad, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        PROCESSORS[name](images=bad, return_tensors="pt")


def test_ambiguous_numpy_layouts_are_read_channels_last():
    """A (3, 4, 3) numpy array is an image of 3 rows and 4 columns of RGB pixels, not 3 channels of 4 x 3."""
    image = np.zeros((3, 4, 3), np.uint8)
    image[:, :, 0] = 255  # red everywhere
    pixel_values = PROCESSORS["seem"](images=image, return_tensors="pt")["pixel_values"]
    mask = PROCESSORS["seem"](images=image, return_tensors="pt")["pixel_mask"][0]
    rows, columns = int(mask.any(1).sum()), int(mask.any(0).sum())
    assert columns > rows  # wider than tall
    assert (pixel_values[0, 0][mask.bool()] > pixel_values[0, 1][mask.bool()]).all()  # red


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("corruption", ["nan", "inf", "none_kept"])
def test_post_processing_of_odd_outputs(name, corruption):
    model = AutoModel.from_pretrained(FIXTURES / f"tiny-random-{name}").eval()
    processor = PROCESSORS[name]
    inputs = processor(images=np.zeros((40, 60, 3), np.uint8), return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    field = "logits" if name != "seem" else "class_queries_logits"
    logits = outputs[field]
    if corruption == "nan":
        logits[..., 0] = float("nan")
    elif corruption == "inf":
        logits[..., 0] = float("inf")
    elif name != "lseg":  # every query says "no object"
        logits[..., :-1], logits[..., -1] = -50.0, 50.0
    sizes = [(40, 60)]
    results = [processor.post_process_semantic_segmentation]
    if name != "lseg":
        results += [processor.post_process_panoptic_segmentation, processor.post_process_instance_segmentation]
    for post_process in results:
        try:
            result = post_process(outputs, target_sizes=sizes)[0]
        except ValueError as error:
            assert corruption in ("nan", "inf") and "NaN or infinite" in str(error)
            continue
        segmentation = result if isinstance(result, torch.Tensor) else result["segmentation"]
        assert tuple(segmentation.shape[-2:]) == (40, 60)
        if corruption == "none_kept" and not isinstance(result, torch.Tensor):
            assert result["segments_info"] == [] and (segmentation == -1).all()


@st.composite
def visual_prompt(draw, height, width):
    """A random prompt dict for an image of `height` x `width`; points may fall outside it."""
    def point():
        return (draw(st.floats(-5, width + 5, allow_nan=False)), draw(st.floats(-5, height + 5, allow_nan=False)))

    prompt = {}
    for key in draw(st.sets(st.sampled_from(["points", "negative_points", "box", "scribbles", "polygons"]),
                            min_size=1, max_size=3)):
        if key in ("points", "negative_points"):
            prompt[key] = draw(st.lists(st.builds(point), min_size=0, max_size=3))
        elif key == "box":
            prompt[key] = (*point(), *point())
        else:
            prompt[key] = draw(st.lists(st.lists(st.builds(point), min_size=1, max_size=4), max_size=2))
    return prompt


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), height=st.integers(1, 60), width=st.integers(1, 60))
def test_any_visual_prompt_gives_masks_or_a_clear_error(data, height, width):
    processor = PROCESSORS["seem"]
    prompts = data.draw(st.lists(visual_prompt(height, width), min_size=1, max_size=3))
    image = np.zeros((height, width, 3), np.uint8)
    try:
        outputs = processor(images=image, visual_prompts=prompts)
    except ValueError as error:
        assert any(word in str(error) for word in ("outside the image", "x0 <= x1", "no positive pixel",
                                                   "non-empty list", "at least 3 vertices")), str(error)
        return
    positive = outputs["spatial_positive_masks"]
    assert positive.shape == (1, len(prompts), *outputs["pixel_values"].shape[-2:])
    assert positive.flatten(2).any(-1).all()  # every object has a positive pixel
    valid = outputs["pixel_mask"][0].bool()
    assert not (positive[0] & ~valid).any() and not (outputs["spatial_negative_masks"][0] & ~valid).any()


@settings(max_examples=30, deadline=None)
@given(sentences=st.lists(st.text(min_size=0, max_size=400), min_size=0, max_size=4))
def test_any_sentences_give_tokens_or_a_clear_error(sentences):
    processor = PROCESSORS["seem"]
    try:
        outputs = processor(sentences=[sentences])
    except ValueError as error:
        assert "non-empty list of non-empty sentences" in str(error)
        assert not sentences or any(not text.strip() for text in sentences)
        return
    ids, attention = outputs["grounding_input_ids"], outputs["grounding_attention_mask"]
    assert ids.shape == attention.shape == (1, len(sentences), 77)
    assert (attention.sum(-1) >= 2).all()  # at least start and end of text, long sentences truncated to 77


def test_memory_stays_flat_over_300_pipeline_calls():
    """Resident memory after 300 calls of the image-segmentation pipeline is what it was after the first 50 (a leak
    of 100 kB a call, one small image's worth, would show as 25 MB)."""
    import gc
    import resource

    from transformers import pipeline

    segmenter = pipeline("image-segmentation", model=str(FIXTURES / "tiny-random-detr_panoptic"))
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)

    def resident_mb():
        gc.collect()
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * resource.getpagesize() / 2**20

    for _ in range(50):
        segmenter(image, subtask="panoptic")
    before = resident_mb()
    for _ in range(250):
        segmenter(image, subtask="panoptic")
    assert resident_mb() - before < 25, f"resident memory grew from {before:.0f} MB to {resident_mb():.0f} MB"


@pytest.mark.parametrize("name", ["seem", "lseg"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labels=st.lists(st.one_of(st.text(min_size=0, max_size=300), st.sampled_from(["cat", "cat", " ", "a b"])),
                       min_size=0, max_size=6))
def test_any_label_set_gives_one_row_per_label_or_a_clear_error(name, labels):
    """Empty, blank, duplicated, unicode and over-long labels through each open-vocabulary processor's label path
    (LSeg: one prompt per label; SEEM: 81 templates per label plus "background")."""
    processor = PROCESSORS[name]
    try:
        ids = processor(text=labels)["input_ids"]
    except ValueError as error:
        message = str(error)
        assert "empty" in message or "distinct" in message or "non-empty strings" in message
        assert not labels or len(set(labels)) < len(labels) or any(not label.strip() for label in labels)
        return
    assert len(set(labels)) == len(labels) and all(label.strip() for label in labels)
    expected = (len(labels), 77) if name == "lseg" else (len(labels) + 1, 81, 77)
    assert tuple(ids.shape) == expected
    assert (ids[..., 0] == 49406).all() and (ids == 49407).any(-1).all()  # start, and an end even when truncated


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_model_loaded_in_half_precision_takes_the_processor_s_inputs(name, dtype):
    """`AutoModel.from_pretrained(folder, dtype=torch.bfloat16)` then `model(**processor(images=image))` failed in
    the first convolution with torch's 'Input type (float) and bias type (c10::BFloat16) should be the same': the
    processor gives float32 pixel values (as transformers' processors do). The models cast floating pixel values to
    their own dtype, as CLIP's and ViT's embeddings do; the outputs are those of inputs cast by hand."""
    model = AutoModel.from_pretrained(FIXTURES / f"tiny-random-{name}", dtype=dtype).eval()
    inputs = PROCESSORS[name](images=np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    assert inputs["pixel_values"].dtype == torch.float32
    with torch.no_grad():
        outputs = model(**inputs)
        cast = model(**{key: value.to(dtype) if value.is_floating_point() else value for key, value in inputs.items()})
    logits = "class_queries_logits" if name == "seem" else "logits"
    assert outputs[logits].dtype == dtype
    torch.testing.assert_close(outputs[logits], cast[logits], rtol=0, atol=0)
    sizes = [(50, 70)]
    assert PROCESSORS[name].post_process_semantic_segmentation(outputs, target_sizes=sizes)[0].shape == (50, 70)

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
        (3.5, "Unsupported image type float"),  # a string is a path (tests/test_image_inputs.py)
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
    shape = (height, width) if channels is None else (
        (channels, height, width) if channels_first else (height, width, channels))
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


# ----------------------------------------------------------------------------- batches, orientation, arguments (probe)
def _padded_outputs(seed=0):
    """Outputs of a batch of two images, 60x90 and 40x52 pixels inside a 60x90 padded input (stride-4 masks
    15x23), the second image's padding filled with strong mask logits that must not count; and the second image's
    outputs alone (its masks 10x13 = ceil(40 / 4) x ceil(52 / 4))."""
    from types import SimpleNamespace

    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 6, 5, generator=generator) * 4
    masks = torch.randn(2, 6, 15, 23, generator=generator) * 6
    masks[1, :, 10:] = masks[1, :, :, 13:] = 0
    masks[1, 0, 10:], masks[1, 1, :, 13:] = 30, 30  # padding that would win every pixel it reaches
    batch = SimpleNamespace(logits=logits, pred_masks=masks, image_sizes=[(60, 90), (40, 52)])
    alone = SimpleNamespace(logits=logits[1:], pred_masks=masks[1:, :, :10, :13].clone(), image_sizes=[(40, 52)])
    return batch, alone


@pytest.mark.parametrize("method, kwargs", [
    ("post_process_semantic_segmentation", {}),
    ("post_process_semantic_segmentation", {"return_segmentation_scores": True}),
    ("post_process_instance_segmentation", {"threshold": 0.1}),
    ("post_process_panoptic_segmentation", {"threshold": 0.1}),
    ("post_process_panoptic_segmentation", {"threshold": 0.1, "rule": "detr"}),
])
def test_a_batched_image_gets_the_segments_it_gets_alone(method, kwargs):
    """Post-processing crops each image's masks to its extent in the padded batch (`image_sizes`, which the model
    reports from `pixel_mask`) before resizing: the padding of a smaller image neither stretches its map nor wins
    pixels (the two maps agreed on 47% of the pixels before)."""
    processor = DetrPanopticImageProcessor(id2label={i: str(i) for i in range(4)}, thing_label_ids=[0, 1])
    batch, alone = _padded_outputs()
    for target_sizes in ([(60, 90), (40, 52)], [(120, 180), (80, 104)], None):
        batched = getattr(processor, method)(batch, target_sizes=target_sizes, **kwargs)[1]
        single = getattr(processor, method)(alone, target_sizes=None if target_sizes is None else target_sizes[1:],
                                            **kwargs)[0]
        if isinstance(single, torch.Tensor):
            assert torch.equal(batched, single)
        else:
            assert batched.keys() == single.keys()
            for key in single:
                if isinstance(single[key], torch.Tensor) and single[key].is_floating_point():
                    torch.testing.assert_close(batched[key], single[key])  # a view and a copy: float rounding
                elif isinstance(single[key], torch.Tensor):
                    assert torch.equal(batched[key], single[key])
                else:
                    assert batched[key] == single[key]


def test_the_model_reports_image_sizes_and_batched_results_match_single_ones():
    from transformers import AutoModel, AutoProcessor

    from seem_hf.demo import DEFAULTS, example_image

    model = AutoModel.from_pretrained(DEFAULTS["detr_panoptic"]).eval()
    processor = AutoProcessor.from_pretrained(DEFAULTS["detr_panoptic"])
    square, wide = example_image(), example_image().resize((512, 256))
    with torch.no_grad():
        batch_inputs = processor(images=[square, wide])
        batch = model(**batch_inputs)
        alone = model(**processor(images=wide))
    assert batch.image_sizes == [tuple(int(v) for v in (m.any(1).sum(), m.any(0).sum())) for m in
                                 batch_inputs["pixel_mask"].bool()]
    assert batch.image_sizes[1] == alone.image_sizes[0] != tuple(batch_inputs["pixel_values"].shape[-2:])
    semantic = [processor.post_process_semantic_segmentation(outputs, target_sizes=sizes)[-1]
                for outputs, sizes in ((batch, [(256, 256), (256, 512)]), (alone, [(256, 512)]))]
    # the convolutions of a batched image see the padding, so features differ a little near its border
    assert (semantic[0] == semantic[1]).float().mean() > 0.9
    for rule in ("maskformer", "detr"):
        panoptic = [processor.post_process_panoptic_segmentation(outputs, target_sizes=sizes, rule=rule)[-1]
                    for outputs, sizes in ((batch, [(256, 256), (256, 512)]), (alone, [(256, 512)]))]
        labels = [torch.tensor([-1] + [s["label_id"] for s in result["segments_info"]])[
            result["segmentation"].long().clamp(min=0)] for result in panoptic]
        assert (labels[0] == labels[1]).float().mean() > 0.9


def test_a_transposed_target_size_is_refused():
    """A photo with an EXIF orientation is read upright; PIL's `image.size[::-1]` is its stored size, the transpose:
    refused, naming the fix, instead of squashing the upright map into it."""
    from types import SimpleNamespace

    processor = DetrPanopticImageProcessor()
    outputs = SimpleNamespace(logits=torch.randn(1, 4, 3), pred_masks=torch.randn(1, 4, 50, 25),
                              image_sizes=[(200, 100)])
    for method in ("post_process_semantic_segmentation", "post_process_instance_segmentation",
                   "post_process_panoptic_segmentation"):
        with pytest.raises(ValueError, match=r"transposed.*EXIF.*seem_hf\.image_utils\.image_size"):
            getattr(processor, method)(outputs, target_sizes=[(64, 128)])
        getattr(processor, method)(outputs, target_sizes=[(128, 64)])  # the image's own aspect
        getattr(processor, method)(outputs, target_sizes=[(100, 100)])  # another size, on purpose
    with pytest.raises(ValueError, match="transposed"):
        processor.post_process_panoptic_segmentation(outputs, target_sizes=[(64, 128)], rule="detr")


def test_exif_photo_post_processed_at_image_size_matches_the_upright_image(tmp_path):
    from seem_hf.image_utils import image_size

    stored = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 80, 3), dtype=np.uint8))
    exif = stored.getexif()
    exif[0x0112] = 6  # rotated: upright it is 80 tall, 40 wide
    stored.save(tmp_path / "phone.jpg", exif=exif)
    photo = PIL.Image.open(tmp_path / "phone.jpg")
    assert image_size(photo) == (80, 40) and photo.size[::-1] == (40, 80)
    from seem_hf import DetrPanopticForSegmentation
    from seem_hf.testing import tiny_detr_panoptic_config

    model = DetrPanopticForSegmentation(tiny_detr_panoptic_config()).eval()
    processor = DetrPanopticProcessor(DetrPanopticImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}))
    with torch.no_grad():
        outputs = model(**processor(images=photo))
    assert processor.post_process_semantic_segmentation(outputs, target_sizes=[image_size(photo)])[0].shape == (80, 40)
    with pytest.raises(ValueError, match="EXIF"):
        processor.post_process_semantic_segmentation(outputs, target_sizes=[photo.size[::-1]])


def test_the_processor_returns_tensors_and_the_model_names_a_list():
    from seem_hf import DetrPanopticForSegmentation
    from seem_hf.testing import tiny_detr_panoptic_config

    processor = DetrPanopticProcessor(DetrPanopticImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}))
    inputs = processor(images=np.zeros((40, 60, 3), np.uint8))
    assert isinstance(inputs["pixel_values"], torch.Tensor) and isinstance(inputs["pixel_mask"], torch.Tensor)
    lists = processor(images=np.zeros((40, 60, 3), np.uint8), return_tensors=None)
    model = DetrPanopticForSegmentation(tiny_detr_panoptic_config()).eval()
    with pytest.raises(TypeError, match=r"pixel_values must be a torch tensor, got list.*return_tensors=\"pt\""):
        model(**lists)


@pytest.mark.parametrize("fuse, error", [([99], ValueError), ([-1], ValueError), ("sky", TypeError),
                                         ([0.5], TypeError), (["sky"], TypeError), (3, TypeError)])
def test_label_ids_to_fuse_must_be_label_ids(fuse, error):
    from types import SimpleNamespace

    processor = DetrPanopticImageProcessor()
    outputs = SimpleNamespace(logits=torch.randn(1, 4, 5), pred_masks=torch.randn(1, 4, 8, 8))
    for rule in ("maskformer", "detr"):
        with pytest.raises(error, match="label_ids_to_fuse"):
            processor.post_process_panoptic_segmentation(outputs, label_ids_to_fuse=fuse, rule=rule)
        processor.post_process_panoptic_segmentation(outputs, label_ids_to_fuse=[np.int64(3), 0], rule=rule)


def test_the_processor_post_processes_boxes_as_transformers_detr():
    """DETR-panoptic predicts a box per query as DETR does, and its image processor has transformers'
    `post_process_object_detection`, but the processor (what `AutoProcessor` gives) had no such method
    (AttributeError), while it forwards the segmentation ones. It forwards this one too: transformers' DETR
    rule on the model's boxes, scaled to `target_sizes` (list or tensor)."""
    from transformers import AutoModel, AutoProcessor, DetrImageProcessorPil

    from seem_hf.testing import FIXTURES

    folder = FIXTURES / "tiny-random-detr_panoptic"
    model, processor = AutoModel.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)
    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    with torch.no_grad():
        outputs = model(**processor(images=image))
    for sizes in ([(40, 50)], torch.tensor([[40, 50]])):
        result = processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=sizes)[0]
        expected = DetrImageProcessorPil().post_process_object_detection(outputs, threshold=0.0,
                                                                        target_sizes=[(40, 50)])[0]
        assert result.keys() == expected.keys() and len(result["scores"]) == model.config.num_queries
        for key in expected:
            torch.testing.assert_close(result[key], expected[key])

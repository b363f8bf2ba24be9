"""LSegProcessor and LSegImageProcessor: label sets (validated, tokenised like CLIP), the stored default set,
sizes that suit the model, input checks, save and reload."""

import numpy as np
import PIL.Image
import pytest
import torch

from seem_hf import LSegImageProcessor, LSegProcessor
from seem_hf.clip_tokenizer import clip_tokenizer


@pytest.fixture(scope="module")
def processor():
    return LSegProcessor(LSegImageProcessor(), clip_tokenizer())


def test_images_and_labels(processor):
    image = PIL.Image.fromarray(np.zeros((300, 500, 3), dtype=np.uint8))
    inputs = processor(images=image, text=["dog", "grass", "other"], return_tensors="pt")
    height, width = inputs["pixel_values"].shape[-2:]
    assert height % 32 == 0 and width % 32 == 0
    assert abs(width / height - 500 / 300) < 0.15  # aspect ratio kept up to the rounding to 32
    assert inputs["input_ids"].shape == inputs["attention_mask"].shape == (3, 77)
    expected = clip_tokenizer()(["dog", "grass", "other"], padding="max_length", max_length=77)["input_ids"]
    assert inputs["input_ids"].tolist() == expected
    assert torch.allclose(inputs["pixel_values"], torch.full_like(inputs["pixel_values"], -1.0))  # (0 - 0.5) / 0.5


@pytest.mark.parametrize(
    "labels, message",
    [([], "empty"), (["cat", "cat"], "distinct"), (["cat", ""], "non-empty"), ("cat", "list of strings"),
     (["cat", 3], "non-empty strings")],
)
def test_bad_label_sets(processor, labels, message):
    with pytest.raises(ValueError, match=message):
        processor(text=labels)


def test_default_labels_travel_with_the_image_processor(processor, tmp_path):
    processor.set_default_labels(["sky", "sea"])
    processor.save_pretrained(tmp_path)
    reloaded = LSegProcessor.from_pretrained(tmp_path)
    assert reloaded.id2label == {0: "sky", 1: "sea"}
    inputs = reloaded.image_processor(images=np.zeros((64, 64, 3), dtype=np.uint8), return_tensors="pt")
    assert inputs["input_ids"].tolist() == processor(text=["sky", "sea"])["input_ids"].tolist()
    assert reloaded(text=["a"])["input_ids"].shape == (1, 77)


@pytest.mark.parametrize(
    "image, message",
    [(np.zeros((2, 3, 32, 32)), "2 or 3 dimensions"), (np.zeros((0, 5, 3)), "Empty"),
     (np.full((8, 8, 3), np.nan), "NaN"), (3.5, "Unsupported image type float")],
)
def test_bad_images(processor, image, message):
    with pytest.raises(ValueError, match=message):
        processor(images=[image] if isinstance(image, np.ndarray) and image.ndim == 4 else image)


def test_grayscale_and_rgba_become_rgb(processor):
    gray = processor(images=np.full((40, 40), 255, dtype=np.uint8), return_tensors="pt")["pixel_values"]
    rgba = processor(images=np.full((40, 40, 4), 255, dtype=np.uint8), return_tensors="pt")["pixel_values"]
    assert gray.shape[1] == rgba.shape[1] == 3 and torch.equal(gray, rgba)
    with pytest.raises(ValueError, match="needs images"):
        processor()


def test_images_of_different_sizes_are_refused_with_the_sizes_and_what_works(processor):
    images = [np.zeros((64, 64, 3), np.uint8), np.zeros((64, 128, 3), np.uint8)]
    for kwargs in ({}, {"do_pad": True}):
        with pytest.raises(ValueError, match=r"different sizes \[\(\d+, \d+\), \(\d+, \d+\)\].*one at a time.*"
                                             r"batch_size.*return_tensors=None"):
            processor(images=images, text=["a", "b"], **kwargs)
    with pytest.raises(ValueError, match="does not pad a batch"):
        processor(images=images, text=["a", "b"], padding=True)
    arrays = processor(images=images, text=["a", "b"], return_tensors=None)["pixel_values"]
    assert len(arrays) == 2 and arrays[0].shape != arrays[1].shape
    same = processor(images=images[:1] * 2, return_tensors="np")["pixel_values"]
    assert isinstance(same, np.ndarray) and same.shape[0] == 2


@pytest.mark.parametrize("labels", [["Circle", "circle"], ["circle", "circle "], ["sky", "SKY  "]])
def test_labels_that_read_alike_are_refused(processor, labels):
    with pytest.raises(ValueError, match=rf"{labels[0]!r} and {labels[1]!r} are the same label"):
        processor(text=labels)


def test_a_transposed_target_size_is_refused(processor):
    from types import SimpleNamespace

    outputs = SimpleNamespace(logits=torch.randn(1, 3, 480, 224))  # a portrait image, sides rounded to 32
    with pytest.raises(ValueError, match="transposed.*image_size"):
        processor.post_process_semantic_segmentation(outputs, target_sizes=[(300, 640)])
    assert processor.post_process_semantic_segmentation(outputs, target_sizes=[(640, 300)])[0].shape == (640, 300)


@pytest.mark.parametrize("size", [{"shortest_edge": 128}, {"shortest_edge": 128, "longest_edge": 256}])
def test_sizes_lseg_cannot_resize_to_are_named(processor, tmp_path, size):
    """LSeg resizes towards a height and a width (transformers' DPT rule); a size of other keys, given to the call
    or saved with the image processor (as DETR's and SEEM's shortest/longest edges are), failed inside DPT's resize
    with "'SizeDict' object has no attribute 'keys'". It is refused naming the size and the form that works;
    height and width, or one int, still resize."""
    image = np.zeros((50, 70, 3), np.uint8)
    with pytest.raises(ValueError, match=r"LSeg resizes towards a height and a width.*size=\{'height': h"):
        processor(images=image, size=size)
    LSegImageProcessor(size=size).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"got size=\{.*'shortest_edge': 128"):
        LSegImageProcessor.from_pretrained(tmp_path)(image)
    assert processor(images=image, size={"height": 64, "width": 96})["pixel_values"].shape[-2:] == (64, 96)
    assert all(side % 32 == 0 for side in processor(images=image, size=64)["pixel_values"].shape[-2:])

"""SEEM's referring and interactive tasks the way a user calls them, on the tiny checkpoint: sentences and visual
prompts through SeemProcessor (image coordinates mapped through resize and padding), the interactive loop with
cached image features, post-processing, and `pipeline("referring-segmentation")`."""

import numpy as np
import PIL.Image
import pytest
import torch
from torch.nn import functional as F
from transformers import AutoModel, AutoProcessor, pipeline

from seem_hf.models.seem.visual_sampler_seem import next_click, sample_visual_prompt
from seem_hf.testing import FIXTURES

FOLDER = FIXTURES / "tiny-random-seem"


@pytest.fixture(scope="module")
def loaded():
    return AutoModel.from_pretrained(FOLDER).eval(), AutoProcessor.from_pretrained(FOLDER)


def _image(height=50, width=70, seed=0):
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


def _square(mask, x, y):
    """The 3 x 3 click around resized-image pixel (x, y) on an empty mask like `mask`."""
    expected = torch.zeros_like(mask)
    expected[y - 1 : y + 2, x - 1 : x + 2] = True
    return expected


def test_visual_prompts_are_mapped_through_resize_and_padding(loaded):
    processor = loaded[1]
    # 50 x 70 is resized to 91 x 128 and padded to 96 x 128: y scales by 91 / 50, x by 128 / 70.
    mask = np.zeros((50, 70), dtype=bool)
    mask[10:20, 30:40] = True
    inputs = processor(images=_image(), visual_prompts=[
        {"points": [(35, 25)], "negative_points": [(5, 45)]},
        {"box": (10, 10, 30, 20)},
        {"mask": mask},
        {"polygons": [[(0, 0), (69, 0), (69, 49), (0, 49)]]},
    ])
    positive, negative = inputs["spatial_positive_masks"][0], inputs["spatial_negative_masks"][0]
    assert positive.shape == (4, 96, 128) and positive.dtype == torch.bool

    def mapped(x, y):
        return round((x + 0.5) * 128 / 70 - 0.5), round((y + 0.5) * 91 / 50 - 0.5)

    assert torch.equal(positive[0], _square(positive[0], *mapped(35, 25)))
    assert torch.equal(negative[0], _square(negative[0], *mapped(5, 45)))
    assert torch.equal(positive[1], _square(positive[1], *mapped(20, 15)))  # a box is a click at its centre
    assert not negative[1:].any()
    resized = F.interpolate(torch.from_numpy(mask)[None, None].float(), size=(91, 128), mode="nearest-exact")[0, 0].bool()
    assert torch.equal(positive[2, :91], resized) and not positive[2, 91:].any()
    # a polygon through the corner pixels' centres fills the image inside them and never the padding
    assert positive[3, 2:89, 2:126].all() and not positive[3, 91:].any() and not positive[3, :, 127].any()


@pytest.mark.parametrize("prompt, message", [
    ({"points": [(70, 10)]}, r"outside the image \(width 70, height 50"),
    ({"points": [(-1, 10)]}, "outside the image"),
    ({"box": (30, 10, 20, 20)}, "x0 <= x1"),
    ({"mask": np.ones((10, 10), dtype=bool)}, "image's size"),
    ({"negative_points": [(3, 3)]}, "no positive pixel"),
    ({"clicks": [(3, 3)]}, "keys among"),
    ({"polygons": [[(1, 1), (2, 2)]]}, "at least 3 vertices"),
])
def test_bad_visual_prompts(loaded, prompt, message):
    with pytest.raises(ValueError, match=message):
        loaded[1](images=_image(), visual_prompts=[prompt])


def test_sentences_are_lower_cased_and_padded_per_image(loaded):
    processor = loaded[1]
    inputs = processor(images=[_image(), _image(seed=1)], sentences=[["The Red Circle"], ["a square", "a disk"]])
    assert inputs["grounding_input_ids"].shape == (2, 2, 77)
    expected = processor.tokenizer(["the red circle"], padding="max_length", max_length=77)["input_ids"][0]
    assert inputs["grounding_input_ids"][0, 0].tolist() == expected
    assert inputs["grounding_attention_mask"][0, 1].sum() == 0 and inputs["grounding_attention_mask"][1, 1].sum() > 0
    assert "input_ids" not in inputs  # no label set unless asked for
    with pytest.raises(ValueError, match="non-empty list"):
        processor(images=_image(), sentences=[[]])


def test_referring_segmentation(loaded):
    model, processor = loaded
    inputs = processor(images=_image(), sentences=["the red circle", "the blue square"])
    with torch.no_grad():
        outputs = model(**inputs)
    results = processor.post_process_referring_segmentation(outputs, target_sizes=[(50, 70)], top_k=2)[0]
    assert [r["sentence_index"] for r in results] == [0, 1]
    for sentence, result in enumerate(results):
        assert result["masks"].shape == (2, 50, 70) and result["masks"].dtype == torch.bool
        probabilities = outputs.grounding_logits[0, :, sentence].softmax(0)
        assert int(result["query_indices"][0]) == int(probabilities.argmax())
        assert result["scores"][0] >= result["scores"][1]
        height, width = outputs.image_sizes[0]
        logits = outputs.grounding_masks_logits[0, result["query_indices"][:1]]
        expected = F.interpolate(F.interpolate(logits[None], size=(96, 128), mode="bilinear")[..., :height, :width],
                                 size=(50, 70), mode="bicubic", antialias=True)[0].sigmoid() > 0.5
        assert torch.equal(result["masks"][:1], expected)


def test_interactive_loop_with_cached_features(loaded):
    model, processor = loaded
    image = _image()
    inputs = processor(images=image, text=["circle", "square"], visual_prompts=[{"points": [(35, 25)]}])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        features = model.get_image_features(inputs["pixel_values"])
        first = model(image_features=features, input_ids=inputs["input_ids"], pixel_mask=inputs["pixel_mask"],
                      spatial_positive_masks=inputs["spatial_positive_masks"], generator=generator)
        more = processor.prepare_visual_prompts([[{"points": [(35, 25)], "negative_points": [(60, 40)]}]],
                                                [(50, 70)], inputs["pixel_mask"])
        second = model(image_features=features, pixel_mask=inputs["pixel_mask"], previous_masks=
                       first.interactive_masks_logits, generator=generator, **more)
    first_result = processor.post_process_interactive_segmentation(first, target_sizes=[(50, 70)])[0]
    assert first_result["masks"].shape == (1, 50, 70)
    assert first_result["labels"].tolist()[0] in (0, 1) and 0 <= float(first_result["scores"][0]) <= 1
    second_result = processor.post_process_interactive_segmentation(second, target_sizes=[(50, 70)])[0]
    assert "labels" not in second_result and second_result["masks"].shape == (1, 50, 70)
    height, width = first.image_sizes[0]
    expected = F.interpolate(F.interpolate(second.interactive_masks_logits, size=(96, 128), mode="bilinear")
                             [..., :height, :width], size=(50, 70), mode="bilinear")[0].sigmoid() > 0.5
    assert torch.equal(second_result["masks"], expected)
    with pytest.raises(ValueError, match="no referring results"):
        processor.post_process_referring_segmentation(first)


def test_referring_pipeline():
    segmenter = pipeline("referring-segmentation", model=str(FOLDER))
    results = segmenter(_image(), sentences=["the red circle", "squares"], top_k=2)
    assert len(results) == 2 and [len(r) for r in results] == [2, 2]
    assert results[1][0]["sentence"] == "squares" and results[0][0]["mask"].size == (70, 50)
    assert results[0][0]["score"] >= results[0][1]["score"]
    single = segmenter(np.asarray(_image()), sentences="the red circle")
    assert len(single) == 1 and len(single[0]) == 1
    with pytest.raises(ValueError, match="needs sentences"):
        segmenter(_image())


def test_training_sampler_and_click_simulator():
    import random

    mask = np.zeros((40, 40), dtype=bool)
    mask[5:30, 10:35] = True
    rng = random.Random(0)
    for _ in range(20):
        prompt = sample_visual_prompt(mask, rng)
        assert prompt.any() and not (prompt & ~mask).any()  # inside the object
    assert not sample_visual_prompt(np.zeros((5, 5), dtype=bool), rng).any()
    target = torch.from_numpy(mask)
    click, positive = next_click(torch.zeros_like(target), target, torch.zeros_like(target))
    assert positive and click.sum() == 9
    rows, columns = torch.nonzero(click).float().mean(0).tolist()
    assert abs(rows - 17) <= 1 and abs(columns - 22) <= 1  # the innermost point of the object
    prediction = target.clone()
    prediction[30:40] = True  # a false-positive band below the object
    click, positive = next_click(prediction, target, torch.zeros_like(target))
    assert not positive and click[30:].any() and not (click & target).any()
    assert next_click(target, target, torch.zeros_like(target)) is None

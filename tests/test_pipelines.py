"""pipeline("image-segmentation") on a seem_hf checkpoint folder: every subtask, every input form, label names
from the config, and no "not supported" error from transformers' model-type check."""

import logging

import numpy as np
import PIL.Image
import pytest
import torch
import transformers
from transformers import pipeline

import seem_hf  # noqa: F401  (registers the models and the pipeline)
from seem_hf import ArrayImageSegmentationPipeline


@pytest.fixture(scope="module")
def segmenter():
    from seem_hf.testing import FIXTURES

    return pipeline("image-segmentation", model=str(FIXTURES / "tiny-random-detr_panoptic"))


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)


def test_builds_our_pipeline_without_error_log(caplog):
    from seem_hf.testing import FIXTURES

    transformers.logging.enable_propagation()
    try:
        with caplog.at_level(logging.ERROR):
            built = pipeline("image-segmentation", model=str(FIXTURES / "tiny-random-detr_panoptic"))
    finally:
        transformers.logging.disable_propagation()
    assert isinstance(built, ArrayImageSegmentationPipeline)
    assert not [record for record in caplog.records if "not supported" in record.getMessage()]


@pytest.mark.parametrize("subtask", ["panoptic", "instance", "semantic", None])
def test_subtasks_return_labelled_masks(segmenter, image, subtask):
    results = segmenter(PIL.Image.fromarray(image), subtask=subtask)
    assert results, subtask
    labels = set(segmenter.model.config.id2label.values())
    for segment in results:
        assert segment["label"] in labels
        assert segment["mask"].size == (50, 40) and segment["mask"].mode == "L"
        assert set(np.unique(np.array(segment["mask"]))) <= {0, 255}


def test_every_input_form_gives_the_same_result(segmenter, image, tmp_path):
    path = tmp_path / "image.png"
    PIL.Image.fromarray(image).save(path)
    forms = [
        PIL.Image.fromarray(image),
        str(path),
        image,
        np.ascontiguousarray(image.transpose(2, 0, 1)),
        torch.from_numpy(image).permute(2, 0, 1),
    ]
    reference = None
    for form in forms:
        results = segmenter(form, subtask="panoptic")
        summary = [(r["label"], r["score"], np.array(r["mask"]).tobytes()) for r in results]
        reference = reference or summary
        assert summary == reference


def test_grayscale_array_and_bad_input(segmenter, image):
    gray = image[..., 0]
    results = segmenter(gray, subtask="semantic")
    assert results[0]["mask"].size == (50, 40)
    with pytest.raises(ValueError, match="dimensions"):
        segmenter(np.zeros((2, 2, 2, 2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        segmenter(np.full((8, 8, 3), np.nan, dtype=np.float32))


def test_batch_of_images(segmenter, image):
    results = segmenter([image, image[:20]], subtask="semantic")
    assert len(results) == 2 and results[1][0]["mask"].size == (50, 20)


def test_pipeline_skips_unconfident_masks_with_the_same_result(segmenter, image):
    """The pipeline passes its threshold to DETR-panoptic's forward; the segments equal a full forward's."""
    processor = segmenter.image_processor
    inputs = processor(images=[image], return_tensors="pt")
    with torch.no_grad():
        outputs = segmenter.model(**inputs)
    for subtask, method in (("panoptic", "post_process_panoptic_segmentation"),
                            ("instance", "post_process_instance_segmentation")):
        expected = getattr(processor, method)(
            outputs, threshold=0.9, mask_threshold=0.5, overlap_mask_area_threshold=0.5, target_sizes=[(40, 50)]
        )[0]
        results = segmenter(image, subtask=subtask)
        assert [(r["label"], r["score"]) for r in results] == [
            (segmenter.model.config.id2label[s["label_id"]], s["score"]) for s in expected["segments_info"]
        ]
        for result, info in zip(results, expected["segments_info"]):
            assert np.array_equal(np.array(result["mask"]) > 0, (expected["segmentation"] == info["id"]).numpy())
    assert "mask_score_threshold" not in segmenter.preprocess(image, subtask="semantic")
    assert segmenter.preprocess(image, threshold=0.7)["mask_score_threshold"] == 0.7


@pytest.mark.parametrize("name", ["seem", "lseg"])
def test_label_set_is_encoded_once_per_label_set_and_weights(name, image):
    """SEEM's label set is ~81 prompts per label: the pipeline encodes it once, and again only when the labels or
    the weights change; the segments equal those of a pipeline that encodes every time."""
    from seem_hf.testing import FIXTURES

    segmenter = pipeline("image-segmentation", model=str(FIXTURES / f"tiny-random-{name}"))
    calls = []
    segmenter.model.get_text_features = _counting(segmenter.model.get_text_features, calls)
    kwargs = {"subtask": "semantic"}
    first = segmenter(image, **kwargs)
    second = segmenter(image, **kwargs)
    assert len(calls) == 1
    _assert_same_segments(first, second)
    other_labels = ["circle", "square", "background"]
    segmenter(image, labels=other_labels)
    segmenter(image, labels=other_labels)
    assert len(calls) == 2
    with torch.no_grad():  # an optimizer step or load_state_dict changes parameters in place
        next(segmenter.model.parameters()).mul_(1.0)
    segmenter(image, labels=other_labels)
    assert len(calls) == 3

    fresh = pipeline("image-segmentation", model=str(FIXTURES / f"tiny-random-{name}"))
    _assert_same_segments(fresh(image, **kwargs), first)


def _counting(function, calls):
    def counted(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)

    return counted


def _assert_same_segments(first, second):
    assert [segment["label"] for segment in first] == [segment["label"] for segment in second]
    for a, b in zip(first, second):
        assert np.array_equal(np.asarray(a["mask"]), np.asarray(b["mask"]))

"""Every `post_process_*` of the three processors, called as a user calls them on real (tiny) model outputs:
threshold arguments out of range or of the wrong type are refused with an error naming the argument; target sizes
are checked; and the empty cases (no query kept, no label left, a mask with no pixel) give empty results instead
of crashing or returning empty masks as matches."""

import copy
import math
import warnings

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import AutoModel, AutoProcessor

from seem_hf.testing import FIXTURES


def _image(height=50, width=70, seed=0):
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


def _run(folder: str, **inputs):
    model = AutoModel.from_pretrained(FIXTURES / folder).eval()
    processor = AutoProcessor.from_pretrained(FIXTURES / folder)
    with torch.no_grad():
        outputs = model(**processor(images=_image(), return_tensors="pt", **inputs))
    return processor, outputs


@pytest.fixture(scope="module")
def seem():
    return _run("tiny-random-seem", sentences=["the left part", "the right part"],
                visual_prompts=[{"points": [(20, 30)]}])


@pytest.fixture(scope="module")
def seem_generic():
    return _run("tiny-random-seem")


@pytest.fixture(scope="module")
def detr():
    return _run("tiny-random-detr_panoptic")


@pytest.fixture(scope="module")
def lseg():
    return _run("tiny-random-lseg")


# (fixture, method, keyword arguments that select the mode) -> the threshold arguments that mode reads
THRESHOLDS = [
    ("seem", "post_process_referring_segmentation", {}, ["mask_threshold"]),
    ("seem", "post_process_interactive_segmentation", {}, ["mask_threshold"]),
    ("seem_generic", "post_process_panoptic_segmentation", {},
     ["threshold", "mask_threshold", "overlap_mask_area_threshold"]),
    ("seem_generic", "post_process_instance_segmentation", {},
     ["threshold", "mask_threshold", "overlap_mask_area_threshold"]),
    ("seem_generic", "post_process_instance_segmentation", {"return_binary_maps": True},
     ["threshold", "mask_threshold", "overlap_mask_area_threshold"]),
    ("detr", "post_process_panoptic_segmentation", {}, ["threshold", "mask_threshold", "overlap_mask_area_threshold"]),
    ("detr", "post_process_panoptic_segmentation", {"rule": "detr"}, ["threshold"]),
    ("detr", "post_process_instance_segmentation", {}, ["threshold", "mask_threshold", "overlap_mask_area_threshold"]),
]
BAD_VALUES = [(1.5, ValueError), (-0.1, ValueError), (math.nan, ValueError), ("0.5", TypeError), (True, TypeError)]


@pytest.mark.parametrize("fixture, method, mode, names", THRESHOLDS)
@pytest.mark.parametrize("value, error", BAD_VALUES)
def test_bad_thresholds_are_refused_by_name(request, fixture, method, mode, names, value, error):
    processor, outputs = request.getfixturevalue(fixture)
    post_process = getattr(processor, method)
    post_process(outputs, **mode)  # the defaults work
    for name in names:
        with pytest.raises(error, match=name):
            post_process(outputs, **mode, **{name: value})
    post_process(outputs, **mode, **{names[0]: 1.0})  # the bounds are allowed


@pytest.mark.parametrize("method, mode", [
    ("post_process_referring_segmentation", {}),
    ("post_process_instance_segmentation", {"return_binary_maps": True}),
])
@pytest.mark.parametrize("top_k, error", [(0, ValueError), (-3, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_bad_top_k_is_refused(request, method, mode, top_k, error):
    processor, outputs = request.getfixturevalue("seem" if "referring" in method else "seem_generic")
    with pytest.raises(error, match="top_k"):
        getattr(processor, method)(outputs, top_k=top_k, **mode)


SIZE_CALLS = [
    ("seem", "post_process_referring_segmentation", {}),
    ("seem", "post_process_interactive_segmentation", {}),
    ("seem_generic", "post_process_semantic_segmentation", {}),
    ("seem_generic", "post_process_panoptic_segmentation", {}),
    ("seem_generic", "post_process_instance_segmentation", {}),
    ("seem_generic", "post_process_instance_segmentation", {"return_binary_maps": True}),
    ("detr", "post_process_semantic_segmentation", {}),
    ("detr", "post_process_panoptic_segmentation", {}),
    ("detr", "post_process_panoptic_segmentation", {"rule": "detr"}),
    ("detr", "post_process_instance_segmentation", {}),
    ("lseg", "post_process_semantic_segmentation", {}),
]


@pytest.mark.parametrize("fixture, method, mode", SIZE_CALLS)
@pytest.mark.parametrize("sizes, message", [
    ([(0, 10)], "positive"), ([(5, 7), (5, 7)], "per image"), ((50, 70), r"one \(height, width\) per image"),
])
def test_bad_target_sizes_are_refused(request, fixture, method, mode, sizes, message):
    processor, outputs = request.getfixturevalue(fixture)
    with pytest.raises(ValueError, match=message):
        getattr(processor, method)(outputs, target_sizes=sizes, **mode)


@pytest.mark.parametrize("fixture, method, mode", SIZE_CALLS)
def test_tensor_target_sizes_work(request, fixture, method, mode):
    processor, outputs = request.getfixturevalue(fixture)
    result = getattr(processor, method)(outputs, target_sizes=torch.tensor([[31, 17]]), **mode)[0]
    if isinstance(result, list):  # referring: one entry per sentence
        result = result[0]
    maps = result if isinstance(result, torch.Tensor) else result.get("segmentation", result.get("masks"))
    assert tuple(maps.shape[-2:]) == (31, 17)


def test_seem_binary_instances_with_no_thing_pair_are_empty(seem_generic):
    """Issue 15, item 20: no (query, label) pair passes the thing filter; SEEM returns no instance."""
    processor, outputs = seem_generic
    processor.image_processor.thing_label_ids, saved = [], processor.image_processor.thing_label_ids
    try:
        result = processor.post_process_instance_segmentation(outputs, return_binary_maps=True, target_sizes=[(50, 70)])
    finally:
        processor.image_processor.thing_label_ids = saved
    assert result[0]["segments_info"] == []
    assert result[0]["segmentation"].shape == (0, 50, 70) and result[0]["segmentation"].dtype == torch.bool


@pytest.mark.parametrize("fixture, method, mode", [
    ("seem_generic", "post_process_panoptic_segmentation", {}),
    ("seem_generic", "post_process_instance_segmentation", {}),
    ("seem_generic", "post_process_instance_segmentation", {"return_binary_maps": True}),
    ("detr", "post_process_panoptic_segmentation", {}),
    ("detr", "post_process_panoptic_segmentation", {"rule": "detr"}),
    ("detr", "post_process_instance_segmentation", {}),
])
def test_no_query_kept_gives_an_empty_result(request, fixture, method, mode):
    processor, outputs = request.getfixturevalue(fixture)
    result = getattr(processor, method)(outputs, threshold=1.0, target_sizes=[(50, 70)], **mode)[0]
    assert result["segments_info"] == []
    if mode.get("return_binary_maps"):
        assert result["segmentation"].shape == (0, 50, 70)
    else:
        assert result["segmentation"].shape == (50, 70) and (result["segmentation"] == -1).all()


@pytest.mark.parametrize("mask_threshold", [0.5, 0.9, 0.999, 1.0])
def test_referring_matches_are_never_empty_masks(seem, mask_threshold):
    """Issue 15, item 14: a query whose mask has no pixel above the threshold is not a match; what is returned
    is the ranked list with those queries left out."""
    processor, outputs = seem
    top_k = outputs.grounding_logits.shape[1]  # every query
    answers = processor.post_process_referring_segmentation(outputs, top_k=top_k, mask_threshold=mask_threshold)[0]
    assert len(answers) == 2
    everything = processor.post_process_referring_segmentation(outputs, top_k=top_k, mask_threshold=0.0)[0]
    for answer, full in zip(answers, everything):
        assert answer["masks"].flatten(1).any(1).all()
        assert len(answer["masks"]) == len(answer["scores"]) == len(answer["query_indices"]) <= top_k
        # the matches are the non-empty ones of the full ranking, in its order
        ranked = full["query_indices"].tolist()
        assert answer["query_indices"].tolist() == [q for q in ranked if q in answer["query_indices"].tolist()]
    if mask_threshold == 1.0:  # a sigmoid never exceeds 1: no match at all
        assert all(len(answer["masks"]) == 0 for answer in answers)
        assert answers[0]["masks"].shape[1:] == everything[0]["masks"].shape[1:]


def test_seem_instance_arguments_of_transformers_are_honoured_or_refused(seem_generic):
    """SEEM's `post_process_instance_segmentation` took `**kwargs` and dropped them: `return_coco_annotation=True`
    (transformers' Mask2Former and DETR argument) gave the id map instead of its run-length encoding, and a
    misspelt `treshold=0.1` ran at the default threshold without a word. The encoding is now transformers', the
    two output forms together are refused as in Mask2Former, and an unknown argument is a TypeError."""
    from transformers.models.detr.image_processing_pil_detr import convert_segmentation_to_rle

    processor, outputs = seem_generic
    outputs = copy.copy(outputs)  # the random model's mask logits are all near 0: sharpen them into segments
    outputs.masks_queries_logits = outputs.masks_queries_logits * 2000
    plain = processor.post_process_instance_segmentation(outputs, threshold=0.0, target_sizes=[(50, 70)])[0]
    assert plain["segments_info"]
    coco = processor.post_process_instance_segmentation(outputs, threshold=0.0, target_sizes=[(50, 70)],
                                                        return_coco_annotation=True)[0]
    assert coco["segments_info"] == plain["segments_info"]
    assert coco["segmentation"] == convert_segmentation_to_rle(plain["segmentation"])
    # each run-length encoding covers the image: (start, length) pairs inside its 50 x 70 pixels
    assert all(sum(rle[1::2]) <= 50 * 70 for rle in coco["segmentation"])
    assert sum(sum(rle[1::2]) for rle in coco["segmentation"]) == 50 * 70
    with pytest.raises(ValueError, match="return_coco_annotation and return_binary_maps cannot both be True"):
        processor.post_process_instance_segmentation(outputs, return_coco_annotation=True, return_binary_maps=True)
    with pytest.raises(TypeError, match="treshold"):
        processor.post_process_instance_segmentation(outputs, treshold=0.1)


@pytest.mark.parametrize("fixture", ["seem_generic", "detr", "lseg"])
def test_semantic_segmentation_scores_for_every_model(request, fixture):
    """`return_segmentation_scores=True` (transformers' Mask2Former, DETR and DPT argument) was a TypeError for
    SEEM only; every processor now returns the label ids with the per-label scores they are the argmax of."""
    processor, outputs = request.getfixturevalue(fixture)
    ids = processor.post_process_semantic_segmentation(outputs, target_sizes=[(31, 17)])[0]
    result = processor.post_process_semantic_segmentation(outputs, target_sizes=[(31, 17)],
                                                          return_segmentation_scores=True)[0]
    scores = result["segmentation_scores"]
    assert scores.shape[-2:] == (31, 17) and scores.ndim == 3
    assert torch.equal(result["segmentation"], scores.argmax(0))
    assert (result["segmentation"] == ids).float().mean() > 0.99  # the fast argmax may break near-ties otherwise


def _same(first, second):
    """Post-processing results (tensors, dicts and lists of them) are equal."""
    if isinstance(first, torch.Tensor):
        return torch.equal(first, second)
    if isinstance(first, dict):
        return first.keys() == second.keys() and all(_same(first[key], second[key]) for key in first)
    if isinstance(first, (list, tuple)):
        return len(first) == len(second) and all(_same(a, b) for a, b in zip(first, second))
    return first == second


@pytest.mark.parametrize("fixture, method, mode", SIZE_CALLS)
def test_outputs_as_a_dict_are_read_and_as_a_tuple_refused_by_name(request, fixture, method, mode):
    """Outputs as a dict (`dict(outputs)`, outputs gathered or saved as one) failed with "'dict' object has no
    attribute 'logits'", and SEEM's said the model had been called without a label set; a tuple (the model called
    with `return_dict=False`) failed the same ways. A dict of the fields now gives the results of the outputs
    themselves, and a tuple is refused naming return_dict=False."""
    processor, outputs = request.getfixturevalue(fixture)
    expected = getattr(processor, method)(outputs, target_sizes=[(31, 17)], **mode)
    assert _same(getattr(processor, method)(dict(outputs), target_sizes=[(31, 17)], **mode), expected)
    with pytest.raises(TypeError, match=r"got a tuple \(the model was called with return_dict=False"):
        getattr(processor, method)(outputs.to_tuple(), target_sizes=[(31, 17)], **mode)


def test_independent_sentences_outputs_as_a_dict_are_read():
    """The processor's per-image gathering of `independent_sentences=True` outputs read them as a dict too."""
    model = AutoModel.from_pretrained(FIXTURES / "tiny-random-seem").eval()
    processor = AutoProcessor.from_pretrained(FIXTURES / "tiny-random-seem")
    inputs = processor(images=[_image(), _image(seed=1)], sentences=[["the left part", "the sky"], ["the sky"]],
                       independent_sentences=True)
    with torch.no_grad():
        outputs = model(**inputs)
    expected = processor.post_process_referring_segmentation(outputs, sentences_per_image=[2, 1])
    assert _same(processor.post_process_referring_segmentation(dict(outputs), sentences_per_image=[2, 1]), expected)


def test_thresholds_detr_s_own_rule_does_not_read_are_named(detr):
    """DETR's own panoptic rule (`rule="detr"`, the `panoptic_rule` converted checkpoints ship with) has no mask or
    overlap threshold; `post_process_panoptic_segmentation(outputs, mask_threshold=0.3)` under it returned the
    same segments as without, without a word. Such thresholds now give an `UnusedThresholdWarning` naming them and
    the rule that reads them; the results are unchanged, and transformers' rule still reads them silently. The
    pipeline, which always passes transformers' defaults, warns only for the thresholds a user gave (tested in
    tests/test_pipelines.py)."""
    from seem_hf.postprocessing import UnusedThresholdWarning

    processor, outputs = detr
    expected = processor.post_process_panoptic_segmentation(outputs, rule="detr", target_sizes=[(50, 70)])
    with pytest.warns(UnusedThresholdWarning, match=r"^mask_threshold and overlap_mask_area_threshold are not used"):
        result = processor.post_process_panoptic_segmentation(outputs, rule="detr", target_sizes=[(50, 70)],
                                                              mask_threshold=0.3, overlap_mask_area_threshold=0.9)
    assert _same(result, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        processor.post_process_panoptic_segmentation(outputs, rule="detr", threshold=0.5)
        processor.post_process_panoptic_segmentation(outputs, rule="maskformer", mask_threshold=0.3)


def _striped(outputs, scores=(0.9, 0.65)):
    """SEEM outputs whose query q owns the q-th vertical stripe of the image (mask logits +-20) with label q, scored
    alternately `scores`: by default above SEEM's score threshold (0.8) and between it and transformers' (0.5), so
    that which threshold applies decides which segments there are."""
    outputs = copy.copy(outputs)
    _, queries, height, width = outputs.masks_queries_logits.shape
    num_labels = outputs.class_queries_logits.shape[-1] - 1
    stripe = torch.arange(width) * queries // width
    outputs.masks_queries_logits = torch.where(stripe == torch.arange(queries)[:, None, None], 20.0, -20.0).expand(
        1, queries, height, width).clone()
    logits = torch.zeros(1, queries, num_labels + 1)
    for query in range(queries):
        score = scores[query % len(scores)]
        logits[0, query, query % num_labels] = math.log(score / (1 - score) * num_labels)  # softmax gives `score`
    outputs.class_queries_logits = logits
    return outputs


@pytest.mark.parametrize("fixture, method, mode, names", THRESHOLDS)
def test_thresholds_given_as_none_are_the_defaults(request, fixture, method, mode, names):
    """`threshold=None` (or `mask_threshold=None`, `overlap_mask_area_threshold=None`; a wrapper that forwards its own
    optional arguments passes them so) failed SEEM's `post_process_*` with "threshold must be a number between 0 and
    1, got NoneType None", and DETR-panoptic's instance segmentation too, where DETR-panoptic's panoptic
    segmentation read None as its default. Every processor now reads None as not given, through the shared
    `check_threshold(..., default=)`: SEEM's own thresholds (score 0.8), not transformers' (0.5)."""
    processor, outputs = request.getfixturevalue(fixture)
    if fixture == "seem_generic":  # the random model's segments are decided by no threshold
        outputs = _striped(outputs)
    post_process = getattr(processor, method)
    expected = post_process(outputs, **mode)
    for name in names:
        assert _same(post_process(outputs, **mode, **{name: None}), expected), name
    assert _same(post_process(outputs, **mode, **dict.fromkeys(names)), expected)
    if fixture == "seem_generic":
        assert expected[0]["segments_info"]
        assert not _same(post_process(outputs, **mode, threshold=0.5), expected)

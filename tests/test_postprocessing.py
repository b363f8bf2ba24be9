"""Post-processing: equal to transformers' DETR post-processing on realistic outputs, and the original DETR
panoptic rule on hand-made cases."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import DetrImageProcessorPil

from seem_hf import postprocessing

from .helpers import voronoi_outputs

CASES = [
    dict(batch=1, height=24, width=32, target_sizes=None),
    dict(batch=2, height=24, width=32, target_sizes=[(97, 131), (40, 30)]),
    dict(batch=1, height=50, width=66, target_sizes=[(200, 264)]),
]


@pytest.fixture(scope="module")
def transformers_processor():
    return DetrImageProcessorPil()


def _same_segments(ours, theirs):
    """Equal maps and segment lists. transformers lists a fused segment once per query that joined it, and
    can reuse an id after a fusion (two segments, one id); ours lists each segment once with its own id, so
    its list is compared with transformers' first entry per id, and maps only where transformers' ids are
    unique."""
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        first_per_id = {}
        for info in b["segments_info"]:
            first_per_id.setdefault(info["id"], info)
        labels_per_id = {}
        for info in b["segments_info"]:
            labels_per_id.setdefault(info["id"], set()).add(info["label_id"])
        ids = [info["id"] for info in a["segments_info"]]
        assert len(ids) == len(set(ids))
        if all(len(labels) == 1 for labels in labels_per_id.values()):
            assert torch.equal(a["segmentation"].to(torch.int64), b["segmentation"].to(torch.int64))
            assert a["segments_info"] == list(first_per_id.values())


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_panoptic_equals_transformers(transformers_processor, case, seed):
    outputs = voronoi_outputs(batch=case["batch"], height=case["height"], width=case["width"], seed=seed)
    fuse = set(range(10, 20))
    for threshold in (0.5, 0.85):
        theirs = transformers_processor.post_process_panoptic_segmentation(
            outputs, threshold=threshold, label_ids_to_fuse=fuse, target_sizes=case["target_sizes"]
        )
        ours = postprocessing.panoptic_segmentation(
            outputs.logits, outputs.pred_masks, threshold, label_ids_to_fuse=fuse, target_sizes=case["target_sizes"]
        )
        _same_segments(ours, theirs)
        assert any(result["segments_info"] for result in ours)
        assert any(info["was_fused"] for result in ours for info in result["segments_info"]) or not any(
            info["label_id"] in fuse for result in ours for info in result["segments_info"]
        )


@pytest.mark.parametrize("case", CASES)
def test_instance_equals_transformers(transformers_processor, case):
    outputs = voronoi_outputs(batch=case["batch"], height=case["height"], width=case["width"], seed=3)
    theirs = transformers_processor.post_process_instance_segmentation(
        outputs, threshold=0.6, overlap_mask_area_threshold=0.7, target_sizes=case["target_sizes"]
    )
    ours = postprocessing.instance_segmentation(
        outputs.logits, outputs.pred_masks, 0.6, overlap_mask_area_threshold=0.7, target_sizes=case["target_sizes"]
    )
    _same_segments(ours, theirs)


@pytest.mark.parametrize("case", CASES)
def test_semantic_equals_transformers(transformers_processor, case):
    outputs = voronoi_outputs(batch=case["batch"], height=case["height"], width=case["width"], seed=4)
    theirs = transformers_processor.post_process_semantic_segmentation(outputs, target_sizes=case["target_sizes"])
    ours = postprocessing.semantic_segmentation(outputs.logits, outputs.pred_masks, case["target_sizes"])
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    scores = postprocessing.semantic_segmentation(
        outputs.logits, outputs.pred_masks, case["target_sizes"], return_segmentation_scores=True
    )
    theirs = transformers_processor.post_process_semantic_segmentation(
        outputs, target_sizes=case["target_sizes"], return_segmentation_scores=True
    )
    for a, b in zip(scores, theirs):
        assert type(a) is type(b)
        assert torch.equal(a.segmentation, b.segmentation)
        torch.testing.assert_close(a.segmentation_scores, b.segmentation_scores)


@pytest.mark.parametrize("seed", range(6))
def test_labels_that_can_win_keeps_every_winner(seed):
    generator = torch.Generator().manual_seed(seed)
    # Ten labels own regions (high inside, low outside); thirty are unlikely everywhere, as in real maps.
    scores = torch.rand(40, 9, 13, generator=generator) * 0.2
    region = torch.randint(0, 10, (3, 4), generator=generator).repeat_interleave(3, 0).repeat_interleave(4, 1)
    region = region[:9, :13] if region.shape[1] >= 13 else F.pad(region, (0, 13 - region.shape[1]), mode="replicate")
    for label in range(10):
        scores[30 + label][region == label] += 0.7 + 0.2 * torch.rand(int((region == label).sum()), generator=generator)
    for size in [(9, 13), (31, 17), (5, 6), (90, 130)]:
        resized = F.interpolate(scores[None], size=size, mode="bilinear", align_corners=False)[0]
        winners = set(resized.argmax(0).unique().tolist())
        candidates = set(postprocessing._labels_that_can_win(scores).tolist())
        assert winners <= candidates
    assert len(candidates) < 40  # it does prune


@pytest.mark.parametrize("channels", [8, 40])  # below and above the count where screening starts
def test_resized_argmax_matches_resize_then_argmax_with_and_without_screening(channels):
    generator = torch.Generator().manual_seed(channels)
    scores = F.interpolate(torch.randn(1, channels, 4, 5, generator=generator) * 4, size=(16, 22), mode="bilinear")[0]
    scores[channels // 2 :] -= 10  # half the labels never win, as in a label set larger than the image's content
    for size in [(16, 22), (37, 51), (9, 11)]:
        expected = F.interpolate(scores[None], size=size, mode="bilinear", align_corners=False)[0].argmax(0)
        assert torch.equal(postprocessing.resized_argmax(scores, size), expected)


def test_nothing_kept_gives_minus_one():
    outputs = voronoi_outputs(num_segments=0, seed=5)
    outputs.logits[..., -1] = 20  # every query says "no object"
    for result in (
        postprocessing.panoptic_segmentation(outputs.logits, outputs.pred_masks, target_sizes=[(7, 9)])[0],
        postprocessing.detr_panoptic_segmentation(outputs.logits, outputs.pred_masks, target_sizes=[(7, 9)])[0],
    ):
        assert result["segments_info"] == []
        assert result["segmentation"].shape == (7, 9)
        assert (result["segmentation"] == -1).all()


def _detr_case():
    """Four queries over a 10x10 image: query 0 (thing 1) owns the left half, queries 1 and 2 (stuff 5) own
    the top-right and bottom-right, query 3 (thing 2) is confident but wins only 4 pixels; query 4 is unsure."""
    logits = torch.full((1, 5, 7), -10.0)
    logits[0, 0, 1] = logits[0, 1, 5] = logits[0, 2, 5] = logits[0, 3, 2] = 10
    logits[0, 4, 3] = 1.0  # probability well below 0.85
    logits[0, 4, 6] = 0.5
    masks = torch.full((1, 5, 10, 10), -5.0)
    masks[0, 0, :, :5] = 5
    masks[0, 1, :5, 5:] = 5
    masks[0, 2, 5:, 5:] = 5
    masks[0, 3, 8:, 8:] = 6  # beats query 2 on a 2x2 corner only
    masks[0, 4] = 9  # would win everywhere if it were kept
    return logits, masks


def test_detr_rule_drops_later_stuff_queries_and_tiny_segments():
    """As the original: query 2 (a second query of stuff 5) counts 0 pixels after the first pass's merge and is
    dropped with the 4-pixel corner of query 3; the argmax is then recomputed over queries 0 and 1."""
    logits, masks = _detr_case()
    masks[0, 1, 5:, 5:] = -4  # query 1 beats query 0 (-5) where query 2 was
    result = postprocessing.detr_panoptic_segmentation(logits, masks, label_ids_to_fuse={5})[0]
    info = result["segments_info"]
    assert [(s["id"], s["label_id"], s["was_fused"]) for s in info] == [(1, 1, False), (2, 5, True)]
    segmentation = result["segmentation"]
    assert (segmentation[:, :5] == 1).all()
    assert (segmentation[:, 5:] == 2).all()
    assert segmentation.dtype == torch.int32
    masks[0, 1, 5:, 5:] = -6  # now query 0 wins them: a dropped stuff query's pixels can go to a thing
    segmentation = postprocessing.detr_panoptic_segmentation(logits, masks, label_ids_to_fuse={5})[0]["segmentation"]
    assert (segmentation[5:, 5:] == 1).all() and (segmentation[:5, 5:] == 2).all()


def test_detr_rule_keeps_segments_above_min_area():
    logits, masks = _detr_case()
    masks[0, 3, 7:, 7:] = 6  # now 9 pixels
    result = postprocessing.detr_panoptic_segmentation(logits, masks, label_ids_to_fuse={5})[0]
    assert [s["label_id"] for s in result["segments_info"]] == [1, 5, 2]
    assert int((result["segmentation"] == 3).sum()) == 9


def test_detr_rule_threshold_and_target_size():
    logits, masks = _detr_case()
    result = postprocessing.detr_panoptic_segmentation(logits, masks, threshold=0.1, target_sizes=[(20, 20)])[0]
    assert result["segmentation"].shape == (20, 20)
    assert 3 in [s["label_id"] for s in result["segments_info"]]  # the unsure query is kept at 0.1


@pytest.mark.parametrize(
    "class_logits, mask_logits, target_sizes, message",
    [
        (torch.zeros(1, 3, 4), torch.zeros(1, 3, 5), None, "Expected class logits"),
        (torch.zeros(1, 3, 4), torch.zeros(1, 2, 5, 5), None, "disagree"),
        (torch.zeros(2, 3, 4), torch.zeros(2, 3, 5, 5), [(4, 4)], "target_sizes"),
        (torch.zeros(1, 3, 4), torch.zeros(1, 3, 5, 5), [(0, 4)], "positive"),
        (torch.zeros(1, 3, 1), torch.zeros(1, 3, 5, 5), None, "at least one label"),
        (torch.full((1, 3, 4), float("nan")), torch.zeros(1, 3, 5, 5), None, "class logits contain NaN"),
        (torch.zeros(1, 3, 4), torch.full((1, 3, 5, 5), float("inf")), None, "mask logits contain NaN"),
    ],
)
def test_bad_outputs_raise_clear_errors(class_logits, mask_logits, target_sizes, message):
    for function in (
        postprocessing.semantic_segmentation,
        postprocessing.panoptic_segmentation,
        postprocessing.detr_panoptic_segmentation,
    ):
        with pytest.raises(ValueError, match=message):
            function(class_logits, mask_logits, target_sizes=target_sizes)


def test_finiteness_check_finds_one_bad_value_and_allows_sums_that_overflow():
    masks = torch.randn(1, 3, 5, 5)
    masks[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="mask logits contain NaN"):
        postprocessing.panoptic_segmentation(torch.zeros(1, 3, 4), masks)
    masks = torch.full((1, 3, 5, 5), 3e38)  # finite, but their float32 sum is not
    masks[0, 0] = -3e38
    assert not torch.isfinite(masks.sum())
    result = postprocessing.panoptic_segmentation(torch.zeros(1, 3, 4), masks, threshold=0.0)[0]
    assert result["segmentation"].shape == (5, 5)


def test_image_processor_methods_use_the_shared_functions(tiny_detr_panoptic_folder):
    from seem_hf import DetrPanopticImageProcessor

    processor = DetrPanopticImageProcessor.from_pretrained(tiny_detr_panoptic_folder)
    outputs = voronoi_outputs(num_labels=5, seed=6)
    default = processor.post_process_panoptic_segmentation(outputs, target_sizes=[(30, 40)])[0]
    explicit = postprocessing.panoptic_segmentation(
        outputs.logits, outputs.pred_masks, label_ids_to_fuse=processor.stuff_label_ids, target_sizes=[(30, 40)]
    )[0]
    _same_segments([default], [explicit])
    detr = processor.post_process_panoptic_segmentation(outputs, target_sizes=[(30, 40)], rule="detr")[0]
    expected = postprocessing.detr_panoptic_segmentation(
        outputs.logits, outputs.pred_masks, label_ids_to_fuse=processor.stuff_label_ids, target_sizes=[(30, 40)],
        processed_sizes=[processor.processed_size(30, 40)],
    )[0]
    _same_segments([detr], [expected])
    with pytest.raises(ValueError, match="rule"):
        processor.post_process_panoptic_segmentation(outputs, rule="mask2former")
    rle = processor.post_process_instance_segmentation(outputs, return_coco_annotation=True)[0]
    assert isinstance(rle["segmentation"], list)
    assert SimpleNamespace  # keeps the import used for readers of the helper


@settings(max_examples=150, deadline=None)
@given(
    queries=st.integers(1, 6),
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    out_height=st.integers(1, 40),
    out_width=st.integers(1, 40),
    seed=st.integers(0, 2**16),
    threshold=st.sampled_from([0.2, 0.5, 0.8]),
)
def test_resized_argmax_equals_resize_then_argmax(queries, height, width, out_height, out_width, seed, threshold):
    """Any sizes, up or down, thin or single-pixel: owners, counts and thresholded areas equal those of
    torch's resize, except at pixels where the two best values tie within rounding (1e-5)."""
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand(queries, height, width, generator=generator)
    size = (out_height, out_width)
    argmax, area = postprocessing._resized_argmax(maps, size, threshold)
    resized = F.interpolate(maps[None], size=size, mode="bilinear", align_corners=False)[0]
    owner = argmax.map(torch.arange(queries))
    expected = resized.max(0).indices
    top = resized.topk(min(2, queries), dim=0).values
    near_tie = (top[0] - top[-1] < 1e-5) if queries > 1 else torch.zeros(size, dtype=torch.bool)
    assert ((owner == expected) | near_tie).all()
    assert torch.equal(argmax.counts(queries), torch.bincount(owner.flatten(), minlength=queries))
    near_threshold = ((resized - threshold).abs() < 1e-5).sum((1, 2))
    assert ((area - (resized >= threshold).sum((1, 2))).abs() <= near_threshold).all()

"""`rule="detr"` reproduces facebookresearch/detr's `PostProcessPanoptic`: compared with a step-by-step transcription
of the original (`original_detr_postprocess.py`) on the cases of issue 15 and on random outputs, with the target
size equal to and different from the processed size.

Segment ids: ours are the original's plus one (the original numbers survivors 0, 1, ...; 0 is void in
panopticapi). Comparisons are exact: both sides run the same float operations (torch's bilinear resize, a softmax
over queries, PIL's nearest neighbour), and random cases whose mask logits come within 1e-5 of a tie between two
queries are skipped, since there the two softmax implementations may round differently.
"""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from seem_hf import postprocessing
from seem_hf.models.detr_panoptic.image_processing_detr_panoptic import DetrPanopticImageProcessor

from ...helpers import voronoi_outputs
from .original_detr_postprocess import post_process_panoptic

PERSON, STUFF = 0, 150
NUM_LABELS = 201  # one more than the largest COCO-panoptic id, as DETR's head


def _issue_case():
    """Issue 15, item 6a: three queries over 4x8 masks; query 0 a person, queries 1 and 2 of stuff label 150."""
    logits = torch.full((1, 3, NUM_LABELS + 1), -10.0)
    logits[0, 0, PERSON] = logits[0, 1, STUFF] = logits[0, 2, STUFF] = 10
    masks = torch.zeros(1, 3, 4, 8)
    masks[0, 0, :, 4:6], masks[0, 0, :, 6:8] = 3, 10
    masks[0, 1, :, 0:4], masks[0, 1, :, 4:8] = 4, 2
    masks[0, 2, :, 4:8] = 4
    return logits, masks


def _compare(ours: dict, original: dict, stuff: set) -> None:
    """Ours equals the original: the map (ids + 1) and, per segment, the id, label, stuff flag and area."""
    if not original["segments_info"]:
        assert ours["segments_info"] == []
        assert (ours["segmentation"] == -1).all()  # transformers' "nothing kept"; the original's map is all 0
        return
    assert torch.equal(ours["segmentation"].long(), original["ids"] + 1)
    expected = [(s["id"] + 1, s["category_id"], not s["isthing"], s["area"]) for s in original["segments_info"]]
    got = [(s["id"], s["label_id"], s["was_fused"], int((ours["segmentation"] == s["id"]).sum()))
           for s in ours["segments_info"]]
    assert got == expected


def _areas_by_label(result: dict) -> dict:
    return {s["label_id"]: int((result["segmentation"] == s["id"]).sum()) for s in result["segments_info"]}


def test_later_stuff_query_is_dropped_not_merged():
    logits, masks = _issue_case()
    thing_map = {label: label != STUFF for label in range(NUM_LABELS)}
    original = post_process_panoptic(logits, masks, thing_map, processed_sizes=[(4, 8)])[0]
    ours = postprocessing.detr_panoptic_segmentation(logits, masks, label_ids_to_fuse={STUFF})[0]
    _compare(ours, original, {STUFF})
    # The figures of the issue: query 2's columns 4-5 go to the person once query 2 is dropped.
    assert _areas_by_label(ours) == {PERSON: 16, STUFF: 16}


def test_argmax_at_processed_size_then_nearest_resize():
    """Issue 15, item 6b: the map is decided at the processed size and resized as ids, not as logits."""
    logits, masks = _issue_case()
    thing_map = {label: label != STUFF for label in range(NUM_LABELS)}
    for processed, target in [((8, 16), (13, 21)), ((4, 8), (3, 5)), ((6, 10), (6, 10)), ((5, 9), (40, 72))]:
        original = post_process_panoptic(logits, masks, thing_map, [processed], [target])[0]
        ours = postprocessing.detr_panoptic_segmentation(
            logits, masks, label_ids_to_fuse={STUFF}, target_sizes=[target], processed_sizes=[processed]
        )[0]
        assert ours["segmentation"].shape == target
        _compare(ours, original, {STUFF})


def _no_near_ties(class_logits, mask_logits, processed_sizes, threshold) -> bool:
    """No pixel where two kept queries' resized mask logits are within 1e-5 (see the module docstring)."""
    keep = postprocessing.keep_confident_queries(class_logits, threshold)[2]
    for image, size in enumerate(processed_sizes):
        kept = mask_logits[image, keep[image]]
        if len(kept) < 2:
            continue
        resized = F.interpolate(kept[None], size=size, mode="bilinear", align_corners=False)[0]
        if (resized.sort(0).values.diff(dim=0) < 1e-5).any():
            return False
    return True


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 2),
    queries=st.integers(1, 8),
    mask_size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    processed=st.tuples(st.integers(2, 24), st.integers(2, 24)),
    target=st.one_of(st.none(), st.tuples(st.integers(1, 40), st.integers(1, 40))),
    threshold=st.sampled_from([0.5, 0.85]),
)
def test_random_outputs_equal_the_original(seed, batch, queries, mask_size, processed, target, threshold):
    """Random outputs with few labels (so that stuff labels repeat), confident and unsure queries, masks of any
    size, processed sizes up and down, targets equal to or different from the processed size."""
    generator = torch.Generator().manual_seed(seed)
    num_labels, stuff = 6, {3, 4, 5}
    logits = torch.randn(batch, queries, num_labels + 1, generator=generator)
    confident = torch.rand(batch, queries, generator=generator) < 0.7
    labels = torch.randint(0, num_labels + 1, (batch, queries), generator=generator)  # num_labels: "no object"
    logits[confident, labels[confident]] += 8
    masks = torch.randn(batch, queries, *mask_size, generator=generator) * 4
    processed_sizes = [processed] * batch
    target_sizes = None if target is None else [target] * batch
    assume(_no_near_ties(logits, masks, processed_sizes, threshold))
    thing_map = {label: label not in stuff for label in range(num_labels)}
    originals = post_process_panoptic(logits, masks, thing_map, processed_sizes, target_sizes, threshold)
    ours = postprocessing.detr_panoptic_segmentation(
        logits, masks, threshold, stuff, target_sizes=target_sizes, processed_sizes=processed_sizes
    )
    for mine, original in zip(ours, originals):
        _compare(mine, original, stuff)


@pytest.mark.parametrize("image_size", [(30, 40), (97, 61)])
def test_processor_detr_rule_equals_the_original(tiny_detr_panoptic_folder, image_size):
    """Through the image processor as a user calls it (target size = the original image's), with the processed
    size read off the processor's own output for an image of that size."""
    from PIL import Image

    processor = DetrPanopticImageProcessor.from_pretrained(tiny_detr_panoptic_folder)
    processed = tuple(processor(Image.new("RGB", image_size[::-1]), return_tensors="pt")["pixel_values"].shape[-2:])
    assert processed != image_size
    stuff = set(processor.stuff_label_ids)
    thing_map = {label: label not in stuff for label in range(8)}
    for seed in range(4):
        outputs = voronoi_outputs(num_labels=8, height=processed[0] // 4, width=processed[1] // 4, seed=seed)
        assume_ok = _no_near_ties(outputs.logits, outputs.pred_masks, [processed], 0.85)
        if not assume_ok:
            continue
        ours = processor.post_process_panoptic_segmentation(outputs, target_sizes=[image_size], rule="detr")[0]
        original = post_process_panoptic(outputs.logits, outputs.pred_masks, thing_map, [processed], [image_size])[0]
        assert original["segments_info"]
        _compare(ours, original, stuff)

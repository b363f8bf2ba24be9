"""Parity of the shared matcher and criterion with transformers' DETR and Mask2Former losses."""

import math

import pytest
import torch
from transformers import Mask2FormerConfig
from transformers.loss.loss_for_object_detection import ForSegmentationLoss, HungarianMatcher as DetrMatcher
from transformers.models.detr import DetrConfig
from transformers.models.mask2former.modeling_mask2former import Mask2FormerHungarianMatcher, Mask2FormerLoss

from seem_hf.loss import HungarianMatcher, SetCriterion, sample_points_by_uncertainty

NUM_LABELS, NUM_QUERIES = 5, 12


def _targets(generator, counts=(3, 1), size=(32, 40)):
    targets = []
    for count in counts:
        centres = torch.rand(count, 2, generator=generator) * 0.5 + 0.25
        sizes = torch.rand(count, 2, generator=generator) * 0.3 + 0.1
        targets.append(
            {
                "class_labels": torch.randint(0, NUM_LABELS, (count,), generator=generator),
                "boxes": torch.cat([centres, sizes], 1),
                "masks": (torch.rand(count, *size, generator=generator) > 0.6).float(),
            }
        )
    return targets


def _predictions(generator, batch=2, mask_size=(8, 10)):
    return (
        torch.randn(batch, NUM_QUERIES, NUM_LABELS + 1, generator=generator),
        torch.randn(batch, NUM_QUERIES, *mask_size, generator=generator),
        torch.rand(batch, NUM_QUERIES, 4, generator=generator) * 0.5 + 0.2,
    )


def test_box_matcher_equals_detr_matcher():
    generator = torch.Generator().manual_seed(0)
    targets = _targets(generator)
    logits, _, boxes = _predictions(generator)
    ours = HungarianMatcher(class_cost=1, bbox_cost=5, giou_cost=2)(logits, targets, pred_boxes=boxes)
    reference = DetrMatcher(class_cost=1, bbox_cost=5, giou_cost=2)({"logits": logits, "pred_boxes": boxes}, targets)
    for (rows, columns), (reference_rows, reference_columns) in zip(ours, reference):
        assert torch.equal(rows, reference_rows) and torch.equal(columns, reference_columns)


def test_mask_matcher_equals_mask2former_matcher_with_the_same_seed():
    generator = torch.Generator().manual_seed(1)
    targets = _targets(generator, counts=(4, 2))
    logits, masks, _ = _predictions(generator)
    torch.manual_seed(7)
    ours = HungarianMatcher(class_cost=2, mask_cost=5, dice_cost=5, num_points=500)(logits, targets, mask_logits=masks)
    torch.manual_seed(7)
    reference = Mask2FormerHungarianMatcher(cost_class=2, cost_mask=5, cost_dice=5, num_points=500)(
        masks, logits, [t["masks"] for t in targets], [t["class_labels"] for t in targets]
    )
    for (rows, columns), (reference_rows, reference_columns) in zip(ours, reference):
        assert torch.equal(rows, reference_rows) and torch.equal(columns, reference_columns)


def test_matcher_handles_images_without_targets_and_non_finite_costs():
    generator = torch.Generator().manual_seed(2)
    targets = _targets(generator, counts=(0, 2))
    logits, masks, boxes = _predictions(generator)
    logits[1, 0] = float("nan")
    matcher = HungarianMatcher(class_cost=1, mask_cost=1, dice_cost=1, bbox_cost=1, giou_cost=1, num_points=64)
    indices = matcher(logits, targets, mask_logits=masks, pred_boxes=boxes)
    assert [len(rows) for rows, _ in indices] == [0, 2]
    assert 0 not in indices[1][0].tolist()  # the NaN query is matched only when nothing else can be


def test_matcher_needs_the_outputs_its_costs_use():
    with pytest.raises(ValueError, match="at least one non-zero cost"):
        HungarianMatcher(class_cost=0)
    with pytest.raises(ValueError, match="pass pred_boxes"):
        HungarianMatcher(bbox_cost=1)(torch.zeros(1, 2, 3), [{"class_labels": torch.tensor([0])}])


def test_detr_criterion_equals_transformers_segmentation_loss():
    generator = torch.Generator().manual_seed(3)
    config = DetrConfig(num_labels=NUM_LABELS, auxiliary_loss=True, decoder_layers=3, use_timm_backbone=False)
    targets = _targets(generator)
    logits, masks, boxes = _predictions(generator)
    auxiliary = [_predictions(generator) for _ in range(config.decoder_layers - 1)]
    reference_loss, reference_dict, _ = ForSegmentationLoss(
        logits, targets, "cpu", boxes, masks, config,
        torch.stack([a[0] for a in auxiliary] + [logits]), torch.stack([a[2] for a in auxiliary] + [boxes]),
    )
    criterion = SetCriterion(
        NUM_LABELS,
        HungarianMatcher(class_cost=1, bbox_cost=5, giou_cost=2),
        weights={"loss_ce": 1, "loss_bbox": 5, "loss_giou": 2, "loss_mask": 1, "loss_dice": 1},
        eos_coefficient=config.eos_coefficient,
        mask_loss="focal",
        auxiliary_mask_losses=False,
    )
    loss, loss_dict = criterion(
        logits, targets, mask_logits=masks, pred_boxes=boxes,
        auxiliary_outputs=[{"class_logits": a[0], "pred_boxes": a[2]} for a in auxiliary],
    )
    assert set(loss_dict) == set(reference_dict)
    for name in reference_dict:
        torch.testing.assert_close(loss_dict[name], reference_dict[name].reshape(loss_dict[name].shape),
                                   rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(loss, reference_loss, rtol=1e-6, atol=1e-6)


def test_point_sampled_criterion_equals_mask2former_loss_with_the_same_seed():
    generator = torch.Generator().manual_seed(4)
    targets = _targets(generator, counts=(2, 3))
    logits, masks, _ = _predictions(generator)
    auxiliary = [_predictions(generator)[:2] for _ in range(2)]
    config = Mask2FormerConfig(num_labels=NUM_LABELS, no_object_weight=0.1, train_num_points=300,
                               oversample_ratio=3.0, importance_sample_ratio=0.75, class_weight=2.0,
                               mask_weight=5.0, dice_weight=5.0)
    torch.manual_seed(11)
    reference = Mask2FormerLoss(config, weight_dict={})(
        masks, logits, [t["masks"] for t in targets], [t["class_labels"] for t in targets],
        [{"masks_queries_logits": m, "class_queries_logits": c} for c, m in auxiliary],
    )
    criterion = SetCriterion(
        NUM_LABELS,
        HungarianMatcher(class_cost=2, mask_cost=5, dice_cost=5, num_points=300),
        weights={"loss_ce": 2, "loss_mask": 5, "loss_dice": 5},
        num_points=300,
    )
    torch.manual_seed(11)
    loss, loss_dict = criterion(
        logits, targets, mask_logits=masks,
        auxiliary_outputs=[{"class_logits": c, "mask_logits": m} for c, m in auxiliary],
    )
    for name, value in reference.items():
        torch.testing.assert_close(loss_dict[name.replace("cross_entropy", "ce")], value, rtol=1e-5, atol=1e-6)
    expected = sum(weight * value for name, value in loss_dict.items()
                   for key, weight in criterion.weights.items() if name == key or name.startswith(key + "_"))
    torch.testing.assert_close(loss, expected)


def test_criterion_without_targets_gives_a_finite_loss_that_reaches_every_output():
    generator = torch.Generator().manual_seed(5)
    logits, masks, boxes = (tensor.requires_grad_() for tensor in _predictions(generator))
    targets = _targets(generator, counts=(0, 0))
    criterion = SetCriterion(NUM_LABELS, HungarianMatcher(1, 1, 1, 1, 1, num_points=32),
                             weights={"loss_ce": 1, "loss_mask": 1, "loss_dice": 1, "loss_bbox": 1,
                                      "loss_giou": 1}, num_points=32)
    loss, loss_dict = criterion(logits, targets, mask_logits=masks, pred_boxes=boxes)
    assert math.isfinite(loss.item()) and loss_dict["loss_mask"].item() == 0
    loss.backward()
    assert all(tensor.grad is not None for tensor in (logits, masks, boxes))


def test_uncertain_points_concentrate_on_the_mask_boundary():
    logits = torch.full((1, 1, 64, 64), 10.0)
    logits[..., :, 28:36] = 0.0  # a vertical band of maximal uncertainty, 1/8 of the width
    torch.manual_seed(0)
    points = sample_points_by_uncertainty(logits, num_points=400, oversample_ratio=10, importance_sample_ratio=0.75)
    assert points.shape == (1, 400, 2)
    in_band = ((points[0, :, 0] - 0.5).abs() < 0.07).float().mean().item()
    # The 300 most uncertain of 4000 candidates all fall in the band (~500 candidates there), plus ~14% of the
    # 100 uniform points; uniform sampling alone would put 14% there.
    assert in_band > 0.75

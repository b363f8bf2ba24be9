"""SEEM's click protocol (NoC) on models whose answers are known: an oracle that returns the target once it has been
clicked, and one that answers with exactly the clicked pixels."""

import torch
from torch import nn
from transformers.utils import ModelOutput

from seem_hf.metrics.segmentation import number_of_clicks
from seem_hf.models.seem.evaluation_seem import interactive_ious


class _Answering(nn.Module):
    """Answers each prompt at stride 4 with `answer(positive, negative)`; records the prompts it saw."""

    def __init__(self, answer):
        super().__init__()
        self.answer, self.seen = answer, []
        self.device = torch.device("cpu")

    def forward(self, image_features, spatial_positive_masks, spatial_negative_masks, previous_masks, generator):
        self.seen.append((spatial_positive_masks.clone(), spatial_negative_masks.clone(), previous_masks))
        full = self.answer(spatial_positive_masks[0], spatial_negative_masks[0]).float() * 20 - 10
        return ModelOutput(interactive_masks_logits=full[None, :, ::4, ::4].contiguous())


def _targets():
    targets = torch.zeros(2, 64, 64, dtype=torch.bool)
    targets[0, 8:40, 8:40], targets[1, 44:60, 20:60] = True, True
    return targets


def test_an_oracle_needs_one_click_and_the_memory_is_passed_on():
    targets = _targets()
    model = _Answering(lambda positive, negative: targets & positive.flatten(1).any(1)[:, None, None])
    ious = interactive_ious(model, None, targets, torch.ones(64, 64, dtype=torch.bool), max_clicks=3)
    assert ious.shape == (2, 3) and torch.allclose(ious, torch.ones(2, 3, dtype=torch.float64), atol=0.05)
    assert number_of_clicks(ious.tolist(), max_clicks=3) == {"noc@85": 1.0, "noc@90": 1.0}
    first_positive = model.seen[0][0][0]
    assert first_positive.flatten(1).sum(1).tolist() == [9, 9]  # one 3 x 3 click per object, inside it
    assert not (first_positive & ~targets).any()
    assert model.seen[0][2] is None
    assert len(model.seen) == 1  # both objects reached the stop IoU at click 1: they are not run again


def test_an_object_at_the_stop_iou_is_not_run_again_and_keeps_its_answer():
    targets = _targets()

    def answer(positive, negative):  # object 0's clicks give its exact mask; any other answers its clicks only
        exact = (positive & targets[0]).flatten(1).any(1)[:, None, None]
        return torch.where(exact, targets[0], positive & ~negative)

    model = _Answering(answer)
    ious = interactive_ious(model, None, targets, torch.ones(64, 64, dtype=torch.bool), max_clicks=3)
    # object 0 reached the stop (0.996: its mask went through stride 4 and back) and keeps that IoU exactly
    assert ious[0, 0] >= 0.925 and ious[0].tolist() == [float(ious[0, 0])] * 3 and (ious[1] < 0.85).all()
    assert [len(positive[0]) for positive, _, _ in model.seen] == [2, 1, 1]  # rounds 2-3 run object 1 only
    assert model.seen[1][2].shape[1] == 1  # ... with its own previous answer as memory


def test_clicks_correct_the_larger_error():
    targets = _targets()
    # answers with the clicked pixels only: every round leaves a large false negative, so clicks stay positive
    model = _Answering(lambda positive, negative: positive & ~negative)
    ious = interactive_ious(model, None, targets, torch.ones(64, 64, dtype=torch.bool), max_clicks=4)
    assert (ious[:, 1:] >= ious[:, :-1]).all() and (ious < 0.85).all()
    positive, negative, _ = model.seen[-1]
    assert positive[0].flatten(1).sum(1).tolist() == [36, 36] and not negative.any()
    assert number_of_clicks(ious.tolist(), max_clicks=4) == {"noc@85": 4.0, "noc@90": 4.0}

"""`seem_hf.loss.global_mean`: each process's share of the global mean. The real two-process runs are in
tests/training/test_distributed.py; here the collective is simulated so the arithmetic is checked in isolation."""

import pytest
import torch

from seem_hf.loss import SetCriterion, average_number_of_targets, global_mean_denominators, local_target_count


@pytest.fixture
def two_processes(monkeypatch):
    """This process holds the first of two processes' counts; the other's are `other` (set by the test)."""
    other = {}

    def all_reduce(tensor, op=None):
        assert op == torch.distributed.ReduceOp.SUM
        tensor += torch.as_tensor(other["counts"], dtype=tensor.dtype)

    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    return other


def test_targets_are_summed_over_processes_then_shared(two_processes):
    """Issue 21's case: 3 and 5 targets. Each process divides its own sum by (3 + 5) / 2 = 4, so that DDP's average
    of the two gradients is the sum over all 8 targets / 8. (The defect averaged the counts and divided again: 2.)"""
    two_processes["counts"] = [5.0]
    targets = [{"class_labels": torch.tensor([0, 1, 2])}]
    assert average_number_of_targets(targets, torch.device("cpu")) == 4.0
    two_processes["counts"] = [0.0, 0.0]
    assert global_mean_denominators([0, 0], "cpu") == [0.5, 0.5]  # at least one item in the whole batch
    with local_target_count():  # evaluation: no collective, this process's own count
        assert average_number_of_targets(targets, torch.device("cpu")) == 3.0
    with torch.no_grad():  # a loss only reported: no collective either
        assert average_number_of_targets(targets, torch.device("cpu")) == 3.0


def test_class_term_is_the_weighted_mean_of_torch_in_one_process():
    """One process: `loss_ce` is `cross_entropy(..., weight)`'s weighted mean (DETR's). The same terms summed in
    another order (a weighted sum over the global weight total): assert_close's float32 tolerance."""
    from seem_hf.loss import HungarianMatcher

    torch.manual_seed(0)
    criterion = SetCriterion(num_labels=3, matcher=HungarianMatcher(class_cost=1, bbox_cost=1, giou_cost=1),
                             weights={"loss_ce": 1.0}, eos_coefficient=0.1)
    logits, boxes = torch.randn(2, 5, 4), torch.rand(2, 5, 4) * 0.5 + 0.25
    targets = [{"class_labels": torch.tensor([0, 2]), "boxes": torch.rand(2, 4) * 0.5 + 0.25},
               {"class_labels": torch.tensor([1]), "boxes": torch.rand(1, 4) * 0.5 + 0.25}]
    _, losses = criterion(logits, targets, pred_boxes=boxes)
    indices = criterion.matcher(logits, targets, pred_boxes=boxes)
    classes = torch.full((2, 5), 3)
    for image, (rows, columns) in enumerate(indices):
        classes[image, rows] = targets[image]["class_labels"][columns]
    weight = torch.tensor([1.0, 1.0, 1.0, 0.1])
    expected = torch.nn.functional.cross_entropy(logits.transpose(1, 2), classes, weight)
    torch.testing.assert_close(losses["loss_ce"], expected)

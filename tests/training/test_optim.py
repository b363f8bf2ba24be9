"""Optimiser groups (learning-rate multipliers, no decay on norms, biases and embeddings) and SEEM's schedule."""

import pytest
import torch
from torch import nn

from seem_hf.adapters import lora_by_pattern
from seem_hf.training import parameter_groups, warmup_multistep_schedule


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.language = nn.Linear(4, 4)
        self.embedding = nn.Embedding(5, 4)
        self.head = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def test_groups():
    model = Toy()
    groups = parameter_groups(model, 1e-4, 0.05, lr_multipliers={"backbone": 0.1, "language": 0.5})
    by_id = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert by_id[id(model.backbone[0].weight)] == (pytest.approx(1e-5), 0.05)
    assert by_id[id(model.backbone[0].bias)] == (pytest.approx(1e-5), 0.0)
    assert by_id[id(model.backbone[1].weight)] == (pytest.approx(1e-5), 0.0)
    assert by_id[id(model.language.weight)] == (pytest.approx(5e-5), 0.05)
    assert by_id[id(model.head[0].weight)] == (1e-4, 0.05)
    assert by_id[id(model.head[1].weight)] == (1e-4, 0.0)
    assert by_id[id(model.embedding.weight)] == (1e-4, 0.0)
    assert id(model.frozen.weight) not in by_id
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())


def test_groups_find_parts_inside_a_peft_model():
    model = lora_by_pattern(Toy(), r"backbone\.0|head\.0", rank=2, trainable_norms=None)
    groups = parameter_groups(model, 1e-4, 0.0, lr_multipliers={"backbone": 0.1})
    lrs = {name: g["lr"] for name, p in model.named_parameters() for g in groups if any(p is q for q in g["params"])}
    assert lrs["base_model.model.backbone.0.lora_A.default.weight"] == pytest.approx(1e-5)
    assert lrs["base_model.model.head.0.lora_A.default.weight"] == 1e-4


def test_warmup_then_multistep_decay():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = warmup_multistep_schedule(optimizer, num_training_steps=100, warmup_steps=10)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates[50] == 1.0 and rates[88] == pytest.approx(0.1) and rates[96] == pytest.approx(0.01)
    assert rates[87] == 1.0 and rates[95] == pytest.approx(0.1)

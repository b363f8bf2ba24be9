"""Optimiser groups: backbone learning-rate multiplier, no decay on norms, biases and embeddings."""

from torch import nn

from seem_hf.training import parameter_groups


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.embedding = nn.Embedding(5, 4)
        self.head = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def test_groups():
    model = Toy()
    groups = parameter_groups(model, 1e-4, 0.05, backbone_prefixes=("backbone.",), backbone_multiplier=0.1)
    by_id = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert by_id[id(model.backbone[0].weight)] == (1e-5, 0.05)
    assert by_id[id(model.backbone[0].bias)] == (1e-5, 0.0)
    assert by_id[id(model.backbone[1].weight)] == (1e-5, 0.0)
    assert by_id[id(model.head[0].weight)] == (1e-4, 0.05)
    assert by_id[id(model.head[1].weight)] == (1e-4, 0.0)
    assert by_id[id(model.embedding.weight)] == (1e-4, 0.0)
    assert id(model.frozen.weight) not in by_id
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())

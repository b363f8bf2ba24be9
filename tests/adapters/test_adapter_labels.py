"""An adapter trained for labels of its own (DETR-panoptic's classifier resized by `set_label_set`, the rows
trained in the adapter; SEEM's and LSeg's default label set) keeps them through `save_pretrained`: PEFT writes no
`config.json`, so the folder loaded onto the base under the base's labels (a size mismatch, or, with as many
labels, the base's names on the adapter's classes). The folder carries `adapter_labels.json`, which seem_hf's
`load_adapter`, transformers' `model.load_adapter` and `AutoModel.from_pretrained(adapter_folder)` apply."""

import json

import pytest
import torch
from transformers import AutoModel

from seem_hf.adapters import load_adapter, prepare_for_fine_tuning
from seem_hf.testing import FIXTURES

NEW = {0: "boat", 1: "sea", 2: "sky"}


def _outputs(model, inputs):
    with torch.no_grad():
        outputs = model(**inputs)
    return [outputs[name] for name in ("logits", "class_queries_logits", "pred_masks") if name in outputs]


@pytest.mark.parametrize("strategy", ["freeze_backbone_adapt_head", "adapt_backbone_tune_head"])
def test_a_detr_adapter_on_new_labels_reloads_with_them(strategy, tmp_path):
    base_folder = FIXTURES / "tiny-random-detr_panoptic"
    model = AutoModel.from_pretrained(base_folder).eval()
    base_labels = dict(model.config.id2label)
    assert model.set_label_set(NEW)
    torch.manual_seed(0)
    model = prepare_for_fine_tuning(model, strategy).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.05)
    inputs = {"pixel_values": torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))}
    expected = _outputs(model, inputs)
    model.save_pretrained(tmp_path / "adapter", safe_serialization=True)
    for load in (lambda: AutoModel.from_pretrained(tmp_path / "adapter"),
                 lambda: load_adapter(AutoModel.from_pretrained(base_folder), str(tmp_path / "adapter"))):
        loaded = load().eval()
        assert loaded.config.id2label == NEW
        for ours, theirs in zip(_outputs(loaded, inputs), expected):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    base = AutoModel.from_pretrained(base_folder)
    base.load_adapter(str(tmp_path / "adapter"))
    assert base.config.id2label == NEW and base.detr.class_labels_classifier.out_features == 4
    assert AutoModel.from_pretrained(base_folder).config.id2label == base_labels  # the base folder is as it was
    saved = json.loads((tmp_path / "adapter" / "adapter_labels.json").read_text())
    assert saved["id2label"] == {"0": "boat", "1": "sea", "2": "sky"}


@pytest.mark.parametrize("name", ["seem", "lseg"])
def test_a_text_label_adapter_keeps_its_default_labels(name, tmp_path):
    folder = FIXTURES / f"tiny-random-{name}"
    model = AutoModel.from_pretrained(folder)
    model.config.id2label, model.config.label2id = dict(NEW), {label: index for index, label in NEW.items()}
    model = prepare_for_fine_tuning(model, "freeze_backbone_adapt_head")
    model.save_pretrained(tmp_path / "adapter")
    assert AutoModel.from_pretrained(tmp_path / "adapter").config.id2label == NEW
    reloaded = load_adapter(AutoModel.from_pretrained(folder), str(tmp_path / "adapter"))
    assert reloaded.get_base_model().config.id2label == NEW

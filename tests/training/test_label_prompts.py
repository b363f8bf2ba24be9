"""The rule for SEEM's class targets (`seem_hf.training.label_prompts`), and the SEEM example applying it."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoModel, AutoProcessor

from seem_hf.testing import FIXTURES
from seem_hf.training.label_prompts import AGREEMENT_THRESHOLD, choose_label_prompts

from ..helpers import load_example

LABELS = ["sky", "grass", "wall", "circle", "square"]


@pytest.fixture(scope="module")
def tiny():
    return (AutoModel.from_pretrained(FIXTURES / "tiny-random-seem").eval(),
            AutoProcessor.from_pretrained(FIXTURES / "tiny-random-seem"))


def test_a_random_tower_trains_against_the_embeddings_inference_uses(tiny):
    model, processor = tiny
    prompts = choose_label_prompts(model, processor, LABELS)
    assert prompts.rule == "mean" and 0 <= prompts.agreement < 0.2  # two templates of one name barely agree
    with torch.no_grad():
        inference = model.get_text_features(processor.tokenize_labels(LABELS))
    # the same normalise-average-normalise over the same prompts, summed in another order: float32 rounding only
    torch.testing.assert_close(prompts.embeddings, inference, rtol=1e-5, atol=1e-5)
    assert "--label_prompts mean" in prompts.describe()


def test_random_templates_on_a_random_tower_warn(tiny):
    model, processor = tiny
    with pytest.warns(UserWarning, match="will not be learnt"):
        prompts = choose_label_prompts(model, processor, LABELS, "random")
    assert prompts.rule == "random"
    with pytest.raises(ValueError, match="--label_prompts must be one of"):
        choose_label_prompts(model, processor, LABELS, "best")


def test_a_tower_whose_templates_agree_keeps_seem_s_random_templates(tiny, monkeypatch):
    model, processor = tiny
    templates = processor.tokenize_labels(LABELS).shape[1]
    directions = nn.functional.normalize(torch.randn(len(LABELS) + 1, model.config.dim_proj), dim=-1)

    def agreeing(input_ids):  # every template of a label embeds near the label's own direction
        label = torch.arange(len(input_ids)) // templates
        return nn.functional.normalize(directions[label] + 0.1 * torch.randn(len(input_ids), directions.shape[1]),
                                       dim=-1)

    monkeypatch.setattr(model.language_encoder, "encode_text", agreeing)
    prompts = choose_label_prompts(model, processor, LABELS)
    assert prompts.agreement >= AGREEMENT_THRESHOLD and prompts.rule == "random"


def test_the_seem_example_states_its_rule_and_warns_on_a_rule_that_cannot_learn(tmp_path, capsys):
    example = load_example("finetune_seem")
    common = ["--model_name_or_path", str(FIXTURES / "tiny-random-seem"), "--num_train", "2", "--num_val", "1",
              "--image_size", "64", "--per_device_train_batch_size", "2", "--max_steps", "1", "--eval_strategy",
              "no", "--save_strategy", "no", "--tasks", "generic", "--disable_tqdm", "true"]
    example.main(["--output_dir", str(tmp_path / "auto"), *common])
    assert "class targets: the 81-template mean of each label" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="will not be learnt"):
        example.main(["--output_dir", str(tmp_path / "random"), "--label_prompts", "random", *common])
    assert "one random prompt template per label and batch" in capsys.readouterr().out

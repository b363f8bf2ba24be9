"""scripts/pretrain_text.py: the SEEM default's text tower learns to tell the shapes sentences apart, and nothing
else of the model changes."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import AutoProcessor

from seem_hf import SeemForUniversalSegmentation
from seem_hf.testing import FIXTURES

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from pretrain_text import ATTRIBUTES, pretrain_text_tower, sentences  # noqa: E402

from seem_hf.data.shapes import SHAPES_DOMAINS  # noqa: E402


def test_the_grammar_covers_what_the_generator_says():
    from seem_hf.data import ShapesStream

    texts, targets, counts = sentences(SHAPES_DOMAINS["shapes"])
    said = {text for row in ShapesStream.held_out(16) for grounding in row["groundings"]
            for text in grounding["sentences"]}
    assert said <= set(texts), said - set(texts)
    assert len(set(texts)) == len(texts) and targets.shape == (len(texts), len(ATTRIBUTES))
    assert all(int(targets[:, column].max()) < counts[name] for column, name in enumerate(ATTRIBUTES))


def test_pretraining_separates_the_sentences_of_an_image_and_touches_only_the_text_tower():
    """The SEEM default's config, as `train_defaults.py` starts it (measured, 300 steps: the largest cosine between two
    sentences of a held-out image 0.95 -> 0.72, every attribute told right)."""
    from make_tiny_checkpoints import fit_seem_label_embeddings
    from train_defaults import shapes_seem_config

    torch.manual_seed(0)
    model = SeemForUniversalSegmentation(shapes_seem_config())
    processor = AutoProcessor.from_pretrained(FIXTURES / "tiny-random-seem")  # the CLIP tokenizer drives both
    fit_seem_label_embeddings(model, processor)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    trainable = {name: parameter.requires_grad for name, parameter in model.named_parameters()}
    history = pretrain_text_tower(model, processor, steps=300, log=lambda line: None)
    (_, first), (_, last) = history[0], history[-1]
    assert last["sentence_max_cosine"] < first["sentence_max_cosine"] - 0.1, history
    assert min(last[name] for name in ATTRIBUTES) >= 0.9, last
    changed = {name for name, parameter in model.named_parameters() if not torch.equal(parameter, before[name])}
    assert changed and all(name.startswith("language_encoder.") for name in changed), changed
    assert {name: parameter.requires_grad for name, parameter in model.named_parameters()} == trainable

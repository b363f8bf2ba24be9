"""Label sets cost once (issue 19): the default label set's embeddings carried by a saved folder, any label set's
cached on disk by a hash of the text tower's weights and the tokens; same results as encoding, invalidated when
either changes; never used in training."""

import logging

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoProcessor, pipeline

import seem_hf  # noqa: F401  (registers the models and the pipeline)
from seem_hf.label_embeddings import CACHE_ENV, LABEL_EMBEDDINGS_NAME

LABELS = ["circle", "square", "sky"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "label_cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)


def _forbid_encoding(model):
    def refuse(*args, **kwargs):
        raise AssertionError("the label set was encoded instead of read")

    model.get_text_features = refuse


def _counting(model):
    calls = []
    encode = model.get_text_features

    def counted(*args, **kwargs):
        calls.append(1)
        return encode(*args, **kwargs)

    model.get_text_features = counted
    return calls


def _tokens(processor, labels):
    text = processor(text=labels, return_tensors="pt")
    return text["input_ids"], text.get("attention_mask")


@pytest.mark.parametrize("name", ["seem", "lseg"])
def test_disk_cache_gives_the_encoded_embeddings_and_is_invalidated(name, cache, tiny_seem_folder, tiny_lseg_folder):
    folder = {"seem": tiny_seem_folder, "lseg": tiny_lseg_folder}[name]
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    input_ids, attention_mask = _tokens(processor, LABELS)
    with torch.no_grad():
        encoded = model._encode_labels(input_ids, attention_mask)
        first = model.get_label_embeddings(input_ids, attention_mask)
    files = sorted(cache.glob("*.safetensors"))
    assert len(files) == 1
    # the cached file holds the very tensor the text tower gave: a byte copy, so equality is exact
    torch.testing.assert_close(first, encoded, atol=0, rtol=0)

    # a new process: a new model instance reads the file instead of encoding
    again = AutoModel.from_pretrained(folder).eval()
    _forbid_encoding(again)
    with torch.no_grad():
        torch.testing.assert_close(again.get_label_embeddings(input_ids, attention_mask), encoded, atol=0, rtol=0)

    # other labels: encoded and cached beside the first
    del again.get_text_features
    calls = _counting(again)
    other_ids, other_mask = _tokens(processor, LABELS[:2])
    with torch.no_grad():
        again.get_label_embeddings(other_ids, other_mask)
    assert len(calls) == 1 and len(list(cache.glob("*.safetensors"))) == 2

    # other text-tower weights: the cached embeddings no longer apply
    tower = again.get_submodule(again._text_tower_modules[-1])
    with torch.no_grad():
        next(tower.parameters()).add_(0.5)
        changed = again.get_label_embeddings(input_ids, attention_mask)
    assert len(calls) == 2 and len(list(cache.glob("*.safetensors"))) == 3
    assert not torch.allclose(changed, encoded)  # a 0.5 shift of a projection moves them far beyond rounding


def test_weights_outside_the_text_tower_keep_the_cache(cache, tiny_seem_folder):
    processor = AutoProcessor.from_pretrained(tiny_seem_folder)
    model = AutoModel.from_pretrained(tiny_seem_folder).eval()
    input_ids, _ = _tokens(processor, LABELS)
    calls = _counting(model)
    with torch.no_grad():
        model.get_label_embeddings(input_ids)
        next(model.decoder.parameters()).add_(1.0)  # fine-tuning SEEM leaves its text tower frozen
        model.get_label_embeddings(input_ids)
    assert len(calls) == 1


def test_training_never_caches(cache, tiny_seem_folder):
    processor = AutoProcessor.from_pretrained(tiny_seem_folder)
    model = AutoModel.from_pretrained(tiny_seem_folder).train()
    calls = _counting(model)
    input_ids, _ = _tokens(processor, LABELS)
    model.get_label_embeddings(input_ids)
    model.get_label_embeddings(input_ids)
    assert len(calls) == 2 and not cache.exists()


@pytest.mark.parametrize("name", ["seem", "lseg"])
def test_saved_folder_carries_the_default_label_set(name, tmp_path, monkeypatch, image, tiny_seem_folder,
                                                     tiny_lseg_folder):
    """`set_default_labels(..., model=model)` then `save_pretrained`: the folder carries the embeddings, the
    pipeline's first call reads them (no encoding, disk cache off) and gives what encoding gives."""
    monkeypatch.setenv(CACHE_ENV, "off")
    source = {"seem": tiny_seem_folder, "lseg": tiny_lseg_folder}[name]
    processor = AutoProcessor.from_pretrained(source)
    model = AutoModel.from_pretrained(source).eval()
    processor.set_default_labels(LABELS, model=model)
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    processor.save_pretrained(saved)
    assert (saved / LABEL_EMBEDDINGS_NAME).is_file()

    (saved / LABEL_EMBEDDINGS_NAME).rename(tmp_path / "carried.safetensors")
    reference = pipeline("image-segmentation", model=str(saved))
    calls = _counting(reference.model)
    expected = reference(image, subtask="semantic")
    assert len(calls) == 1  # without the file the label set is encoded
    (tmp_path / "carried.safetensors").rename(saved / LABEL_EMBEDDINGS_NAME)

    carried = pipeline("image-segmentation", model=str(saved))
    _forbid_encoding(carried.model)
    result = carried(image, subtask="semantic")
    assert [r["label"] for r in result] == [r["label"] for r in expected]
    for ours, theirs in zip(result, expected):
        assert np.array_equal(np.asarray(ours["mask"]), np.asarray(theirs["mask"]))

    # saving the loaded model again carries the file on; other text-tower weights drop it
    resaved = tmp_path / "resaved"
    carried.model.save_pretrained(resaved)
    assert (resaved / LABEL_EMBEDDINGS_NAME).is_file()
    tower = carried.model.get_submodule(carried.model._text_tower_modules[-1])
    with torch.no_grad():
        next(tower.parameters()).add_(0.5)
    changed = tmp_path / "changed"
    carried.model.save_pretrained(changed)
    assert not (changed / LABEL_EMBEDDINGS_NAME).exists()


def test_mismatched_carried_embeddings_are_recomputed_with_a_warning(tmp_path, monkeypatch, image, tiny_seem_folder,
                                                                      caplog):
    monkeypatch.setenv(CACHE_ENV, "off")
    processor = AutoProcessor.from_pretrained(tiny_seem_folder)
    model = AutoModel.from_pretrained(tiny_seem_folder).eval()
    processor.set_default_labels(LABELS, thing_label_ids=[0, 1], model=model)
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    processor.save_pretrained(saved)
    # the weights change after the embeddings were written (a folder edited by hand, a stale copy)
    with torch.no_grad():
        model.language_encoder.lang_proj.weight.mul_(2.0).add_(0.1)
    model.__dict__.pop("_default_label_set")
    model.save_pretrained(tmp_path / "new_weights")
    (tmp_path / "new_weights" / "model.safetensors").replace(saved / "model.safetensors")

    segmenter = pipeline("image-segmentation", model=str(saved))
    calls = _counting(segmenter.model)
    with caplog.at_level(logging.WARNING, logger="seem_hf.label_embeddings"):
        segmenter(image, subtask="semantic")
        segmenter(image, subtask="semantic", labels=["star", "wall"])  # another label set: nothing to warn about
    assert len(calls) == 2
    warnings = [record.getMessage() for record in caplog.records if "do not match" in record.getMessage()]
    assert len(warnings) == 1 and "text-tower weights differ" in warnings[0]

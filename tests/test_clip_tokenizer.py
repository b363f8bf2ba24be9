"""The offline CLIP tokenizer gives the ids of CLIP's own tokenizer (open_clip's SimpleTokenizer, loaded from its
installed wheel without importing the rest of open_clip, which needs torchvision)."""

import importlib.util
from pathlib import Path

import pytest

from seem_hf.clip_tokenizer import CONTEXT_LENGTH, clip_tokenizer

TRICKY = [
    "a photo of a cat",
    "The Quick  Brown\tFox, jumped!!  over 3 lazy dogs.",
    "don't stop-believing... it's 2026?",
    "café déjà vu naïve résumé",
    "emoji 🐶🌭 and symbols: #hashtag @user $100 50%",
    "   leading and trailing spaces   ",
    "UPPER lower MiXeD",
    "a man riding a horse on the left of the image, next to a red car",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "",
]


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        pytest.skip("open_clip_torch is not installed (./run installs it with --no-deps)")
    module_spec = importlib.util.spec_from_file_location(
        "open_clip_tokenizer", Path(spec.submodule_search_locations[0]) / "tokenizer.py"
    )
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SimpleTokenizer()


@pytest.fixture(scope="module")
def tokenizer():
    return clip_tokenizer()


@pytest.mark.parametrize("text", TRICKY)
def test_ids_equal_clip_simple_tokenizer(tokenizer, reference, text):
    theirs = reference([text], context_length=CONTEXT_LENGTH)[0].tolist()
    ours = tokenizer(text, padding="max_length", max_length=CONTEXT_LENGTH, truncation=True)
    length = ours["attention_mask"].count(1)
    assert ours["input_ids"][:length] == theirs[:length]
    assert theirs[length:] == [0] * (CONTEXT_LENGTH - length)  # open_clip pads with 0, we with <|endoftext|>
    assert ours["input_ids"][length:] == [tokenizer.pad_token_id] * (CONTEXT_LENGTH - length)


def test_vocabulary_and_truncation(tokenizer, reference):
    assert len(tokenizer) == len(reference.encoder) == 49408
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (49406, 49407)
    long = " ".join(["word"] * 200)
    ours = tokenizer(long, padding="max_length", max_length=CONTEXT_LENGTH, truncation=True)["input_ids"]
    assert len(ours) == CONTEXT_LENGTH and ours[-1] == 49407  # truncated, still ends with end-of-text
    assert ours == reference([long], context_length=CONTEXT_LENGTH)[0].tolist()

"""The offline CLIP tokenizer gives the ids of CLIP's own tokenizer (open_clip's SimpleTokenizer, loaded from its
installed wheel without importing the rest of open_clip, which needs torchvision)."""

import importlib.util
import unicodedata
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from seem_hf.clip_tokenizer import CONTEXT_LENGTH, clip_tokenizer
from seem_hf.text_utils import clean_text

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


# Pieces that CLIP's text cleaning changes: HTML entities (un-escaped twice), mojibake and other ftfy fixes,
# unicode whitespace and compatibility characters; mixed with arbitrary text. Code points that Python's own
# Unicode tables (15.0 for Python 3.11) do not assign are left out: CLIP's tokenizer splits words with the `regex`
# package and transformers' with the `tokenizers` library, whose Unicode versions differ, so a letter added in a
# later version (e.g. U+323B0, CJK extension J) is a letter for one and not for the other; that is not cleaning.
FRAGMENTS = [
    "&amp;", "&lt;", "&amp;lt;", "&amp;amp;lt;", "&#39;", "&#x27;", "&nbsp;", "&quot;", "&gt", "&copy", "Ã©", "â€™",
    "ÃƒÂ©", "ï¬\x81", "Í\x85", "\ufb01", "ＦＵＬＬ", "’", "“quoted”", "e\u0301", "\u00a0", "\u3000", "\t", "\n", "\r\n",
    "\x0b", "\x0c", "\x1b[31m", "\x00", "🐶", "日本語", "İ", "ß", "\u200b", "  ", "A", "Word", ".", "'s", "<b>",
]
ASSIGNED = st.characters(exclude_categories=("Cn", "Cs"))
TEXTS = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(ASSIGNED, max_size=6)), max_size=12).map("".join)


@pytest.fixture(scope="module")
def processors():
    from transformers import AutoProcessor

    from seem_hf.testing import FIXTURES

    return AutoProcessor.from_pretrained(FIXTURES / "tiny-random-seem"), AutoProcessor.from_pretrained(
        FIXTURES / "tiny-random-lseg"
    )


def _clip_ids(reference, text):
    ids = reference([text], context_length=CONTEXT_LENGTH)[0].tolist()
    return ids[: ids.index(49407) + 1]


def test_html_entities_are_unescaped_twice_as_clip_does(processors, reference):
    """Issue 15, item 21: "&amp;lt;" is "<" for CLIP (two rounds of HTML un-escaping)."""
    seem, lseg = processors
    # "İ" lowers to "i" + U+0307, which NFC (transformers' CLIP normaliser) swaps with the next mark; ftfy
    # turns "Í\x85" into U+0345, which CLIP's word split skips like a space.
    texts = ["&amp;lt;", "a &amp; b", "fish &amp;amp; chips", "I’m ＦＵＬＬ of \ufb01sh", "İİ\x86", "Í\x85"]
    texts.append(".\u0345.a\u0345b")
    for text in texts:
        ids = seem.tokenize_sentences([[text]])["grounding_input_ids"][0, 0].tolist()
        assert ids[: ids.index(49407) + 1] == _clip_ids(reference, text)
        ids = lseg(text=[text])["input_ids"][0].tolist()
        assert ids[: ids.index(49407) + 1] == _clip_ids(reference, text)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
def test_processors_tokenise_any_text_as_clip(processors, reference, text):
    """Sentences (SEEM) and labels (LSeg) get exactly CLIP's ids, cleaning included, for any text."""
    seem, lseg = processors
    # ftfy's repairs can make an unassigned code point out of assigned ones ("Õ\x98" -> U+0558), which the two
    # Unicode versions then split differently (see FRAGMENTS): not cleaning either.
    assume(all(unicodedata.category(character) != "Cn" for character in clean_text(text)))
    expected = _clip_ids(reference, text)
    if not text.strip():  # the processors refuse a blank text
        with pytest.raises(ValueError, match="non-empty"):
            seem.tokenize_sentences([[text]])
        return
    ids = seem.tokenize_sentences([[text]])["grounding_input_ids"][0, 0].tolist()
    assert ids[: ids.index(49407) + 1] == expected
    ids = lseg.tokenize_labels([text])["input_ids"][0].tolist()
    assert ids[: ids.index(49407) + 1] == expected

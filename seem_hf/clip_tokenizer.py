"""CLIP's BPE tokenizer without the Hub: transformers' `CLIPTokenizer` built from the merges file that OpenAI's
CLIP and open_clip ship, bundled with this package (`seem_hf/assets/`, MIT licence beside it).

The vocabulary is rebuilt the way CLIP's `SimpleTokenizer` builds it: the 256 byte symbols, the same with the
end-of-word marker `</w>`, one token per merge (the first 48,894 merges), then `<|startoftext|>` (49406) and
`<|endoftext|>` (49407): 49,408 tokens. Padding uses `<|endoftext|>`, as transformers' CLIP does (open_clip pads
with 0; the attention mask and the first end-of-text position are what models read).
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources

from transformers import CLIPTokenizer

from seem_hf.processing_utils import CONTEXT_LENGTH
from seem_hf.text_utils import without_unicode_normalization
_NUM_MERGES = 49152 - 256 - 2


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible map from the 256 byte values to printable unicode characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, characters)))


@lru_cache(maxsize=1)
def _vocabulary_and_merges() -> tuple[dict[str, int], list[str]]:
    data = resources.files("seem_hf.assets").joinpath("bpe_simple_vocab_16e6.txt.gz").read_bytes()
    merges = gzip.decompress(data).decode("utf-8").split("\n")[1 : _NUM_MERGES + 1]
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [symbol + "</w>" for symbol in symbols]
    tokens += ["".join(merge.split()) for merge in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, merges


def clip_tokenizer(model_max_length: int = CONTEXT_LENGTH) -> CLIPTokenizer:
    """A `CLIPTokenizer` with OpenAI CLIP's vocabulary (the one of `openai/clip-vit-base-patch32`), built offline."""
    vocabulary, merges = _vocabulary_and_merges()
    return without_unicode_normalization(CLIPTokenizer(
        vocab=dict(vocabulary), merges=[tuple(merge.split()) for merge in merges], model_max_length=model_max_length
    ))


__all__ = ["CONTEXT_LENGTH", "clip_tokenizer"]

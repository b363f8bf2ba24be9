"""Shared text-side helpers for the CLIP-style (causal) text towers of SEEM and LSeg."""

from __future__ import annotations

import html
import logging
import re

import torch

logger = logging.getLogger(__name__)
# Printable ASCII, tab and line breaks without "&": text that ftfy and the HTML un-escaping leave as it is (up to
# line breaks, which the whitespace collapse removes), so that the cleaning of prompt templates costs nothing.
_PLAIN_TEXT = re.compile(r"[ -%'-~\t\n\r]*")


def clean_text(text: str) -> str:
    """CLIP's own text cleaning, applied before its BPE (OpenAI CLIP's and open_clip's `SimpleTokenizer`): ftfy's
    `fix_text` (mojibake, curly quotes, ligatures, full-width letters), HTML entities un-escaped twice (so
    `"&amp;lt;"` becomes `"<"`), runs of whitespace collapsed to one space, lower case
    (U+0345 counted as a space, as CLIP's word split does). transformers'
    `CLIPTokenizer` does only the last two, so the processors clean every text with this first.

    Without `ftfy` installed (`pip install ftfy`) the ftfy step is skipped, with a warning: texts that ftfy would
    change then tokenise differently from CLIP's."""
    if _PLAIN_TEXT.fullmatch(text):
        return " ".join(text.split()).lower()
    try:
        import ftfy
    except ImportError:
        if not getattr(clean_text, "_warned", False):
            logger.warning("ftfy is not installed: texts are cleaned without ftfy.fix_text, so mojibake, curly "
                           "quotes and ligatures tokenise differently from CLIP's own tokenizer (pip install ftfy).")
            clean_text._warned = True
    else:
        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    # CLIP splits words with the `regex` package, case-insensitively, and that split never matches U+0345 (the
    # combining ypogegrammeni, whose case fold is a letter): for CLIP it separates pieces like a space. It is the
    # only code point whose split differs from the `tokenizers` one (every assigned code point checked, alone and
    # between letters, digits and punctuation); ftfy makes it from mojibake such as "Í\x85".
    return " ".join(text.lower().replace("\u0345", " ").split())


def without_unicode_normalization(tokenizer):
    """`tokenizer` with its backend's NFC step removed (whitespace runs and lower case kept). transformers' CLIP
    tokenizer normalises to NFC, which reorders stacked combining marks ("İ" lowers to "i" + U+0307, and a mark of
    another class after it swaps places); CLIP's own `SimpleTokenizer` never normalises, so with NFC such texts
    get other ids than the ones SEEM and LSeg were trained on. The processors apply this to any tokenizer they
    are given or load."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and "NFC" in repr(backend.normalizer):
        from tokenizers import Regex, normalizers

        backend.normalizer = normalizers.Sequence([normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    return tokenizer


def trim_after_end_of_text(
    input_ids: torch.Tensor, eos_token_id: int, attention_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Drop the columns after the last row's first end-of-text token.

    A CLIP text tower attends causally and pools each row at its first end-of-text token, so nothing after that
    token can change the pooled embedding: cutting the padding (prompts are padded to 77 tokens, most labels
    need 5-12) gives the same embeddings exactly, for a fraction of the work. A row without the token pools at
    position 0 (transformers' rule), which the cut keeps too.
    """
    first_end = (input_ids == eos_token_id).int().argmax(-1)
    length = int(first_end.max()) + 1 if input_ids.numel() else input_ids.shape[-1]
    trimmed_mask = None if attention_mask is None else attention_mask[..., :length]
    return input_ids[..., :length], trimmed_mask


__all__ = ["clean_text", "trim_after_end_of_text", "without_unicode_normalization"]

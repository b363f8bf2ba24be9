"""Cutting the padding after the end-of-text token changes no text embedding (SEEM's and LSeg's towers)."""

from __future__ import annotations

import torch

from seem_hf import LSegForSemanticSegmentation, SeemForUniversalSegmentation
from seem_hf.text_utils import trim_after_end_of_text

EOS = 49407


def label_ids(lengths, width=77, pad=EOS):
    """Rows of SOT, random tokens, EOT, then `pad` (the tokenizers pad with EOT) up to `width`."""
    rows = torch.full((len(lengths), width), pad)
    for row, length in enumerate(lengths):
        rows[row, 0] = 49406
        rows[row, 1 : length + 1] = torch.randint(300, 40000, (length,))
        rows[row, length + 1] = EOS
    return rows


def test_cut_keeps_every_row_up_to_its_end_of_text():
    ids, mask = label_ids([2, 5, 1]), torch.ones(3, 77, dtype=torch.long)
    trimmed, trimmed_mask = trim_after_end_of_text(ids, EOS, mask)
    assert trimmed.shape == (3, 7) and trimmed_mask.shape == (3, 7)
    assert torch.equal(trimmed, ids[:, :7])
    no_end = torch.randint(300, 40000, (2, 9))  # no end-of-text: pooled at 0, so one column is enough and exact
    assert trim_after_end_of_text(no_end, EOS)[0].shape == (2, 1)


def test_seem_label_embeddings_equal_the_uncut_tower(tiny_seem_folder):
    model = SeemForUniversalSegmentation.from_pretrained(tiny_seem_folder).eval()
    ids = label_ids([3, 7, 1, 4]).view(2, 2, 77)  # two labels, two prompts each
    encoder = model.language_encoder
    with torch.no_grad():
        pooled = encoder.lang_proj(encoder.text_model(input_ids=ids.flatten(0, 1)).pooler_output)
        expected = torch.nn.functional.normalize(
            torch.nn.functional.normalize(pooled, dim=-1, eps=1e-7).view(2, 2, -1).mean(1), dim=-1
        )
        torch.testing.assert_close(model.get_text_features(ids), expected, atol=1e-6, rtol=1e-6)


def test_lseg_label_embeddings_equal_the_uncut_tower(tiny_lseg_folder):
    model = LSegForSemanticSegmentation.from_pretrained(tiny_lseg_folder).eval()
    ids = label_ids([3, 9, 1])
    mask = (torch.arange(77)[None] <= torch.tensor([4, 10, 2])[:, None]).long()
    with torch.no_grad():
        expected = model.text_encoder(input_ids=ids, attention_mask=mask).text_embeds
        torch.testing.assert_close(model.get_text_features(ids, mask), expected, atol=1e-6, rtol=1e-6)

"""LSeg's semantic post-processing (issue 19: no full-size resize of every label) against transformers' DPT rule."""

from types import SimpleNamespace

import pytest
import torch
from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

from seem_hf import LSegImageProcessor


@pytest.mark.parametrize("seed", range(3))
def test_semantic_equals_transformers_dpt_rule(seed):
    generator = torch.Generator().manual_seed(seed)
    outputs = SimpleNamespace(logits=torch.randn(2, 7, 32, 40, generator=generator) * 5)
    processor = LSegImageProcessor()
    sizes = [(150, 190), (17, 23)]  # enlarged and reduced
    ours = processor.post_process_semantic_segmentation(outputs, target_sizes=sizes)
    theirs = DPTImageProcessorPil.post_process_semantic_segmentation(processor, outputs, target_sizes=sizes)
    for result, expected, size in zip(ours, theirs, sizes):
        assert result.shape == size and result.dtype == expected.dtype
        # boundary pixels are interpolated apart from torch's resize: only ties within ~1e-6 could differ, and
        # random logits of scale 5 have none here
        assert torch.equal(result, expected)
    unresized = processor.post_process_semantic_segmentation(outputs)[0]
    assert torch.equal(unresized, outputs.logits[0].argmax(0))

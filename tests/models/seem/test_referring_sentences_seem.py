"""Referring sentences through SeemProcessor as a user calls it: SEEM's grounding queries see the tokens of every
sentence of an image (so answers depend on the other sentences, as in the original), and
`independent_sentences=True` gives each sentence the answer it gets alone; clear errors for empty prompt lists."""

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import AutoModel, AutoProcessor

from seem_hf.testing import FIXTURES

SENTENCES = ["the left part", "a red circle on top"]


@pytest.fixture(scope="module")
def loaded():
    folder = FIXTURES / "tiny-random-seem"
    return AutoModel.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)


def _image(seed=0):
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 255, (50, 70, 3), dtype=np.uint8))


def _answers(model, processor, images, sentences, **options):
    sizes = [(50, 70)] * (len(images) if isinstance(images, list) else 1)
    inputs = processor(images=images, sentences=sentences, **options)
    with torch.no_grad():
        outputs = model(**inputs)
    extra = {}
    if options.get("independent_sentences"):
        per_image = sentences if isinstance(images, list) else [sentences]
        extra["sentences_per_image"] = [len(s) for s in per_image]
    return processor.post_process_referring_segmentation(outputs, target_sizes=sizes, top_k=3, mask_threshold=0.0,
                                                         **extra)


def test_independent_sentences_answer_as_alone(loaded):
    model, processor = loaded
    alone = [_answers(model, processor, _image(), [sentence])[0][0] for sentence in SENTENCES]
    joint = _answers(model, processor, _image(), SENTENCES)[0]
    independent = _answers(model, processor, _image(), SENTENCES, independent_sentences=True)[0]
    # SEEM's behaviour: in one pass the sentences see each other's tokens, so the scores move (documented).
    assert not all(torch.allclose(a["scores"], j["scores"]) for a, j in zip(alone, joint))
    for index, (a, i) in enumerate(zip(alone, independent)):
        assert i["sentence_index"] == index
        assert torch.equal(a["query_indices"], i["query_indices"])
        # the same computation in a batch of two rows instead of one: equal up to float rounding of batched kernels
        torch.testing.assert_close(a["scores"], i["scores"], rtol=1e-5, atol=1e-6)
        assert a["masks"].shape == i["masks"].shape


def test_independent_sentences_for_a_batch_of_images(loaded):
    model, processor = loaded
    images, sentences = [_image(0), _image(1)], [SENTENCES, ["the right part"]]
    independent = _answers(model, processor, images, sentences, independent_sentences=True)
    assert [len(answers) for answers in independent] == [2, 1]
    alone = _answers(model, processor, _image(1), ["the right part"])[0][0]
    torch.testing.assert_close(independent[1][0]["scores"], alone["scores"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arguments, message", [
    (dict(sentences=[]), "sentences is empty"),
    (dict(sentences=[["a"], ["b"]]), "2 images but 1 image"),
    (dict(visual_prompts=[]), "visual_prompts is empty"),
    (dict(sentences=["a"], visual_prompts=[{"points": [(1, 1)]}], independent_sentences=True),
     "visual prompts in a call"),
])
def test_prompt_lists_errors_name_the_argument(loaded, arguments, message):
    with pytest.raises(ValueError, match=message):
        loaded[1](images=_image(), **arguments)


def test_sentences_per_image_must_match_the_rows(loaded):
    model, processor = loaded
    inputs = processor(images=_image(), sentences=SENTENCES, independent_sentences=True)
    with torch.no_grad():
        outputs = model(**inputs)
    with pytest.raises(ValueError, match="sentences_per_image"):
        processor.post_process_referring_segmentation(outputs, sentences_per_image=[3])

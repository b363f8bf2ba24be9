"""SEEM's referring and interactive query groups on a tiny config: the visibility rules, prompt sampling, the
property SEEM was built for (generic outputs do not change when prompts are added), seeded repeatability, cached
image features across rounds, and the grounding and spatial losses."""

import pytest
import torch

from seem_hf.models.seem.modeling_seem import SeemForUniversalSegmentation
from seem_hf.models.seem.modeling_seem_prompts import (
    prompt_embeddings,
    sample_prompt_pixels,
    self_attention_visibility,
)
from seem_hf.testing import tiny_seem_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = SeemForUniversalSegmentation(tiny_seem_config()).eval()
    with torch.no_grad():  # non-trivial prompt parameters (they start as N(0, 1) embeddings and random projections)
        model.decoder.pn_indicator.weight.mul_(0.5)
    return model


def _labels(count):
    ids = torch.full((count, 77), 49407)
    ids[:, 0], ids[:, 1] = 49406, torch.arange(320, 320 + count)
    return ids


def _sentences(batch, num_sentences, real):
    """`real[b]` real sentences of different lengths in image b, the rest padding."""
    ids = torch.full((batch, num_sentences, 77), 49407)
    attention = torch.zeros(batch, num_sentences, 77, dtype=torch.long)
    for image in range(batch):
        for sentence in range(real[image]):
            length = 3 + sentence
            ids[image, sentence, 0] = 49406
            ids[image, sentence, 1 : length - 1] = torch.arange(400, 400 + length - 2) + 7 * image
            attention[image, sentence, :length] = 1
    return ids, attention


def _clicks(batch, num_prompts, size=(64, 96)):
    positive = torch.zeros(batch, num_prompts, *size, dtype=torch.bool)
    negative = torch.zeros_like(positive)
    for image in range(batch):
        for prompt in range(num_prompts):
            y, x = 10 + 20 * prompt, 15 + 30 * image + 10 * prompt
            positive[image, prompt, y : y + 3, x : x + 3] = True
            negative[image, prompt, 60:63, 90:93] = prompt == 0
    return positive, negative


def test_visibility_rules():
    """Rows: 2 object, 2 grounding, 4 spatial (2 prompts x 2), 3 memories, 2 text tokens (1 padding), 3 visual
    tokens (prompts 0, 1 and padding)."""
    visible = self_attention_visibility(
        1, 2, 2, text_padding=torch.tensor([[False, True]]), spatial_prompt_index=torch.tensor([0, 0, 1, 1]),
        memory_prompt_index=torch.tensor([0, 1, 1]), token_prompt_index=torch.tensor([[0, 1, -1]]),
    )[0].int()
    expected = torch.tensor([
        # o o g g s s s s m m m t t v v v
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # object
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],  # grounding
        [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0],  # spatial, prompt 0
        [0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1, 0],  # spatial, prompt 1
        [0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],  # memories
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
        [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],  # text token
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # padded text token
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],  # visual tokens
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ])
    assert torch.equal(visible, expected)


def test_prompt_pixels_are_sampled_with_equal_mass_per_prompt():
    masks = torch.zeros(2, 40, 50, dtype=torch.bool)
    masks[0, :30], masks[1, 35, 10:12] = True, True  # 1500 pixels against 2
    generator = torch.Generator().manual_seed(0)
    index, points = sample_prompt_pixels(masks, 20, generator)
    assert len(index) == 20 and index.tolist() == sorted(index.tolist())
    assert (index == 1).sum() == 2  # the small prompt keeps both its pixels
    pixels = (points * torch.tensor([40.0, 50.0])).round().long()
    assert masks[index, pixels[:, 0], pixels[:, 1]].all()  # every sample is a pixel of its own prompt
    assert sample_prompt_pixels(torch.zeros(1, 4, 4, dtype=torch.bool), 5)[0].numel() == 0
    # a prompt's embedding is the mean feature over its sampled pixels, -1 when it has none
    features = torch.arange(2 * 10 * 12, dtype=torch.float32).view(1, 2, 10, 12)
    single = torch.zeros(1, 2, 40, 48, dtype=torch.bool)
    single[0, 0, 20, 24] = True
    embeddings = prompt_embeddings(features, single, 8)
    grid = torch.nn.functional.grid_sample(features, torch.tensor([[[[2 * 24 / 48 - 1, 2 * 20 / 40 - 1]]]]),
                                           align_corners=True)
    torch.testing.assert_close(embeddings[0, 0], grid.flatten())
    assert torch.equal(embeddings[0, 1], -torch.ones(2))


def test_generic_outputs_do_not_change_when_prompts_are_added(model):
    pixel_values = torch.randn(2, 3, 64, 96)
    features = model.get_image_features(pixel_values)
    ids, attention = _sentences(2, 3, real=[2, 3])
    positive, negative = _clicks(2, 2)
    with torch.no_grad():
        plain = model(image_features=features, input_ids=_labels(4))
        first = model(image_features=features, input_ids=_labels(4), grounding_input_ids=ids,
                      grounding_attention_mask=attention, spatial_positive_masks=positive,
                      spatial_negative_masks=negative, generator=torch.Generator().manual_seed(0))
        second = model(image_features=features, input_ids=_labels(4), grounding_input_ids=ids,
                       grounding_attention_mask=attention, spatial_positive_masks=positive,
                       spatial_negative_masks=negative, previous_masks=first.interactive_masks_logits,
                       generator=torch.Generator().manual_seed(1))
    for prompted in (first, second):
        torch.testing.assert_close(prompted.class_queries_logits, plain.class_queries_logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(prompted.masks_queries_logits, plain.masks_queries_logits, rtol=1e-5, atol=1e-5)
        for ours, theirs in zip(prompted.auxiliary_logits, plain.auxiliary_logits):
            torch.testing.assert_close(ours["masks_queries_logits"], theirs["masks_queries_logits"],
                                       rtol=1e-5, atol=1e-5)
    config = model.config
    assert first.grounding_masks_logits.shape == (2, config.num_queries, 16, 24)
    assert first.grounding_logits.shape == (2, config.num_queries, 3)
    assert first.grounding_sentence_mask.tolist() == [[True, True, False], [True, True, True]]
    assert first.spatial_masks_logits.shape == (2, 3 * 2, 16, 24)
    assert first.interactive_masks_logits.shape == (2, 2, 16, 24)
    assert first.interactive_class_logits.shape == (2, 2, 4)
    # the answer to each prompt is its own best query
    k = config.spatial_queries_per_prompt
    for image in range(2):
        for prompt in range(2):
            scores = first.spatial_logits[image, prompt * k : (prompt + 1) * k, prompt]
            best = prompt * k + int(scores.argmax())
            assert torch.equal(first.interactive_masks_logits[image, prompt], first.spatial_masks_logits[image, best])


def test_referring_outputs_do_not_depend_on_sentence_padding(model):
    """One image's sentences give the same grounding outputs alone and when padded beside a longer batch."""
    pixel_values = torch.randn(1, 3, 64, 96)
    ids, attention = _sentences(1, 2, real=[2])
    padded_ids, padded_attention = _sentences(1, 4, real=[2])
    with torch.no_grad():
        alone = model(pixel_values=pixel_values, grounding_input_ids=ids, grounding_attention_mask=attention)
        padded = model(pixel_values=pixel_values, grounding_input_ids=padded_ids,
                       grounding_attention_mask=padded_attention)
    assert alone.class_queries_logits is None
    torch.testing.assert_close(padded.grounding_masks_logits, alone.grounding_masks_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(padded.grounding_logits[..., :2], alone.grounding_logits, rtol=1e-5, atol=1e-5)


def test_interactive_rounds_repeat_when_seeded_and_reuse_the_image_features(model):
    pixel_values = torch.randn(1, 3, 64, 96)
    positive, negative = _clicks(1, 2)
    calls = []
    hook = model.backbone.register_forward_hook(lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            features = model.get_image_features(pixel_values)
            runs = []
            for _ in range(2):
                generator = torch.Generator().manual_seed(3)
                first = model(image_features=features, spatial_positive_masks=positive, generator=generator)
                follow_up = model(image_features=features, spatial_positive_masks=positive,
                                  spatial_negative_masks=negative, previous_masks=first.interactive_masks_logits,
                                  generator=generator)
                runs.append((first.interactive_masks_logits, follow_up.interactive_masks_logits))
    finally:
        hook.remove()
    assert len(calls) == 1  # the backbone ran once for four decoder passes
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][0], runs[0][1])  # the memory and the negative click change the answer


def test_prompt_losses_train_the_prompt_parameters():
    torch.manual_seed(0)
    model = SeemForUniversalSegmentation(tiny_seem_config()).train()
    ids, attention = _sentences(2, 2, real=[1, 2])
    positive, negative = _clicks(2, 2)
    masks = torch.zeros(2, 64, 96)
    masks[0, :32], masks[1, 32:] = 1, 1
    labels = [
        {"masks": masks, "class_labels": torch.tensor([0, 1]), "grounding_masks": masks[:1], "spatial_masks": masks},
        {"masks": masks[1:], "class_labels": torch.tensor([2]), "grounding_masks": masks,
         "spatial_masks": torch.stack([masks[1], torch.zeros(64, 96)])},  # an empty target is left out
    ]
    first = model(pixel_values=torch.randn(2, 3, 64, 96), spatial_positive_masks=positive,
                  generator=torch.Generator().manual_seed(0))
    outputs = model(pixel_values=torch.randn(2, 3, 64, 96), input_ids=_labels(4), grounding_input_ids=ids,
                    grounding_attention_mask=attention, spatial_positive_masks=positive,
                    spatial_negative_masks=negative, previous_masks=first.interactive_masks_logits.detach(),
                    labels=labels, generator=torch.Generator().manual_seed(0))
    rounds = model.config.decoder_layers + 1
    for name in ("loss_ce", "loss_grounding_ce", "loss_grounding_dice", "loss_spatial_ce", "loss_spatial_mask"):
        assert name in outputs.loss_dict and f"{name}_0" in outputs.loss_dict
        assert torch.isfinite(outputs.loss_dict[name])
    assert len([n for n in outputs.loss_dict if n.startswith("loss_spatial_ce")]) == rounds
    model.zero_grad()
    outputs.loss.backward()
    for name in ("decoder.mask_spatial_embed.0.weight", "decoder.pn_indicator.weight",
                 "decoder.spatial_featured.weight", "decoder.query_feat.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    assert model.get_parameter("language_encoder.lang_proj.weight").grad.abs().sum() > 0  # grounding tokens


def test_spatial_label_loss_is_off_in_seems_recipe_and_adds_the_matched_queries_label_cross_entropy():
    torch.manual_seed(0)
    config = tiny_seem_config()
    model = SeemForUniversalSegmentation(config).train()
    positive, _ = _clicks(1, 2)
    masks = torch.zeros(2, 64, 96)
    masks[0, :32], masks[1, 32:] = 1, 1
    labels = [{"masks": masks, "class_labels": torch.tensor([0, 1]), "spatial_masks": masks,
               "spatial_class_labels": torch.tensor([0, 1])}]
    pixel_values = torch.randn(1, 3, 64, 96)

    def run(weight):
        model.config.spatial_label_weight = weight
        torch.manual_seed(1)  # the mask losses' point sampling
        return model(pixel_values=pixel_values, input_ids=_labels(3), spatial_positive_masks=positive,
                     labels=labels, generator=torch.Generator().manual_seed(0))

    seem, labelled = run(0.0), run(2.0)
    assert not any(name.startswith("loss_spatial_label") for name in seem.loss_dict)  # SEEM's recipe: untouched
    terms = [value for name, value in labelled.loss_dict.items() if name.startswith("loss_spatial_label")]
    assert len(terms) == config.decoder_layers + 1  # every round
    torch.testing.assert_close(labelled.loss - seem.loss, 2.0 * sum(terms))
    # The last round's term is the cross-entropy of each prompt's matched spatial query against its label; the
    # query matched to a prompt is one of its own, the one `spatial_ce` trains to be chosen.
    k = config.spatial_queries_per_prompt
    logits = labelled.spatial_class_logits[0]
    candidates = [torch.nn.functional.cross_entropy(logits[prompt * k + j][None], torch.tensor([prompt]))
                  for prompt in range(2) for j in range(k)]
    assert min(candidates) - 1e-6 <= labelled.loss_dict["loss_spatial_label"] <= max(candidates) + 1e-6
    model.zero_grad()
    sum(terms).backward()
    assert model.get_parameter("decoder.class_embed.weight").grad.abs().sum() > 0
    with pytest.raises(ValueError, match="spatial_label_weight"):
        type(config)(**{**config.to_dict(), "spatial_label_weight": -1.0})


def test_bad_prompts(model):
    pixel_values = torch.randn(1, 3, 64, 96)
    with pytest.raises(ValueError, match="padded input size"):
        model(pixel_values=pixel_values, spatial_positive_masks=torch.zeros(1, 1, 32, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match="one mask per prompt"):
        model(pixel_values=pixel_values, spatial_positive_masks=torch.zeros(1, 2, 64, 96, dtype=torch.bool),
              previous_masks=torch.zeros(1, 3, 16, 24))
    with pytest.raises(ValueError, match="grounding_attention_mask"):
        model(pixel_values=pixel_values, grounding_input_ids=torch.zeros(1, 77, dtype=torch.long))
    with pytest.raises(ValueError, match="label set"):
        model(pixel_values=pixel_values, spatial_positive_masks=_clicks(1, 1)[0],
              labels=[{"masks": torch.zeros(1, 64, 96), "class_labels": torch.tensor([0])}])


def test_click_simulation_adds_one_corrective_click_per_round(model):
    pixel_values = torch.randn(1, 3, 64, 96)
    positive, _ = _clicks(1, 2)
    targets = torch.zeros(2, 64, 96)
    targets[0, 5:40, 10:50], targets[1, 20:60, 30:90] = 1, 1
    positive &= targets.bool()[None]  # the first clicks lie inside their objects
    with torch.no_grad():
        features = model.get_image_features(pixel_values)
        grown_positive, grown_negative, previous = model.simulate_clicks(
            features, positive, None, [targets], rounds=2, generator=torch.Generator().manual_seed(0)
        )
    assert previous.shape == (1, 2, 16, 24)
    for prompt in range(2):
        added = (grown_positive[0, prompt] & ~positive[0, prompt]).sum() + grown_negative[0, prompt].sum()
        assert 9 <= added <= 2 * 9  # a 3 x 3 click per round (fewer where a click overlaps or nothing is wrong)
        # positive clicks land on the object, negative ones off it
        assert not (grown_positive[0, prompt] & ~positive[0, prompt] & ~targets[prompt].bool()).any()
        assert not (grown_negative[0, prompt] & targets[prompt].bool()).any()
    with pytest.raises(ValueError, match="spatial_masks"):
        model(pixel_values=pixel_values, spatial_positive_masks=positive, click_rounds=1)


def test_prompted_outputs_do_not_need_the_object_queries(model):
    """No query group sees another, so a prompted pass without the object queries (generic=False, the default
    when no label set is given) gives the same referring and interactive outputs, for a fraction of the cost."""
    pixel_values = torch.randn(1, 3, 64, 96)
    features = model.get_image_features(pixel_values)
    ids, attention = _sentences(1, 2, real=[2])
    positive, negative = _clicks(1, 2)
    prompts = dict(image_features=features, grounding_input_ids=ids, grounding_attention_mask=attention,
                   spatial_positive_masks=positive, spatial_negative_masks=negative)
    with torch.no_grad():
        full = model(input_ids=_labels(3), generator=torch.Generator().manual_seed(0), **prompts)
        lean = model(input_ids=_labels(3), generic=False, generator=torch.Generator().manual_seed(0), **prompts)
        unlabelled = model(generator=torch.Generator().manual_seed(0), **prompts)
        follow_up = model(previous_masks=full.interactive_masks_logits, generator=torch.Generator().manual_seed(1),
                          **prompts)
        follow_up_full = model(input_ids=_labels(3), previous_masks=full.interactive_masks_logits,
                               generator=torch.Generator().manual_seed(1), **prompts)
    assert lean.masks_queries_logits is None and lean.class_queries_logits is None
    assert unlabelled.masks_queries_logits is None
    for fast in (lean, unlabelled):
        for name in ("grounding_masks_logits", "grounding_logits", "spatial_masks_logits", "interactive_masks_logits"):
            torch.testing.assert_close(fast[name], full[name], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lean.interactive_class_logits, full.interactive_class_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(follow_up.interactive_masks_logits, follow_up_full.interactive_masks_logits,
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="generic=True"):
        model(pixel_values=pixel_values, input_ids=_labels(3), spatial_positive_masks=positive, generic=False,
              labels=[{"masks": torch.zeros(1, 64, 96), "class_labels": torch.tensor([0])}])


def test_sdpa_and_eager_attention_give_the_same_outputs(model):
    """`attn_implementation` reaches the pixel decoder's encoder, the decoder's self-attention (whose padded
    prompt tokens have fully masked rows) and the CLIP text tower; both implementations agree."""
    pixel_values = torch.randn(2, 3, 64, 96)
    ids, attention = _sentences(2, 3, real=[1, 3])
    positive, negative = _clicks(2, 2)
    inputs = dict(pixel_values=pixel_values, input_ids=_labels(4), grounding_input_ids=ids,
                  grounding_attention_mask=attention, spatial_positive_masks=positive,
                  spatial_negative_masks=negative)
    outputs = {}
    try:
        for implementation in ("eager", "sdpa"):
            model.set_attn_implementation(implementation)
            assert model.pixel_decoder.transformer.config._attn_implementation == implementation
            with torch.no_grad():
                outputs[implementation] = model(**inputs, generator=torch.Generator().manual_seed(0))
    finally:
        model.set_attn_implementation("sdpa")
    eager, sdpa = outputs["eager"], outputs["sdpa"]
    for name in ("class_queries_logits", "masks_queries_logits", "grounding_masks_logits", "grounding_logits",
                 "spatial_masks_logits", "interactive_masks_logits"):
        torch.testing.assert_close(getattr(sdpa, name), getattr(eager, name), rtol=1e-4, atol=1e-4, msg=name)

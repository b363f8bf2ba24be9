"""SeemForUniversalSegmentation's generic path on a tiny config: shapes for any label set, deep supervision, the
set loss, cached label embeddings, and the decoder's size in the released config."""

import pytest
import torch

from seem_hf.models.seem.configuration_seem import SeemConfig
from seem_hf.models.seem.modeling_seem import SeemForUniversalSegmentation
from seem_hf.models.seem.modeling_seem_decoder import SeemDecoder, SeemSelfAttention
from seem_hf.testing import tiny_seem_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SeemForUniversalSegmentation(tiny_seem_config()).eval()


def _prompts(count):
    ids = torch.full((count, 77), 49407)
    ids[:, 0], ids[:, 1] = 49406, torch.arange(320, 320 + count)
    return ids


def test_generic_outputs(model):
    with torch.no_grad():
        outputs = model(pixel_values=torch.randn(2, 3, 64, 96), input_ids=_prompts(5))
    config = model.config
    assert outputs.class_queries_logits.shape == (2, config.num_queries, 5)
    assert outputs.masks_queries_logits.shape == (2, config.num_queries, 16, 24)
    assert len(outputs.auxiliary_logits) == config.decoder_layers  # rounds before the last one
    with torch.no_grad():
        cached = model(pixel_values=torch.randn(2, 3, 64, 96), class_embeddings=outputs.class_embeddings)
    assert cached.class_queries_logits.shape == outputs.class_queries_logits.shape


def test_several_prompts_per_label_are_averaged(model):
    ids = torch.stack([_prompts(3), _prompts(3).roll(1, 0)], dim=1)  # 3 labels x 2 prompts
    with torch.no_grad():
        averaged = model.get_text_features(ids)
        single = [model.get_text_features(ids[:, k]) for k in range(2)]
    expected = torch.nn.functional.normalize((single[0] + single[1]) / 2, dim=-1)
    torch.testing.assert_close(averaged, expected)
    torch.testing.assert_close(averaged.norm(dim=-1), torch.ones(3))


def test_loss_supervises_every_round_and_trains_the_decoder():
    torch.manual_seed(0)
    model = SeemForUniversalSegmentation(tiny_seem_config()).train()
    masks = torch.zeros(2, 64, 64)
    masks[0, :32], masks[1, 32:] = 1, 1
    outputs = model(pixel_values=torch.randn(2, 3, 64, 64), input_ids=_prompts(4),
                    mask_labels=[masks, masks[:1]], class_labels=[torch.tensor([0, 2]), torch.tensor([1])])
    assert outputs.loss.ndim == 0 and torch.isfinite(outputs.loss)
    assert {f"loss_dice_{i}" for i in range(model.config.decoder_layers)} <= set(outputs.loss_dict)
    outputs.loss.backward()
    for name in ("decoder.query_feat.weight", "decoder.mask_embed.layers.2.weight", "pixel_decoder.mask_features.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_fully_masked_rows_attend_to_nothing_instead_of_nan():
    attention = SeemSelfAttention(8, 2)
    x = torch.randn(1, 3, 8)
    mask = torch.zeros(2, 3, 3, dtype=torch.bool)
    mask[:, 0] = True  # the first token may attend to nothing
    out = attention(x, x, x, mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 0], attention.out_proj.bias)


def test_decoder_size_equals_the_released_decoder():
    """The released decoder (without the language encoder) is 39,812,608 parameters, visual-prompt parts included
    (3 level projections of 512 x 512, 32 + 32 memory embeddings and 2 point indicators of 512)."""
    with torch.device("meta"):
        decoder = SeemDecoder(SeemConfig())
    assert sum(p.numel() for p in decoder.parameters()) == 39_812_608
    prompt_parts = (decoder.mask_spatial_embed, decoder.pn_indicator, decoder.spatial_featured, decoder.spatial_embed)
    assert sum(p.numel() for part in prompt_parts for p in part.parameters()) == 3 * 512 * 512 + 2 * 32 * 512 + 2 * 512


def test_bad_inputs(model):
    with pytest.raises(ValueError, match="either as input_ids"):
        model(pixel_values=torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="pixel_values"):
        model(pixel_values=torch.randn(1, 64, 64), input_ids=_prompts(2))
    with pytest.raises(ValueError, match="go together"):
        model(pixel_values=torch.randn(1, 3, 64, 64), input_ids=_prompts(2), mask_labels=[torch.zeros(1, 64, 64)])


def test_seem_s_recipe_trains_the_released_decoder_only():
    """The fine-tuning fork's log: freezing the backbone and tuning the head trains 39,812,608 parameters (SEEM
    freezes its backbone, language encoder and pixel decoder); adapting the head keeps the pixel decoder frozen."""
    from seem_hf.adapters import count_parameters, prepare_for_fine_tuning

    with torch.device("meta"):
        model = SeemForUniversalSegmentation(SeemConfig())
    tuned = prepare_for_fine_tuning(model, "freeze_backbone_tune_head")
    assert count_parameters(tuned)["trainable"] == 39_812_608
    with torch.device("meta"):
        model = SeemForUniversalSegmentation(SeemConfig())
    adapted = prepare_for_fine_tuning(model, "freeze_backbone_adapt_head", bottleneck_size=256)
    trainable = [name for name, parameter in adapted.named_parameters() if parameter.requires_grad]
    assert trainable and not [name for name in trainable if "pixel_decoder" in name or "language_encoder" in name]
    assert any("decoder_norm" in name for name in trainable)
    # PEFT saves modules whose name *ends with* a listed one: "decoder" must not drag "pixel_decoder" along
    with torch.device("meta"):
        model = SeemForUniversalSegmentation(SeemConfig())
    both = prepare_for_fine_tuning(model, "adapt_backbone_tune_head")
    counts = count_parameters(both)
    assert counts["trainable"] == 39_812_608 + counts["adapters"]
    assert not [name for name, p in both.named_parameters() if p.requires_grad and "pixel_decoder" in name]


def test_interactive_answers_repeat_in_eval_mode_without_a_generator():
    """Issue 14: the same image and prompts give the same masks on every call (SEEM's random draws come from a fixed
    seed in eval mode), through the processor and the Auto classes as a user calls them; training keeps SEEM's
    randomness."""
    import numpy as np
    import PIL.Image
    from transformers import AutoModel, AutoProcessor

    from seem_hf.testing import FIXTURES

    model = AutoModel.from_pretrained(FIXTURES / "tiny-random-seem").eval()
    processor = AutoProcessor.from_pretrained(FIXTURES / "tiny-random-seem")
    image = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    # a scribble covers more pixels than the tiny model samples (16), so pixel sampling is a draw too
    inputs = processor(images=image, visual_prompts=[{"points": [(20, 20)]},
                                                     {"scribbles": [[(5, 40), (60, 45), (30, 60)]]}])
    prompts = {key: inputs[key] for key in ("spatial_positive_masks", "spatial_negative_masks")}

    def session():
        features = model.get_image_features(inputs["pixel_values"])
        first = model(image_features=features, **prompts)
        second = model(image_features=features, previous_masks=first.interactive_masks_logits, **prompts)
        return first.interactive_masks_logits, second.interactive_masks_logits

    with torch.no_grad():
        runs = [session() for _ in range(3)]
        # Same computation, same inputs, same draws: equal to the bit.
        assert all(torch.equal(run[0], runs[0][0]) and torch.equal(run[1], runs[0][1]) for run in runs)
        model.train()
        try:
            torch.manual_seed(0)
            trained_runs = [session()[0] for _ in range(3)]
        finally:
            model.eval()
    assert not all(torch.equal(run, trained_runs[0]) for run in trained_runs)  # training draws at random

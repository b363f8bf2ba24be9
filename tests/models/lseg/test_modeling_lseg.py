"""LSegForSemanticSegmentation on tiny configs: shapes, any label count, cached text embeddings, loss and a frozen
text tower, parity with transformers' own DPT and CLIP modules, spatial blocks, save/load, Auto classes, the
pipeline, remote code, the default config's size, and clear errors."""


import numpy as np
import PIL.Image
import pytest
import torch
from torch.nn import functional as F
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSemanticSegmentation,
    AutoProcessor,
    CLIPTextModelWithProjection,
    DPTModel,
    pipeline,
)
from transformers.models.dpt.modeling_dpt import DPTNeck

from seem_hf import LSegConfig, LSegForSemanticSegmentation, LSegProcessor, LSegSemanticSegmentationOutput
from seem_hf.testing import TINY_LABELS, tiny_lseg_config

from ...helpers import run_without_seem_hf


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LSegForSemanticSegmentation(tiny_lseg_config()).eval()


def _label_ids(count: int, length: int = 77) -> torch.Tensor:
    ids = torch.full((count, length), 49407)
    ids[:, 0] = 49406
    ids[:, 1] = torch.arange(320, 320 + count)
    return ids


def test_forward_shapes_for_any_label_count(model):
    pixel_values = torch.randn(2, 3, 64, 96)
    for count in (1, 3, 7):
        with torch.no_grad():
            outputs = model(pixel_values=pixel_values, input_ids=_label_ids(count))
        assert isinstance(outputs, LSegSemanticSegmentationOutput)
        assert outputs.logits.shape == (2, count, 64, 96)
        assert outputs.class_embeddings.shape == (count, 24) and outputs.pixel_embeddings.shape == (2, 24, 32, 48)
        assert outputs.loss is None
    # cosine similarity over a fixed temperature of 0.07
    assert outputs.logits.abs().max() <= 1 / 0.07 + 1e-4


def test_cached_class_embeddings_give_the_same_logits(model):
    pixel_values = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        from_text = model(pixel_values=pixel_values, input_ids=_label_ids(4))
        cached = model(pixel_values=pixel_values, class_embeddings=from_text.class_embeddings)
        # a new label set on the same image reuses its pixel embeddings
        new_labels = model(pixel_embeddings=from_text.pixel_embeddings, input_ids=_label_ids(2))
        expected = model(pixel_values=pixel_values, input_ids=_label_ids(2))
    # the cached paths skip work, not maths; float32 kernels may still block differently per call
    torch.testing.assert_close(from_text.logits, cached.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(new_labels.logits, expected.logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="either as pixel_values or as pixel_embeddings"):
        model(pixel_values=pixel_values, pixel_embeddings=from_text.pixel_embeddings, input_ids=_label_ids(2))


def test_parity_with_transformers_modules(model):
    """The same logits computed from transformers' DPTModel, DPTNeck and CLIPTextModelWithProjection loaded from the
    model's state dict, and the LSeg head written out."""
    config, state = model.config, model.state_dict()
    dpt = DPTModel(config.vision_config, add_pooling_layer=False).eval()
    dpt.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("dpt.")})
    neck = DPTNeck(config.vision_config).eval()
    neck.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("neck.")})
    text = CLIPTextModelWithProjection(config.text_config).eval()
    text.load_state_dict({k[13:]: v for k, v in state.items() if k.startswith("text_encoder.")})
    pixel_values, ids = torch.randn(2, 3, 64, 96), _label_ids(3)
    with torch.no_grad():
        hidden = dpt(pixel_values, output_hidden_states=True).hidden_states
        fused = neck([hidden[i + 1] for i in config.vision_config.backbone_out_indices], 4, 6)[-1]
        pixels = F.normalize(F.conv2d(fused, state["head.weight"], state["head.bias"]), dim=1)
        texts = F.normalize(text(input_ids=ids).text_embeds, dim=-1)
        expected = F.interpolate(torch.einsum("bchw,kc->bkhw", pixels, texts) / 0.07, scale_factor=2,
                                 mode="bilinear", align_corners=True)
        actual = model(pixel_values=pixel_values, input_ids=ids).logits
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)


def test_loss_trains_the_image_side_only():
    torch.manual_seed(0)
    model = LSegForSemanticSegmentation(tiny_lseg_config()).train()
    labels = torch.randint(0, 3, (2, 64, 64))
    labels[0, :8] = 255  # ignored
    outputs = model(pixel_values=torch.randn(2, 3, 64, 64), input_ids=_label_ids(3), labels=labels)
    manual = F.cross_entropy(outputs.logits, labels, ignore_index=255)
    torch.testing.assert_close(outputs.loss, manual)
    outputs.loss.backward()
    assert all(p.grad is None for p in model.text_encoder.parameters())  # frozen, as in the original
    assert model.head.weight.grad.abs().sum() > 0 and model.dpt.embeddings.cls_token.grad is not None


@pytest.mark.parametrize("arch_option", [1, 2])
def test_spatial_regularisation_blocks(arch_option):
    torch.manual_seed(0)
    model = LSegForSemanticSegmentation(tiny_lseg_config(arch_option=arch_option, block_depth=2)).eval()
    plain = LSegForSemanticSegmentation(tiny_lseg_config()).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("spatial_block")})
    pixel_values, ids = torch.randn(1, 3, 64, 64), _label_ids(5)
    with torch.no_grad():
        before = plain(pixel_values=pixel_values, input_ids=ids).logits
        after = model(pixel_values=pixel_values, input_ids=ids).logits
        # undo the x2 upsampling by recomputing at half resolution
        low = F.interpolate(before, scale_factor=0.5, mode="bilinear", align_corners=True)
    weight, bias = model.spatial_block.depthwise.weight, model.spatial_block.depthwise.bias

    def block(x, activate):
        out = F.conv2d(x.reshape(-1, 1, *x.shape[-2:]), weight, bias, padding=1).view_as(x)
        if arch_option == 1:
            out = out + x.max(1, keepdim=True).values
        return F.leaky_relu(out) if activate else out

    with torch.no_grad():
        half = plain(pixel_values=pixel_values, input_ids=ids)
        pixels = F.normalize(half.pixel_embeddings, dim=1)
        texts = F.normalize(half.class_embeddings, dim=-1)
        raw = torch.einsum("bchw,kc->bkhw", pixels, texts) / 0.07
        expected = F.interpolate(block(block(raw, True), False), scale_factor=2, mode="bilinear", align_corners=True)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)
    assert low.shape[-1] == 32


def test_save_reload_and_auto_classes(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LSegConfig)
    for auto_class in (AutoModel, AutoModelForSemanticSegmentation):
        reloaded = auto_class.from_pretrained(tmp_path).eval()
        assert isinstance(reloaded, LSegForSemanticSegmentation)
    pixel_values, ids = torch.randn(1, 3, 64, 64), _label_ids(2)
    with torch.no_grad():
        assert torch.equal(model(pixel_values, ids).logits, reloaded(pixel_values, ids).logits)
    assert all(not p.requires_grad for p in reloaded.text_encoder.parameters())


def test_default_config_is_the_released_vit_l16_model():
    """Reference sizes: timm's `vit_large_patch16_384` has 304,715,752 parameters, of which its 1000-class head
    (1024 x 1000 + 1000, unused by LSeg) is 1,025,000; OpenAI CLIP ViT-B/32 has 151,277,313 of which 87,849,216
    are the image tower and 1 the logit scale. The DPT neck is counted from lang-seg's module definitions
    (`_make_vit_b16_backbone` readout and reassembly, `_make_scratch`, `FeatureFusionBlock_custom` with bn)."""
    with torch.device("meta"):
        model = LSegForSemanticSegmentation(LSegConfig())

    def count(module):
        return sum(p.numel() for p in module.parameters())

    assert count(model.dpt) == 304_715_752 - 1_025_000
    assert count(model.text_encoder) == 151_277_313 - 87_849_216 - 1
    width, features, fusion = 1024, [256, 512, 1024, 1024], 256
    readout = 4 * (2 * width * width + width)
    projections = sum(width * f + f for f in features)
    resize = (256 * 256 * 16 + 256) + (512 * 512 * 4 + 512) + (1024 * 1024 * 9 + 1024)
    layer_rn = sum(f * fusion * 9 for f in features)
    refinenets = 4 * (4 * fusion * fusion * 9 + 4 * 2 * fusion + fusion * fusion + fusion)
    assert count(model.neck) == readout + projections + resize + layer_rn + refinenets
    assert count(model.head) == 256 * 512 + 512
    assert count(model) == 406_262_272


def test_vit_b32_variant_sizes():
    """timm's `vit_base_patch32_384`: 88,297,192 parameters with its 769,000-parameter classifier head."""
    from seem_hf.models.lseg import lseg_vision_config

    with torch.device("meta"):
        model = LSegForSemanticSegmentation(LSegConfig(vision_config=lseg_vision_config("vit_b32")))
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(model.dpt) == 88_297_192 - 769_000
    width, features, fusion = 768, [96, 192, 384, 768], 256
    readout = 4 * (2 * width * width + width)
    projections = sum(width * f + f for f in features)
    resize = (96 * 96 * 64 + 96) + (192 * 192 * 16 + 192) + (384 * 384 * 4 + 384)  # ConvT k8 s8, k4 s4, k2 s2
    layer_rn = sum(f * fusion * 9 for f in features)
    refinenets = 4 * (4 * fusion * fusion * 9 + 4 * 2 * fusion + fusion * fusion + fusion)
    assert count(model.neck) == readout + projections + resize + layer_rn + refinenets


def test_bad_inputs_raise_clear_errors(model):
    with pytest.raises(ValueError, match="multiples of 32"):
        model(pixel_values=torch.randn(1, 3, 60, 64), input_ids=_label_ids(2))
    with pytest.raises(ValueError, match="either as input_ids"):
        model(pixel_values=torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="num_labels, sequence_length"):
        model(pixel_values=torch.randn(1, 3, 64, 64), input_ids=_label_ids(2)[None])
    with pytest.raises(ValueError, match="empty"):
        model(pixel_values=torch.randn(1, 3, 64, 64), input_ids=_label_ids(0))
    with pytest.raises(ValueError, match="labels must be"):
        model(pixel_values=torch.randn(1, 3, 64, 64), input_ids=_label_ids(2), labels=torch.zeros(1, 32, 32))
    with pytest.raises(ValueError, match="projection_dim"):
        LSegConfig(embedding_dim=256)
    with pytest.raises(ValueError, match="block_depth"):
        LSegConfig(arch_option=1)


def test_pipeline_uses_the_stored_label_set_or_the_call_s(tiny_lseg_folder):
    segmenter = pipeline("image-segmentation", model=str(tiny_lseg_folder))
    image = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8))
    results = segmenter(image)
    assert results and all(r["label"] in TINY_LABELS.values() for r in results)
    assert all(r["mask"].size == (80, 48) for r in results)
    masks = sum(np.asarray(r["mask"]) > 0 for r in results)
    assert (masks == 1).all()  # every pixel gets exactly one label
    custom = segmenter(image, labels=["a cat", "a wooden table"])
    assert {r["label"] for r in custom} <= {"a cat", "a wooden table"}
    with pytest.raises(ValueError, match="distinct"):
        segmenter(image, labels=["cat", "cat"])
    # the call's label set is scored by the model: the same as the model called directly
    processor = AutoProcessor.from_pretrained(tiny_lseg_folder)
    model = AutoModel.from_pretrained(tiny_lseg_folder)
    inputs = processor(images=image, text=["a cat", "a wooden table"], return_tensors="pt")
    with torch.no_grad():
        expected = processor.post_process_semantic_segmentation(model(**inputs), target_sizes=[(48, 80)])[0]
    for result in custom:
        label = ["a cat", "a wooden table"].index(result["label"])
        assert np.array_equal(np.asarray(result["mask"]) > 0, expected.numpy() == label)


def test_remote_code_loads_without_seem_hf(tmp_path, tiny_lseg_folder):
    folder = tmp_path / "checkpoint"  # saved for sharing: the folder gets its bundled code
    model = LSegForSemanticSegmentation.from_pretrained(tiny_lseg_folder).eval()
    processor = LSegProcessor.from_pretrained(tiny_lseg_folder)
    model.save_pretrained(folder), processor.save_pretrained(folder)
    inputs = processor(images=np.zeros((40, 50, 3), dtype=np.uint8), return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).logits
    torch.save({"inputs": dict(inputs), "expected": expected}, tmp_path / "data.pt")
    output = run_without_seem_hf(
        f"""
        import numpy as np, torch
        from transformers import AutoModel, AutoModelForSemanticSegmentation, AutoProcessor, pipeline
        folder = {str(folder)!r}
        model = AutoModelForSemanticSegmentation.from_pretrained(folder, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        print(type(model).__name__, type(processor).__name__, type(processor.tokenizer).__name__)
        data = torch.load({str(tmp_path / "data.pt")!r}, weights_only=True)
        inputs = processor(images=np.zeros((40, 50, 3), dtype=np.uint8), return_tensors="pt")
        print("inputs", all(torch.equal(inputs[k], data["inputs"][k]) for k in data["inputs"]))
        with torch.no_grad():
            print("difference", float((model(**inputs).logits - data["expected"]).abs().max()))
        segmenter = pipeline("image-segmentation", model=folder, trust_remote_code=True)
        from PIL import Image  # transformers' own pipeline (seem_hf's is not there) reads PIL images
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
        print("pipeline", sorted(r["label"] for r in segmenter(image)))
        """
    )
    lines = output.strip().splitlines()
    assert lines[0] == "LSegForSemanticSegmentation LSegProcessor CLIPTokenizer"
    assert lines[1] == "inputs True"
    assert lines[2] == "difference 0.0"
    assert lines[3].startswith("pipeline [") and lines[3] != "pipeline []"


def test_attention_implementation_reaches_the_vit_and_the_text_tower(tiny_lseg_folder):
    pixel_values, ids = torch.randn(1, 3, 64, 64), torch.randint(300, 40000, (3, 6))
    outputs = {}
    for implementation in ("eager", "sdpa"):
        model = LSegForSemanticSegmentation.from_pretrained(tiny_lseg_folder, attn_implementation=implementation)
        assert model.dpt.config._attn_implementation == implementation
        assert model.text_encoder.config._attn_implementation == implementation
        with torch.no_grad():
            outputs[implementation] = model.eval()(pixel_values=pixel_values, input_ids=ids).logits
    torch.testing.assert_close(outputs["sdpa"], outputs["eager"], rtol=1e-4, atol=1e-4)

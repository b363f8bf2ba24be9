"""DetrPanopticForSegmentation: shapes, loss, save/load, parity with transformers' DetrForSegmentation, the
timm checkpoint layout, Auto classes and remote code."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageSegmentation,
    AutoModelForUniversalSegmentation,
    AutoProcessor,
    DetrConfig,
    DetrForSegmentation,
    ResNetConfig,
)

from seem_hf import (
    DetrPanopticConfig,
    DetrPanopticForSegmentation,
    DetrPanopticImageProcessor,
    DetrPanopticProcessor,
    DetrPanopticSegmentationOutput,
)
from seem_hf.models.detr_panoptic.modeling_detr_panoptic import timm_resnet_key_mapping
from seem_hf.testing import FIXTURES, tiny_detr_arguments, tiny_detr_panoptic_config

from ...helpers import run_without_seem_hf

BN = ("weight", "bias", "running_mean", "running_var")
TOLERANCE = 1e-5
_STAGES = ["stage1", "stage2", "stage3", "stage4"]


def _inputs(batch: int = 2, height: int = 64, width: int = 96):
    pixel_values = torch.randn(batch, 3, height, width)
    pixel_mask = torch.ones(batch, height, width, dtype=torch.long)
    pixel_mask[-1, :, width * 3 // 4 :] = 0  # the last image is padded on the right
    return pixel_values, pixel_mask


def _labels(batch: int, height: int, width: int):
    labels = []
    for _ in range(batch):
        masks = torch.zeros(2, height, width)
        masks[0, : height // 2] = 1
        masks[1, height // 2 :, : width // 3] = 1
        labels.append(
            {
                "class_labels": torch.tensor([0, 3]),
                "boxes": torch.tensor([[0.5, 0.25, 1.0, 0.5], [1 / 6, 0.75, 1 / 3, 0.5]]),
                "masks": masks,
            }
        )
    return labels


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DetrPanopticForSegmentation(tiny_detr_panoptic_config()).eval()


def _max_difference(first, second) -> float:
    return max((first[name] - second[name]).abs().max().item() for name in ("logits", "pred_boxes", "pred_masks"))


def test_forward_shapes(model):
    pixel_values, pixel_mask = _inputs()
    with torch.no_grad():
        outputs = model(pixel_values=pixel_values, pixel_mask=pixel_mask)
    assert isinstance(outputs, DetrPanopticSegmentationOutput)
    config = model.config
    assert outputs.logits.shape == (2, config.num_queries, config.num_labels + 1)
    assert outputs.pred_boxes.shape == (2, config.num_queries, 4)
    assert outputs.pred_masks.shape == (2, config.num_queries, 64 // 4, 96 // 4)
    assert outputs.loss is None
    assert ((outputs.pred_boxes >= 0) & (outputs.pred_boxes <= 1)).all()
    as_tuple = model(pixel_values=pixel_values, pixel_mask=pixel_mask, return_dict=False)
    torch.testing.assert_close(as_tuple[0], outputs.logits)


def test_padding_does_not_change_the_unpadded_image(model):
    pixel_values, _ = _inputs(batch=1, height=64, width=64)
    padded = torch.zeros(1, 3, 64, 96)
    padded[..., :64] = pixel_values
    mask = torch.zeros(1, 64, 96, dtype=torch.long)
    mask[..., :64] = 1
    with torch.no_grad():
        alone = model(pixel_values=pixel_values)
        in_batch = model(pixel_values=padded, pixel_mask=mask)
    # DETR is not exactly padding-invariant (convolutions see the zeros); the decoder output stays close.
    assert (alone.logits - in_batch.logits).abs().max() < 1.0


def test_loss_is_a_scalar_and_backward_reaches_every_head():
    torch.manual_seed(0)
    model = DetrPanopticForSegmentation(tiny_detr_panoptic_config()).train()
    pixel_values, pixel_mask = _inputs(height=64, width=64)
    outputs = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=_labels(2, 64, 64))
    assert outputs.loss.ndim == 0 and torch.isfinite(outputs.loss)
    assert {"loss_ce", "loss_bbox", "loss_giou", "loss_mask", "loss_dice"} <= set(outputs.loss_dict)
    assert any(key.endswith("_0") for key in outputs.loss_dict)  # auxiliary decoder losses (released recipe)
    outputs.loss.backward()
    for name in ("mask_head.output_conv.weight", "bbox_attention.q_proj.weight", "detr.class_labels_classifier.weight"):
        gradient = model.get_parameter(name).grad
        assert gradient is not None and gradient.abs().sum() > 0, name


def test_save_and_reload_give_equal_outputs(model, tmp_path):
    model.save_pretrained(tmp_path)
    # The model's own parameter names, not transformers' legacy DETR names: Trainer resumes by loading the state
    # dict directly, without from_pretrained's renaming.
    assert load_file(tmp_path / "model.safetensors").keys() == model.state_dict().keys()
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    reloaded, info = DetrPanopticForSegmentation.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    pixel_values, pixel_mask = _inputs()
    with torch.no_grad():
        assert _max_difference(model(pixel_values, pixel_mask), reloaded.eval()(pixel_values, pixel_mask)) == 0


def _transformers_reference(tmp_path):
    """A transformers `DetrForSegmentation` (model_type "detr", native ResNet), saved by transformers."""
    torch.manual_seed(1)
    config = DetrConfig(use_timm_backbone=False, num_labels=7, **tiny_detr_arguments())
    reference = DetrForSegmentation(config).eval()
    folder = tmp_path / "transformers-detr"
    reference.save_pretrained(folder)
    return reference, folder


def test_loads_transformers_detr_checkpoint_with_equal_outputs(tmp_path):
    reference, folder = _transformers_reference(tmp_path)
    saved_keys = load_file(folder / "model.safetensors")
    assert any(key.startswith("mask_head.lay1") for key in saved_keys)  # transformers writes the legacy names
    ours, info = DetrPanopticForSegmentation.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert ours.config.model_type == "detr_panoptic" and ours.config.num_labels == 7
    pixel_values, pixel_mask = _inputs()
    with torch.no_grad():
        difference = _max_difference(reference(pixel_values, pixel_mask), ours.eval()(pixel_values, pixel_mask))
    assert difference <= TOLERANCE


def test_checkpoint_with_unknown_or_missing_keys_is_an_error(model, tmp_path):
    model.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state["detr.surprise.weight"] = torch.zeros(2)
    del state["bbox_attention.q_proj.bias"]
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError) as error:
        DetrPanopticForSegmentation.from_pretrained(tmp_path)
    assert "detr.surprise.weight" in str(error.value) and "bbox_attention.q_proj.bias" in str(error.value)
    loaded, info = DetrPanopticForSegmentation.from_pretrained(tmp_path, strict=False, output_loading_info=True)
    assert "bbox_attention.q_proj.bias" in info["missing_keys"]


def test_our_checkpoint_loads_into_transformers(model, tmp_path):
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    reference = DetrForSegmentation(DetrConfig(use_timm_backbone=False, **_detr_fields(config))).eval()
    missing, unexpected = reference.load_state_dict(
        DetrPanopticForSegmentation.from_pretrained(tmp_path).state_dict(), strict=False
    )
    assert not missing and not unexpected
    pixel_values, pixel_mask = _inputs()
    with torch.no_grad():
        assert _max_difference(model(pixel_values, pixel_mask), reference(pixel_values, pixel_mask)) <= TOLERANCE


def test_loss_equals_transformers_detr_for_segmentation(model, tmp_path):
    """Our loss runs on the package's shared matcher and criterion; transformers' runs its own DETR loss."""
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    reference = DetrForSegmentation(
        DetrConfig(use_timm_backbone=False, auxiliary_loss=True, **_detr_fields(config))
    ).eval()
    reference.load_state_dict(model.state_dict())
    pixel_values, pixel_mask = _inputs(height=64, width=64)
    labels = _labels(2, 64, 64)
    with torch.no_grad():
        ours = model(pixel_values, pixel_mask, labels=labels)
        theirs = reference(pixel_values, pixel_mask, labels=labels)
    assert set(ours.loss_dict) == set(theirs.loss_dict)
    for name, value in theirs.loss_dict.items():
        torch.testing.assert_close(ours.loss_dict[name], value.reshape(ours.loss_dict[name].shape),
                                   rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.loss, theirs.loss, rtol=1e-5, atol=1e-5)


def _detr_fields(config: dict) -> dict:
    names = ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads")
    fields = {name: config[name] for name in names + ("encoder_ffn_dim", "decoder_ffn_dim", "num_queries")}
    backbone = {key: value for key, value in config["backbone_config"].items() if key != "model_type"}
    fields["backbone_config"] = ResNetConfig(**backbone)
    fields["num_labels"] = len(config["id2label"])
    return fields


# timm / torchvision ResNet names, written out for the tiny ResNet (bottleneck blocks, depths 1, 1, 2, 1):
# the stem, then per block conv1-3 and bn1-3, and a downsample branch where the channel count changes.
TINY_TIMM_RESNET_BLOCKS = {"layer1.0": False, "layer2.0": True, "layer3.0": True, "layer3.1": False, "layer4.0": True}


def _tiny_timm_names() -> set[str]:
    names = {"conv1.weight"} | {f"bn1.{p}" for p in BN}
    for block, has_downsample in TINY_TIMM_RESNET_BLOCKS.items():
        for index in (1, 2, 3):
            names |= {f"{block}.conv{index}.weight"} | {f"{block}.bn{index}.{p}" for p in BN}
        if has_downsample:
            names |= {f"{block}.downsample.0.weight"} | {f"{block}.downsample.1.{p}" for p in BN}
    return names


def _native_to_timm(name: str) -> str:
    """Inverse of the map under test, written independently: native ResNetBackbone name -> timm name."""
    parts = name.split(".")
    if parts[0] == "embedder":  # embedder.embedder.{convolution,normalization}.x
        return ("conv1." if parts[2] == "convolution" else "bn1.") + parts[-1]
    stage, block = int(parts[2]) + 1, parts[4]
    if parts[5] == "shortcut":
        return f"layer{stage}.{block}.downsample.{0 if parts[6] == 'convolution' else 1}.{parts[-1]}"
    conv = int(parts[6]) + 1
    return f"layer{stage}.{block}.{'conv' if parts[7] == 'convolution' else 'bn'}{conv}.{parts[-1]}"


def test_timm_layout_checkpoint_loads_without_timm(tmp_path):
    reference, folder = _transformers_reference(tmp_path)
    state = load_file(folder / "model.safetensors")
    prefix = "detr.model.backbone.conv_encoder.model."
    native = [key for key in state if key.startswith(prefix)]
    renamed = {prefix + _native_to_timm(key[len(prefix) :]): state[key] for key in native}
    assert {key[len(prefix) :] for key in renamed} == _tiny_timm_names()
    timm_state = {key: value for key, value in state.items() if key not in native} | renamed
    save_file(timm_state, folder / "model.safetensors", metadata={"format": "pt"})

    ours, info = DetrPanopticForSegmentation.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    pixel_values, pixel_mask = _inputs()
    with torch.no_grad():
        assert _max_difference(reference(pixel_values, pixel_mask), ours.eval()(pixel_values, pixel_mask)) <= TOLERANCE


def test_timm_map_covers_a_full_resnet50_exactly():
    """On the meta device: timm's ResNet-50 names, mapped, are exactly the native backbone's names."""
    import re

    timm_names = {"conv1.weight"} | {f"bn1.{p}" for p in BN}
    for stage, depth in enumerate((3, 4, 6, 3), start=1):
        for block in range(depth):
            for index in (1, 2, 3):
                timm_names |= {f"layer{stage}.{block}.conv{index}.weight"}
                timm_names |= {f"layer{stage}.{block}.bn{index}.{p}" for p in BN}
            if block == 0:
                timm_names |= {f"layer{stage}.0.downsample.0.weight"}
                timm_names |= {f"layer{stage}.0.downsample.1.{p}" for p in BN}
    mapping = timm_resnet_key_mapping()
    mapped = set()
    for name in timm_names:
        key = "detr.model.backbone.conv_encoder.model." + name
        for pattern, replacement in mapping.items():
            key = re.sub(pattern, replacement, key)
        mapped.add(key)
    with torch.device("meta"):
        model = DetrPanopticForSegmentation(DetrPanopticConfig())
    native = {key for key in model.state_dict() if key.startswith("detr.model.backbone.")}
    assert mapped == native


def test_timm_style_config_becomes_native_resnet():
    config = DetrPanopticConfig.from_dict(DetrConfig(num_labels=250).to_dict())  # timm_backbone resnet50
    assert config.backbone_config.model_type == "resnet"
    assert list(config.backbone_config.depths) == [3, 4, 6, 3]
    assert config.backbone_config.out_features == ["stage1", "stage2", "stage3", "stage4"]
    with pytest.raises(ValueError, match="four stages"):
        DetrPanopticConfig(backbone_config=ResNetConfig(out_features=["stage4"]))
    dc5 = DetrPanopticConfig.from_dict(DetrConfig(num_labels=250, dilation=True).to_dict())  # detr-resnet-50-dc5
    assert dc5.dilation and dc5.backbone_config.model_type == "resnet"
    with pytest.raises(ValueError, match="DC5"):
        DetrPanopticConfig(dilation=True, backbone_config=ResNetConfig(layer_type="basic", out_features=_STAGES))


def test_dilation_is_dc5(tmp_path):
    """DC5 keeps the last stage at stride 16, and is the undilated backbone computed a trous: with the same weights,
    its stride-16 map sampled at every other position is the undilated stride-32 map (an identity that holds only
    if the first block drops its stride and the later 3x3 convolutions dilate by 2 with padding 2). The transformer
    and the mask then work on the finer map."""
    backbone = ResNetConfig(hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 3], embedding_size=8, out_features=_STAGES)
    torch.manual_seed(0)
    plain = DetrPanopticForSegmentation(tiny_detr_panoptic_config(backbone_config=backbone)).eval()
    dilated = DetrPanopticForSegmentation(tiny_detr_panoptic_config(backbone_config=backbone, dilation=True)).eval()
    dilated.load_state_dict(plain.state_dict())
    pixel_values, pixel_mask = _inputs(height=64, width=96)
    with torch.no_grad():
        coarse = plain.get_image_features(pixel_values, pixel_mask)
        fine = dilated.get_image_features(pixel_values, pixel_mask)
        outputs = dilated(pixel_values=pixel_values, pixel_mask=pixel_mask)
    assert fine[-1][0].shape[-2:] == (4, 6) and coarse[-1][0].shape[-2:] == (2, 3)
    for (coarse_map, _), (fine_map, _) in zip(coarse[:-1], fine[:-1]):
        torch.testing.assert_close(fine_map, coarse_map, atol=0, rtol=0)
    torch.testing.assert_close(fine[-1][0][..., ::2, ::2], coarse[-1][0], atol=TOLERANCE, rtol=TOLERANCE)
    assert outputs.encoder_last_hidden_state.shape[1] == 4 * 6
    assert outputs.pred_masks.shape[-2:] == (64 // 4, 96 // 4)
    dilated.save_pretrained(tmp_path)
    with torch.no_grad():
        again = DetrPanopticForSegmentation.from_pretrained(tmp_path).eval()(pixel_values, pixel_mask)
    torch.testing.assert_close(again.pred_masks, outputs.pred_masks)


def test_default_config_is_the_released_model():
    """Parameter count of the default config equals transformers' DETR-R50 panoptic (meta device)."""
    with torch.device("meta"):
        ours = DetrPanopticForSegmentation(DetrPanopticConfig())
        reference = DetrForSegmentation(
            DetrConfig(
                use_timm_backbone=False,
                backbone_config=ResNetConfig(out_features=["stage1", "stage2", "stage3", "stage4"]),
                num_labels=250,
            )
        )
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in reference.parameters())
    assert abs(count / 1e6 - 42.9) < 0.1
    config = DetrPanopticConfig()
    assert (config.num_queries, config.d_model, config.encoder_layers, config.decoder_layers) == (100, 256, 6, 6)
    assert config.num_labels == 250 and config.auxiliary_loss


def test_bad_pixel_values_raise(model):
    with pytest.raises(ValueError, match="pixel_values"):
        model(pixel_values=torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="pixel_values"):
        model(pixel_values=torch.zeros(3, 32, 32))


def test_auto_classes_load_the_fixture(tiny_detr_panoptic_folder):
    assert isinstance(AutoConfig.from_pretrained(tiny_detr_panoptic_folder), DetrPanopticConfig)
    # AutoModelForUniversalSegmentation: where transformers maps its own DetrForSegmentation
    for auto_class in (AutoModel, AutoModelForImageSegmentation, AutoModelForUniversalSegmentation):
        assert isinstance(auto_class.from_pretrained(tiny_detr_panoptic_folder), DetrPanopticForSegmentation)
    assert isinstance(AutoImageProcessor.from_pretrained(tiny_detr_panoptic_folder), DetrPanopticImageProcessor)
    processor = AutoProcessor.from_pretrained(tiny_detr_panoptic_folder)
    assert isinstance(processor, DetrPanopticProcessor)
    assert processor.id2label[4] == "circle" and processor.thing_label_ids == [4, 5, 6, 7]


def test_remote_code_loads_without_seem_hf(tmp_path, tiny_detr_panoptic_folder):
    model = DetrPanopticForSegmentation.from_pretrained(tiny_detr_panoptic_folder).eval()
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    DetrPanopticProcessor.from_pretrained(tiny_detr_panoptic_folder).save_pretrained(folder)
    pixel_values, pixel_mask = _inputs(batch=1)
    torch.save({"pixel_values": pixel_values, "pixel_mask": pixel_mask}, tmp_path / "inputs.pt")
    with torch.no_grad():
        expected = model(pixel_values, pixel_mask)
    torch.save({"logits": expected.logits, "pred_masks": expected.pred_masks}, tmp_path / "expected.pt")
    output = run_without_seem_hf(
        f"""
        import torch
        from transformers import (AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageSegmentation,
                                  AutoProcessor, pipeline)
        folder = {str(folder)!r}
        print(type(AutoConfig.from_pretrained(folder, trust_remote_code=True)).__name__)
        model = AutoModelForImageSegmentation.from_pretrained(folder, trust_remote_code=True).eval()
        print(type(AutoModel.from_pretrained(folder, trust_remote_code=True)).__name__)
        from transformers import AutoModelForUniversalSegmentation
        print(type(AutoModelForUniversalSegmentation.from_pretrained(folder, trust_remote_code=True)).__name__)
        print(type(AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)).__name__)
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        print(type(processor).__name__, processor.id2label[4])
        inputs = torch.load({str(tmp_path / "inputs.pt")!r}, weights_only=True)
        expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
        with torch.no_grad():
            outputs = model(**inputs)
        print("difference", float((outputs.logits - expected["logits"]).abs().max()),
              float((outputs.pred_masks - expected["pred_masks"]).abs().max()))
        import numpy as np
        from PIL import Image
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
        segmenter = pipeline("image-segmentation", model=folder, trust_remote_code=True)
        print("pipeline", [s["label"] for s in segmenter(image, subtask="semantic")])
        """
    )
    lines = output.strip().splitlines()
    assert lines[0] == "DetrPanopticConfig"
    assert lines[1] == lines[2] == "DetrPanopticForSegmentation"  # AutoModel, AutoModelForUniversalSegmentation
    assert lines[3] == "DetrPanopticImageProcessor"
    assert lines[4] == "DetrPanopticProcessor circle"
    assert lines[5] == "difference 0.0 0.0"
    assert lines[6].startswith("pipeline [") and lines[6] != "pipeline []"
    assert sorted(p.name for p in folder.glob("*.py")) == [
        "bottleneck.py",
        "configuration_detr_panoptic.py",
        "global_mean.py",
        "image_processing_detr_panoptic.py",
        "image_utils.py",
        "mask_losses.py",
        "matcher.py",
        "model_card.py",
        "modeling_detr_panoptic.py",
        "point_sampling.py",
        "postprocessing.py",
        "processing_detr_panoptic.py",
        "processing_utils.py",
        "remote_code.py",
        "set_criterion.py",
        "strategies.py",
    ]
    shutil.rmtree(folder)


@pytest.mark.parametrize("chunk", [2, 8])  # queries per mask-head pass: several passes, or one
def test_mask_head_on_confident_queries_only_gives_the_same_segments(tiny_detr_panoptic_folder, monkeypatch, chunk):
    from seem_hf.models.detr_panoptic import modeling_detr_panoptic

    monkeypatch.setattr(modeling_detr_panoptic, "MASK_HEAD_CHUNK", chunk)
    model = DetrPanopticForSegmentation.from_pretrained(tiny_detr_panoptic_folder).eval()
    processor = DetrPanopticProcessor.from_pretrained(tiny_detr_panoptic_folder)
    pixel_values, pixel_mask = _inputs()
    with torch.no_grad():
        full = model(pixel_values, pixel_mask)
        threshold = full.logits.softmax(-1)[..., :-1].max(-1).values.median().item()  # about half the queries
        pruned = model(pixel_values, pixel_mask, mask_score_threshold=threshold)
    scores, classes = full.logits.softmax(-1).max(-1)
    confident = (classes != full.logits.shape[-1] - 1) & (scores > threshold)
    assert 0 < int(confident.sum()) < confident.numel()
    assert torch.equal(pruned.logits, full.logits)
    torch.testing.assert_close(pruned.pred_masks[confident], full.pred_masks[confident], atol=1e-5, rtol=1e-5)
    assert (pruned.pred_masks[~confident] == -1e4).all()
    sizes = [(64, 96)] * 2
    for rule in ("maskformer", "detr"):
        for cut in (threshold, min(threshold + 0.01, 1.0)):  # a threshold is a probability (checked)
            expected = processor.post_process_panoptic_segmentation(full, threshold=cut, target_sizes=sizes, rule=rule)
            got = processor.post_process_panoptic_segmentation(pruned, threshold=cut, target_sizes=sizes, rule=rule)
            for a, b in zip(expected, got):
                assert torch.equal(a["segmentation"], b["segmentation"]) and a["segments_info"] == b["segments_info"]
    expected = processor.post_process_instance_segmentation(full, threshold=threshold, target_sizes=sizes)
    got = processor.post_process_instance_segmentation(pruned, threshold=threshold, target_sizes=sizes)
    assert [r["segments_info"] for r in expected] == [r["segments_info"] for r in got]


def test_mask_score_threshold_is_ignored_in_training():
    torch.manual_seed(0)
    model = DetrPanopticForSegmentation(tiny_detr_panoptic_config()).train()
    pixel_values, pixel_mask = _inputs(height=64, width=64)
    outputs = model(pixel_values, pixel_mask, labels=_labels(2, 64, 64), mask_score_threshold=0.99)
    assert (outputs.pred_masks != -1e4).all()


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_attention_implementation_by_name_despite_the_attention_free_backbone(implementation):
    """transformers refuses "sdpa" for the ResNet sub-config; one string still selects the transformer's attention."""
    from seem_hf.testing import FIXTURES

    model = DetrPanopticForSegmentation.from_pretrained(
        FIXTURES / "tiny-random-detr_panoptic", attn_implementation=implementation
    )
    assert model.config._attn_implementation == implementation
    model.set_attn_implementation("eager" if implementation == "sdpa" else "sdpa")
    assert model.config._attn_implementation != implementation


def test_set_label_set_keeps_known_rows_and_saves(tmp_path):
    """Fine-tuning on another label set (issue 22: a converted COCO instances JSON lists things first): rows of the
    labels the model knows move to their new index, a new label gets a fresh row, "no object" stays last, and the
    folder saved afterwards loads with the new labels."""
    model = DetrPanopticForSegmentation.from_pretrained(FIXTURES / "tiny-random-detr_panoptic")
    old, weight = dict(model.config.id2label), model.detr.class_labels_classifier.weight.detach().clone()
    message = model.set_label_set({0: old[3], 1: "boat", 2: old[0]})
    assert "2 kept" in message and "new ['boat']" in message
    head = model.detr.class_labels_classifier.weight
    assert torch.equal(head[0], weight[3]) and torch.equal(head[2], weight[0]) and torch.equal(head[-1], weight[-1])
    assert not torch.equal(head[1], weight[1]) and model.config.num_labels == 3
    assert model.set_label_set({0: old[3], 1: "boat", 2: old[0]}) == ""
    model.save_pretrained(tmp_path)
    loaded = DetrPanopticForSegmentation.from_pretrained(tmp_path)
    assert loaded.config.id2label == {0: old[3], 1: "boat", 2: old[0]}
    assert torch.equal(loaded.detr.class_labels_classifier.weight, head)

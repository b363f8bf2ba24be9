"""Regenerate the tiny random-weight checkpoints under tests/fixtures/ (deterministic: same seed, same weights).

    python scripts/make_tiny_checkpoints.py [--output-dir tests/fixtures]

Each folder is a complete `save_pretrained` checkpoint (config, safetensors weights, processor) without the
bundled remote code: inside the repository `import seem_hf` registers the models, and a folder saved from one of
these for sharing gets its bundle then (`seem_hf.remote_code`).
"""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

import torch

from seem_hf import (
    DetrPanopticForSegmentation,
    DetrPanopticImageProcessor,
    DetrPanopticProcessor,
    LSegForSemanticSegmentation,
    LSegImageProcessor,
    LSegProcessor,
    SeemForUniversalSegmentation,
    SeemImageProcessor,
    SeemProcessor,
)
from seem_hf.clip_tokenizer import clip_tokenizer
from seem_hf.remote_code import remove_bundle
from seem_hf.testing import (
    FIXTURES,
    TINY_COLORS,
    TINY_IMAGE_SIZE,
    TINY_LABELS,
    TINY_THINGS,
    tiny_detr_panoptic_config,
    tiny_lseg_config,
    tiny_seem_config,
)


@torch.no_grad()
def fit_lseg_text_projection(model: LSegForSemanticSegmentation, processor: LSegProcessor) -> None:
    """As for SEEM below: the frozen random text tower gives the vocabulary's names nearly one direction
    (cosine 0.8-0.99), which no image feature can tell apart; fit the projection to keep them apart, as a
    pretrained CLIP tower does."""
    text = processor(text=list(TINY_LABELS.values()))
    pooled = model.text_encoder.text_model(input_ids=text["input_ids"],
                                           attention_mask=text["attention_mask"]).pooler_output
    targets = torch.linalg.qr(torch.randn(model.config.embedding_dim, len(pooled)))[0].t()
    weight = torch.linalg.lstsq(pooled.double(), targets.double()).solution.t()
    model.text_encoder.text_projection.weight.copy_(weight.float())


@torch.no_grad()
def fit_seem_label_embeddings(model: SeemForUniversalSegmentation, processor: SeemProcessor) -> None:
    """SEEM's class logits are exp(logit_scale) x cosine with a frozen, pretrained scale; the initial value 1
    caps a class probability below SEEM's 0.8 score threshold unless the embeddings are nearly perfect.
    A pretrained-like scale (CLIP's initial 1 / 0.07) lets a random checkpoint learn to pass it.
    A random text tower maps every class name to nearly the same direction (cosine ~0.97 after SEEM's
    template averaging), and it is frozen in training, so no query could ever be confident. A pretrained
    tower separates names: fit the projection so that the bundled vocabulary's names (and "background")
    land on orthonormal directions, as a pretrained one would keep them apart."""
    model.language_encoder.logit_scale.fill_(math.log(1 / 0.07))
    ids = processor.tokenize_labels(list(TINY_LABELS.values()))
    pooled = model.language_encoder.text_model(input_ids=ids.flatten(0, 1)).pooler_output
    pooled = pooled.view(*ids.shape[:2], -1).mean(1)
    targets = torch.linalg.qr(torch.randn(model.config.dim_proj, len(pooled)))[0].t()
    weight = torch.linalg.lstsq(pooled.double(), targets.double()).solution.t()
    model.language_encoder.lang_proj.weight.copy_(weight.float())


@torch.no_grad()
def sharpen_detr_panoptic(model: DetrPanopticForSegmentation) -> None:
    """At initialisation every query gives the same near-uniform prediction, so no post-processing would return a
    segment. Sharper cross-attention and query embeddings make the queries differ, a "no object" bias and a
    steeper mask output make some of them confident. (A small DETR-panoptic trained from the plain initialisation
    collapsed instead: after 500 steps every query gave the same image-independent answer and masks of 0.49.)"""
    model.detr.model.query_position_embeddings.weight.normal_(0, 1)
    for layer in model.detr.model.decoder.layers:
        layer.encoder_attn.q_proj.weight.mul_(10)
        layer.encoder_attn.k_proj.weight.mul_(10)
        layer.encoder_attn.v_proj.weight.mul_(5)
    model.detr.class_labels_classifier.weight.normal_(0, 1)
    model.detr.class_labels_classifier.bias.copy_(torch.tensor([0.0] * model.config.num_labels + [-6.0]))
    model.mask_head.output_conv.weight.mul_(30)


@torch.no_grad()
def separate_detr_panoptic_masks(model: DetrPanopticForSegmentation) -> None:
    """Let the mask head tell queries apart from the first step. `DetrMHAttentionMap` (as in DETR) takes one softmax
    over heads x positions jointly, so at initialisation each of the attention-map channels that the mask head's first
    convolution reads beside the shared pixel features is ~1/(heads x positions): 0.002 at 256 px against features of
    ~1. Every query then gets the same mask, and training never separates them: measured on the shapes default, the
    mask's standard deviation across queries stayed 0.000 for 300 steps, and after 8,000 steps all stuff queries
    shared one mask and all thing queries another (stuff PQ 10-12). Sharper query-key products (x8: entropy 5.3
    instead of log(512) = 6.24) and a first convolution that weighs the attention maps x256 (as if they were ~0.5)
    give masks that differ by 0.18 across queries by step 300. The architecture and checkpoint format are DETR's."""
    model.bbox_attention.q_proj.weight.mul_(8)
    model.bbox_attention.k_proj.weight.mul_(8)
    attention_channels = model.config.encoder_attention_heads
    # DC5's map has four times the positions, so each attention weight is four times smaller.
    model.mask_head.conv1.conv.weight[:, -attention_channels:].mul_(1024 if model.config.dilation else 256)


def make_tiny_detr_panoptic(output_dir: Path) -> Path:
    torch.manual_seed(0)
    config = tiny_detr_panoptic_config()
    model = DetrPanopticForSegmentation(config).eval()
    torch.manual_seed(1)
    sharpen_detr_panoptic(model)
    image_processor = DetrPanopticImageProcessor(
        id2label=config.id2label, thing_label_ids=TINY_THINGS, label_colors=TINY_COLORS, size=dict(TINY_IMAGE_SIZE)
    )
    folder = output_dir / "tiny-random-detr_panoptic"
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    DetrPanopticProcessor(image_processor=image_processor).save_pretrained(folder)
    remove_bundle(folder)
    return folder


def make_tiny_lseg(output_dir: Path) -> Path:
    torch.manual_seed(0)
    model = LSegForSemanticSegmentation(tiny_lseg_config()).eval()
    processor = LSegProcessor(LSegImageProcessor(size={"height": 64, "width": 64}), clip_tokenizer())
    processor.set_default_labels(list(TINY_LABELS.values()))
    fit_lseg_text_projection(model, processor)
    folder = output_dir / "tiny-random-lseg"
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    remove_bundle(folder)
    return folder


def make_tiny_seem(output_dir: Path) -> Path:
    torch.manual_seed(0)
    model = SeemForUniversalSegmentation(tiny_seem_config(id2label=dict(TINY_LABELS))).eval()
    image_processor = SeemImageProcessor(id2label=dict(TINY_LABELS), thing_label_ids=TINY_THINGS,
                                         size=dict(TINY_IMAGE_SIZE))
    processor = SeemProcessor(image_processor, clip_tokenizer())
    fit_seem_label_embeddings(model, processor)
    folder = output_dir / "tiny-random-seem"
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    remove_bundle(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=FIXTURES)
    arguments = parser.parse_args()
    print(make_tiny_detr_panoptic(arguments.output_dir))
    print(make_tiny_lseg(arguments.output_dir))
    print(make_tiny_seem(arguments.output_dir))


if __name__ == "__main__":
    main()

"""SEEM written out from its definitions over a state dict with the original checkpoint's names (seem.md sections 1
and 5), independent of seem_hf's modules: the key list with its shapes, and a direct computation of the generic
path (FocalNet, transformer-encoder FPN, masked-attention decoder, CLIP-style text tower)."""

from __future__ import annotations

import math
import re

import torch
from torch.nn import functional as F

P = "sem_seg_head.predictor."
TEXT = P + "lang_encoder.lang_encoder."


def original_shapes(config, num_classes: int = 133) -> dict[str, tuple[int, ...]]:
    """Every key of `seem_focall_v1.pt` (for the given sizes) with its shape."""
    shapes = {}
    backbone = config.backbone_config
    c0, levels, window = backbone.embed_dim, backbone.focal_levels[0], backbone.focal_windows[0]
    shapes.update({"backbone.patch_embed.proj.weight": (c0, 3, 7, 7), "backbone.patch_embed.proj.bias": (c0,),
                   "backbone.patch_embed.norm.weight": (c0,), "backbone.patch_embed.norm.bias": (c0,)})
    for stage, depth in enumerate(backbone.depths):
        c = c0 * 2**stage
        for block in range(depth):
            b = f"backbone.layers.{stage}.blocks.{block}."
            shapes.update({b + "gamma_1": (c,), b + "gamma_2": (c,)})
            for norm in ("norm1", "norm2"):
                shapes.update({b + f"{norm}.weight": (c,), b + f"{norm}.bias": (c,)})
            shapes.update({b + "modulation.f.weight": (2 * c + levels + 1, c), b + "modulation.f.bias": (2 * c + levels + 1,),
                           b + "modulation.h.weight": (c, c, 1, 1), b + "modulation.h.bias": (c,),
                           b + "modulation.proj.weight": (c, c), b + "modulation.proj.bias": (c,)})
            for level in range(levels):
                k = 2 * level + window
                shapes[b + f"modulation.focal_layers.{level}.0.weight"] = (c, 1, k, k)
            hidden = int(backbone.mlp_ratio * c)
            shapes.update({b + "mlp.fc1.weight": (hidden, c), b + "mlp.fc1.bias": (hidden,),
                           b + "mlp.fc2.weight": (c, hidden), b + "mlp.fc2.bias": (c,)})
        if stage < 3:
            d = f"backbone.layers.{stage}.downsample."
            shapes.update({d + "proj.weight": (2 * c, c, 3, 3), d + "proj.bias": (2 * c,), d + "norm.weight": (2 * c,),
                           d + "norm.bias": (2 * c,)})
        shapes.update({f"backbone.norm{stage}.weight": (c,), f"backbone.norm{stage}.bias": (c,)})
    w, f, channels = config.conv_dim, config.dim_feedforward, config.backbone_channels
    pd = "sem_seg_head.pixel_decoder."
    shapes.update({pd + "input_proj.weight": (w, channels[3], 1, 1), pd + "input_proj.bias": (w,)})
    for layer in range(config.pixel_decoder_layers):
        e = pd + f"transformer.encoder.layers.{layer}."
        shapes.update(_attention(e + "self_attn.", w))
        shapes.update({e + "linear1.weight": (f, w), e + "linear1.bias": (f,), e + "linear2.weight": (w, f),
                       e + "linear2.bias": (w,)})
        for norm in ("norm1", "norm2"):
            shapes.update({e + f"{norm}.weight": (w,), e + f"{norm}.bias": (w,)})
    for index in (1, 2, 3):
        shapes[pd + f"adapter_{index}.weight"] = (w, channels[index - 1], 1, 1)
        shapes.update({pd + f"adapter_{index}.norm.weight": (w,), pd + f"adapter_{index}.norm.bias": (w,)})
    for index in (1, 2, 3, 4):
        shapes[pd + f"layer_{index}.weight"] = (w, w, 3, 3)
        shapes.update({pd + f"layer_{index}.norm.weight": (w,), pd + f"layer_{index}.norm.bias": (w,)})
    shapes.update({pd + "mask_features.weight": (config.mask_dim, w, 3, 3), pd + "mask_features.bias": (config.mask_dim,)})
    h, q, proj, memories = config.hidden_dim, config.num_queries, config.dim_proj, config.spatial_memories
    shapes.update({P + "query_feat.weight": (q, h), P + "query_embed.weight": (q, h), P + "level_embed.weight": (3, h)})
    for layer in range(config.decoder_layers):
        shapes.update(_attention(P + f"transformer_cross_attention_layers.{layer}.multihead_attn.", h))
        shapes.update(_attention(P + f"transformer_self_attention_layers.{layer}.self_attn.", h))
        ffn = P + f"transformer_ffn_layers.{layer}."
        shapes.update({ffn + "linear1.weight": (f, h), ffn + "linear1.bias": (f,), ffn + "linear2.weight": (h, f),
                       ffn + "linear2.bias": (h,)})
        for part in ("transformer_cross_attention_layers", "transformer_self_attention_layers", "transformer_ffn_layers"):
            shapes.update({P + f"{part}.{layer}.norm.weight": (h,), P + f"{part}.{layer}.norm.bias": (h,)})
    shapes.update({P + "decoder_norm.weight": (h,), P + "decoder_norm.bias": (h,), P + "class_embed": (h, proj)})
    for layer in range(3):
        shapes.update({P + f"mask_embed.layers.{layer}.weight": (h, h), P + f"mask_embed.layers.{layer}.bias": (h,),
                       P + f"mask_sptial_embed.{layer}": (h, h)})
    shapes.update({P + "spatial_embed.weight": (memories, h), P + "spatial_featured.weight": (memories, h),
                   P + "pn_indicator.weight": (2, h)})
    text = config.text_config
    t, i = text.hidden_size, text.intermediate_size
    shapes.update({P + "lang_encoder.logit_scale": (), P + "lang_encoder.lang_proj": (t, proj),
                   TEXT + "token_embedding.weight": (text.vocab_size, t),
                   TEXT + "positional_embedding": (text.max_position_embeddings, t),
                   TEXT + "ln_final.weight": (t,), TEXT + "ln_final.bias": (t,)})
    for layer in range(text.num_hidden_layers):
        r = TEXT + f"resblocks.{layer}."
        shapes.update(_attention(r + "attn.", t))
        for norm in ("ln_1", "ln_2"):
            shapes.update({r + f"{norm}.weight": (t,), r + f"{norm}.bias": (t,)})
        shapes.update({r + "mlp.c_fc.weight": (i, t), r + "mlp.c_fc.bias": (i,), r + "mlp.c_proj.weight": (t, i),
                       r + "mlp.c_proj.bias": (t,)})
    shapes.update({"dilation_kernel": (1, 1, 3, 3), "criterion.empty_weight": (num_classes + 1,)})
    return shapes


def _attention(prefix, width):
    return {prefix + "in_proj_weight": (3 * width, width), prefix + "in_proj_bias": (3 * width,),
            prefix + "out_proj.weight": (width, width), prefix + "out_proj.bias": (width,)}


def random_original_state_dict(config, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in original_shapes(config).items():
        if key == "dilation_kernel":
            state[key] = torch.ones(shape)
        elif key.endswith("norm.weight") or re.search(r"(norm\d|norm1|norm2|ln_\d|ln_final|decoder_norm)\.weight$", key):
            state[key] = 1 + 0.1 * torch.randn(shape, generator=generator)
        elif key == P + "lang_encoder.logit_scale":
            state[key] = torch.tensor(math.log(1 / 0.07))
        else:
            fan_in = shape[1] * (math.prod(shape[2:]) if len(shape) > 2 else 1) if len(shape) > 1 else 16
            state[key] = torch.randn(shape, generator=generator) / math.sqrt(fan_in)
    return state


# -------------------------------------------------------------------------------------------- direct computation
def _mha(state, prefix, query, key, value, heads, mask=None):
    """torch.nn.MultiheadAttention from its fused parameters; batch-first; mask True = hidden."""
    wq, wk, wv = state[prefix + "in_proj_weight"].chunk(3)
    bq, bk, bv = state[prefix + "in_proj_bias"].chunk(3)
    batch, length, width = query.shape

    def split(x):
        return x.reshape(batch, -1, heads, width // heads).transpose(1, 2)

    scores = split(F.linear(query, wq, bq)) @ split(F.linear(key, wk, bk)).transpose(-1, -2) / math.sqrt(width // heads)
    if mask is not None:
        scores = scores.masked_fill(mask[:, None], float("-inf"))
    out = (scores.softmax(-1) @ split(F.linear(value, wv, bv))).transpose(1, 2).reshape(batch, length, width)
    return F.linear(out, state[prefix + "out_proj.weight"], state[prefix + "out_proj.bias"])


def _ln(state, prefix, x, eps=1e-5):
    return F.layer_norm(x, x.shape[-1:], state[prefix + "weight"], state[prefix + "bias"], eps)


def _sine(height, width, channels):
    """DETR/MaskFormer's normalised sine positions, (h*w, channels)."""
    steps = channels // 2
    y = torch.arange(1, height + 1, dtype=torch.float32)[:, None].expand(height, width) / (height + 1e-6) * 2 * math.pi
    x = torch.arange(1, width + 1, dtype=torch.float32)[None, :].expand(height, width) / (width + 1e-6) * 2 * math.pi
    dim_t = 10000 ** (2 * (torch.arange(steps) // 2) / steps)
    pos_x, pos_y = x[..., None] / dim_t, y[..., None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=3).flatten(2)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=3).flatten(2)
    return torch.cat((pos_y, pos_x), dim=2).flatten(0, 1)


def focalnet(state, config, pixels):
    """FocalNet (post-LN blocks with layer scale, hierarchical focal modulation), the four normed stage maps."""
    backbone = config.backbone_config
    levels = backbone.focal_levels[0]
    x = F.conv2d(pixels, state["backbone.patch_embed.proj.weight"], state["backbone.patch_embed.proj.bias"], stride=4,
                 padding=2)
    x = _ln(state, "backbone.patch_embed.norm.", x.permute(0, 2, 3, 1))  # (B, H, W, C)
    maps = []
    for stage, depth in enumerate(backbone.depths):
        c = x.shape[-1]
        for block in range(depth):
            b = f"backbone.layers.{stage}.blocks.{block}."
            projected = F.linear(x, state[b + "modulation.f.weight"], state[b + "modulation.f.bias"]).permute(0, 3, 1, 2)
            q, ctx, gates = projected.split((c, c, levels + 1), 1)
            ctx_all = 0
            for level in range(levels):
                kernel = state[b + f"modulation.focal_layers.{level}.0.weight"]
                ctx = F.gelu(F.conv2d(ctx, kernel, groups=c, padding=kernel.shape[-1] // 2))
                ctx_all = ctx_all + ctx * gates[:, level : level + 1]
            ctx_all = ctx_all + F.gelu(ctx.mean((2, 3), keepdim=True)) * gates[:, levels:]
            ctx_all = ctx_all / (levels + 1)
            modulated = q * F.conv2d(ctx_all, state[b + "modulation.h.weight"], state[b + "modulation.h.bias"])
            modulated = F.linear(modulated.permute(0, 2, 3, 1), state[b + "modulation.proj.weight"],
                                 state[b + "modulation.proj.bias"])
            x = x + state[b + "gamma_1"] * _ln(state, b + "norm1.", modulated)
            mlp = F.linear(F.gelu(F.linear(x, state[b + "mlp.fc1.weight"], state[b + "mlp.fc1.bias"])),
                           state[b + "mlp.fc2.weight"], state[b + "mlp.fc2.bias"])
            x = x + state[b + "gamma_2"] * _ln(state, b + "norm2.", mlp)
        maps.append(_ln(state, f"backbone.norm{stage}.", x).permute(0, 3, 1, 2))
        if stage < 3:
            d = f"backbone.layers.{stage}.downsample."
            x = F.conv2d(x.permute(0, 3, 1, 2), state[d + "proj.weight"], state[d + "proj.bias"], stride=2, padding=1)
            x = _ln(state, d + "norm.", x.permute(0, 2, 3, 1))
    return maps


def pixel_decoder(state, config, maps):
    """MaskFormer's TransformerEncoderPixelDecoder: (mask_features, [s32, s16, s8])."""
    pd, heads, groups = "sem_seg_head.pixel_decoder.", config.num_heads, config.norm_groups
    x = F.conv2d(maps[3], state[pd + "input_proj.weight"], state[pd + "input_proj.bias"])
    batch, width, height, columns = x.shape
    pos = _sine(height, columns, width)[None]
    src = x.flatten(2).transpose(1, 2)
    for layer in range(config.pixel_decoder_layers):
        e = pd + f"transformer.encoder.layers.{layer}."
        src = _ln(state, e + "norm1.", src + _mha(state, e + "self_attn.", src + pos, src + pos, src, heads))
        hidden = F.linear(F.relu(F.linear(src, state[e + "linear1.weight"], state[e + "linear1.bias"])),
                          state[e + "linear2.weight"], state[e + "linear2.bias"])
        src = _ln(state, e + "norm2.", src + hidden)

    def conv(x, name, relu):
        weight = state[pd + name + ".weight"]
        x = F.group_norm(F.conv2d(x, weight, padding=weight.shape[-1] // 2), groups, state[pd + name + ".norm.weight"],
                         state[pd + name + ".norm.bias"])
        return F.relu(x) if relu else x

    out = conv(src.transpose(1, 2).reshape(batch, width, height, columns), "layer_4", True)
    scales = [out]
    for index in (3, 2, 1):
        lateral = conv(maps[index - 1], f"adapter_{index}", False)
        out = conv(lateral + F.interpolate(out, size=lateral.shape[-2:], mode="nearest"), f"layer_{index}", True)
        scales.append(out)
    return F.conv2d(out, state[pd + "mask_features.weight"], state[pd + "mask_features.bias"], padding=1), scales[:3]


def text_embeddings(state, config, ids):
    """The CLIP-style tower (pre-LN, QuickGELU, causal, LayerNorm eps 1e-12), pooled at the first end-of-text token
    (argmax of the ids), projected by lang_proj, normalised."""
    text = config.text_config
    x = state[TEXT + "token_embedding.weight"][ids] + state[TEXT + "positional_embedding"][: ids.shape[1]]
    causal = torch.ones(ids.shape[1], ids.shape[1], dtype=torch.bool).triu(1)[None]
    for layer in range(text.num_hidden_layers):
        r = TEXT + f"resblocks.{layer}."
        normed = _ln(state, r + "ln_1.", x, 1e-12)
        x = x + _mha(state, r + "attn.", normed, normed, normed, text.num_attention_heads, causal)
        hidden = F.linear(_ln(state, r + "ln_2.", x, 1e-12), state[r + "mlp.c_fc.weight"], state[r + "mlp.c_fc.bias"])
        x = x + F.linear(hidden * torch.sigmoid(1.702 * hidden), state[r + "mlp.c_proj.weight"], state[r + "mlp.c_proj.bias"])
    x = _ln(state, TEXT + "ln_final.", x, 1e-12)
    pooled = x[torch.arange(len(ids)), ids.argmax(-1)] @ state[P + "lang_encoder.lang_proj"]
    return F.normalize(pooled, dim=-1, eps=1e-7)


def generic_forward(state, config, pixels, ids):
    """SEEM's generic path: the last round's class logits (B, Q, K+1) and mask logits (B, Q, H/4, W/4)."""
    mask_features, scales = pixel_decoder(state, config, focalnet(state, config, pixels))
    labels = text_embeddings(state, config, ids)
    batch, heads = pixels.shape[0], config.num_heads
    sources = [s.flatten(2).transpose(1, 2) + state[P + "level_embed.weight"][level] for level, s in enumerate(scales)]
    positions = [_sine(*s.shape[-2:], s.shape[1])[None] for s in scales]
    out = state[P + "query_feat.weight"][None].expand(batch, -1, -1)
    query_pos = state[P + "query_embed.weight"][None].expand(batch, -1, -1)

    def predict(out, size):
        normed = _ln(state, P + "decoder_norm.", out)
        embedding = normed
        for layer in range(3):
            embedding = F.linear(embedding, state[P + f"mask_embed.layers.{layer}.weight"],
                                 state[P + f"mask_embed.layers.{layer}.bias"])
            embedding = F.relu(embedding) if layer < 2 else embedding
        masks = torch.einsum("bqc,bchw->bqhw", embedding, mask_features)
        hidden = F.interpolate(masks, size=size, mode="bilinear", align_corners=False).sigmoid().flatten(2) < 0.5
        hidden[hidden.all(-1)] = False
        scale = state[P + "lang_encoder.logit_scale"].exp()
        logits = scale * F.normalize(normed @ state[P + "class_embed"], dim=-1) @ labels.t()
        return logits, masks, hidden

    logits, masks, hidden = predict(out, scales[0].shape[-2:])
    for layer in range(config.decoder_layers):
        level = layer % 3
        cross = P + f"transformer_cross_attention_layers.{layer}."
        out = _ln(state, cross + "norm.", out + _mha(state, cross + "multihead_attn.", out + query_pos,
                                                      sources[level] + positions[level], sources[level], heads, hidden))
        self_attention = P + f"transformer_self_attention_layers.{layer}."
        out = _ln(state, self_attention + "norm.",
                  out + _mha(state, self_attention + "self_attn.", out + query_pos, out + query_pos, out, heads))
        ffn = P + f"transformer_ffn_layers.{layer}."
        hidden_ffn = F.linear(F.relu(F.linear(out, state[ffn + "linear1.weight"], state[ffn + "linear1.bias"])),
                              state[ffn + "linear2.weight"], state[ffn + "linear2.bias"])
        out = _ln(state, ffn + "norm.", out + hidden_ffn)
        logits, masks, hidden = predict(out, scales[(layer + 1) % 3].shape[-2:])
    return logits, masks, mask_features, scales

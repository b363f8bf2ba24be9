"""SEEM's decoder: X-Decoder's masked-attention transformer over the pixel decoder's three levels, with a class
head that scores queries against text embeddings, and its query groups for generic, referring (grounding) and
interactive (spatial, memory) segmentation."""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers.models.detr.modeling_detr import DetrSinePositionEmbedding

from .configuration_seem import SeemConfig
from .modeling_seem_prompts import prompt_embeddings, prompt_tokens, self_attention_visibility


class SeemSelfAttention(nn.Module):
    """Multi-head attention with PyTorch's parameter layout (`in_proj_weight` = [query; key; value]) whose softmax
    turns rows that are entirely masked into zeros instead of NaN (SEEM's `nan_to_num`): a padded prompt token
    then attends to nothing rather than poisoning the batch. With a `config` whose attention implementation is
    "sdpa", the product runs through `scaled_dot_product_attention` (same result, tested)."""

    def __init__(self, hidden_dim: int, num_heads: int, config: SeemConfig | None = None):
        super().__init__()
        self.num_heads, self.config = num_heads, config
        self.in_proj_weight = nn.Parameter(torch.empty(3 * hidden_dim, hidden_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * hidden_dim))
        self.out_proj = nn.Linear(hidden_dim, hidden_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, query, key, value, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Batch-first `(batch, length, hidden)` inputs; `attention_mask` `(batch * heads, length, length)` with
        True where attending is not allowed."""
        batch, length, hidden = query.shape
        weights = self.in_proj_weight.chunk(3)
        biases = self.in_proj_bias.chunk(3)
        heads, head_dim = self.num_heads, hidden // self.num_heads

        def project(x, index):
            x = nn.functional.linear(x, weights[index], biases[index])
            return x.view(batch, -1, heads, head_dim).transpose(1, 2)

        blocked = None if attention_mask is None else attention_mask.view(batch, heads, *attention_mask.shape[-2:])
        queries, keys, values = project(query, 0), project(key, 1), project(value, 2)
        if self.config is not None and self.config._attn_implementation == "sdpa":
            attended = nn.functional.scaled_dot_product_attention(
                queries, keys, values, attn_mask=None if blocked is None else ~blocked
            )
            attended = torch.nan_to_num(attended)  # a row with nothing to attend to gives zeros, as below
        else:
            scores = queries @ keys.transpose(-1, -2) / math.sqrt(head_dim)
            if blocked is not None:
                scores = scores.masked_fill(blocked, float("-inf"))
            attended = torch.nan_to_num(scores.softmax(-1)) @ values
        return self.out_proj(attended.transpose(1, 2).reshape(batch, length, hidden))


# Each sub-layer returns its residual sum; its post-norm LayerNorm is a sibling module in the decoder (the
# original nests it inside), so that adapters can wrap a sub-layer while its norm stays trainable (PEFT cannot
# train a module nested inside one it wraps).


class SeemCrossAttentionLayer(nn.Module):
    """Queries attend to one pixel-decoder level (PyTorch's `nn.MultiheadAttention`), plus the residual."""

    def __init__(self, config: SeemConfig):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(config.hidden_dim, config.num_heads, batch_first=True)

    def forward(self, queries, query_position, memory, memory_position, attention_mask=None):
        attended = self.multihead_attn(
            queries + query_position, memory + memory_position, memory, attn_mask=attention_mask, need_weights=False
        )[0]
        return queries + attended


class SeemSelfAttentionLayer(nn.Module):
    """Queries (and prompt tokens) attend to each other under the visibility mask, plus the residual."""

    def __init__(self, config: SeemConfig):
        super().__init__()
        self.self_attn = SeemSelfAttention(config.hidden_dim, config.num_heads, config)

    def forward(self, queries, query_position, attention_mask=None):
        keys = queries + query_position
        return queries + self.self_attn(keys, keys, queries, attention_mask)


class SeemFFNLayer(nn.Module):
    """Linear, ReLU, Linear, plus the residual."""

    def __init__(self, config: SeemConfig):
        super().__init__()
        self.linear1 = nn.Linear(config.hidden_dim, config.dim_feedforward)
        self.linear2 = nn.Linear(config.dim_feedforward, config.hidden_dim)

    def forward(self, queries):
        return queries + self.linear2(nn.functional.relu(self.linear1(queries)))


class SeemMLP(nn.Module):
    """Three Linear layers with ReLU between them (the mask-embedding head)."""

    def __init__(self, dim: int, num_layers: int = 3):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_layers))

    def forward(self, x):
        for index, layer in enumerate(self.layers):
            x = layer(x) if index == len(self.layers) - 1 else nn.functional.relu(layer(x))
        return x


def _hidden_outside(mask_logits: torch.Tensor, size) -> torch.Tensor:
    """Cross-attention mask `(batch, queries, h * w)` at a level's `size`: True (hidden) where the bilinearly
    resized mask has sigmoid < 0.5, i.e. outside the mask. No gradient flows through it."""
    resized = nn.functional.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)
    return (resized.sigmoid().flatten(2) < 0.5).detach()


class SeemDecoder(nn.Module):
    """SEEM's masked-attention decoder with its query groups.

    Layer i attends to pixel-decoder level i % 3 (strides 32, 16, 8), each query only inside the mask it predicted
    one step before (pixels with sigmoid < 0.5 are hidden; a query hiding everything sees everything), then the
    sequence attends to itself under `self_attention_visibility`, then an FFN; every layer is post-norm.
    Predictions (class embeddings and masks) are made before the first layer and after each, so there are
    `decoder_layers + 1` rounds, all supervised.

    Query groups, all sharing the layers and the prediction head:
    - object queries (`num_queries`): generic segmentation;
    - grounding queries, an exact copy of the object queries, which also see the text tokens of the referring
      sentences (those tokens go through self-attention and the FFN, never cross-attention);
    - spatial queries, copies of object queries per visual prompt (in training and with a `generator`,
      `spatial_queries_per_prompt` random ones, as SEEM v1 draws them; in eval mode without one, all of them,
      as SEEM's demo decoder copies them: no draw, and the best of every query answers), which see
      that prompt's visual tokens (pixels sampled from the level's features projected by `mask_spatial_embed`,
      plus `pn_indicator` for positive or negative) and, from the second interactive round on,
    - memory slots (`spatial_featured` content, `spatial_embed` position), each given to a prompt at random in
      every layer and cross-attending only inside that prompt's previous mask.
    """

    def __init__(self, config: SeemConfig):
        super().__init__()
        width = config.hidden_dim
        self.num_heads, self.num_levels = config.num_heads, config.num_feature_levels
        self.queries_per_prompt, self.max_spatial_tokens = config.spatial_queries_per_prompt, config.max_spatial_tokens
        self.position_embedding = DetrSinePositionEmbedding(num_position_features=width // 2, normalize=True)
        self.level_embed = nn.Embedding(config.num_feature_levels, width)
        self.query_feat = nn.Embedding(config.num_queries, width)
        self.query_embed = nn.Embedding(config.num_queries, width)
        self.transformer_cross_attention_layers = nn.ModuleList(
            SeemCrossAttentionLayer(config) for _ in range(config.decoder_layers)
        )
        self.transformer_self_attention_layers = nn.ModuleList(
            SeemSelfAttentionLayer(config) for _ in range(config.decoder_layers)
        )
        self.transformer_ffn_layers = nn.ModuleList(SeemFFNLayer(config) for _ in range(config.decoder_layers))
        self.cross_attention_norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(config.decoder_layers))
        self.self_attention_norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(config.decoder_layers))
        self.ffn_norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(config.decoder_layers))
        self.decoder_norm = nn.LayerNorm(width)
        self.class_embed = nn.Linear(width, config.dim_proj, bias=False)  # the original's x @ class_embed
        self.mask_embed = SeemMLP(width)
        # Visual prompts (the original's `mask_sptial_embed` is a raw x @ W parameter per level).
        self.mask_spatial_embed = nn.ModuleList(
            nn.Linear(width, width, bias=False) for _ in range(config.num_feature_levels)
        )
        self.pn_indicator = nn.Embedding(2, width)
        self.spatial_featured = nn.Embedding(config.spatial_memories, width)
        self.spatial_embed = nn.Embedding(config.spatial_memories, width)

    def predict(self, queries, mask_features, target_size):
        """Class embeddings `(batch, queries, dim_proj)`, mask embeddings, mask logits `(batch, queries, H/4, W/4)`
        and the cross-attention mask of the next layer at `target_size` `(batch, queries, h * w)`, True = hidden."""
        normed = self.decoder_norm(queries)
        mask_embeddings = self.mask_embed(normed)
        mask_logits = torch.einsum("bqc,bchw->bqhw", mask_embeddings, mask_features)
        return self.class_embed(normed), mask_embeddings, mask_logits, _hidden_outside(mask_logits, target_size)

    def forward(
        self,
        multi_scale: list[torch.Tensor],
        mask_features: torch.Tensor,
        grounding_tokens: torch.Tensor | None = None,
        grounding_padding: torch.Tensor | None = None,
        positive_prompts: torch.Tensor | None = None,
        negative_prompts: torch.Tensor | None = None,
        previous_masks: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        object_queries: bool = True,
    ) -> dict:
        """
        grounding_tokens `(B, T, C)` with `grounding_padding` `(B, T)` (True on padding): projected text tokens.
        positive_prompts, negative_prompts `(B, N, H, W)` bool at the padded input size: visual prompts.
        previous_masks `(B, N, h, w)`: each prompt's mask logits from the previous interactive round (memory).
        object_queries: run the object (generic) queries; without them a prompted pass gives the same grounding
            and spatial outputs (no group sees another) at a fraction of the cost.

        Returns `{"rounds": [...], "prompt_embeddings": (B, N, C) or None}`; each round holds `class_embeddings`
        and `mask_logits` of the object queries and, for each active group, `grounding_*` and `spatial_*`
        (`spatial_mask_embeddings` too).
        """
        batch = mask_features.shape[0]
        if previous_masks is not None and positive_prompts is None:
            raise ValueError("previous_masks (memory) continue an interactive session: give the visual prompts too.")
        memories, positions, sizes = [], [], []
        for level, features in enumerate(multi_scale):
            sizes.append(features.shape[-2:])
            positions.append(
                self.position_embedding(features.shape, features.device, features.dtype).flatten(2).transpose(1, 2)
            )
            memories.append(features.flatten(2).transpose(1, 2) + self.level_embed.weight[level])
        initial = self.query_feat.weight.unsqueeze(0).expand(batch, -1, -1)
        initial_position = self.query_embed.weight.unsqueeze(0).expand(batch, -1, -1)
        if not object_queries and grounding_tokens is None and positive_prompts is None:
            raise ValueError("Without object queries the decoder needs sentences or visual prompts.")
        groups = {"object": (initial, initial_position)} if object_queries else {}
        if grounding_tokens is not None:
            groups["grounding"] = (initial, initial_position)

        embeddings = spatial_index = token_levels = None
        if positive_prompts is not None:
            if negative_prompts is None:
                negative_prompts = torch.zeros_like(positive_prompts)
            embeddings = prompt_embeddings(mask_features, positive_prompts, self.max_spatial_tokens,
                                           self._draws(generator))
            token_levels = []
            for level, (features, size) in enumerate(zip(memories, sizes)):
                projected = self.mask_spatial_embed[level](features).transpose(1, 2).reshape(batch, -1, *size)
                token_levels.append(prompt_tokens(projected, positive_prompts, negative_prompts,
                                                  self.max_spatial_tokens, self.pn_indicator.weight,
                                                  self._draws(generator)))
            num_prompts = positive_prompts.shape[1]
            if generator is None and not self.training:  # SEEM's demo: every object query, for every prompt
                per_prompt = self.query_feat.num_embeddings
                picks = torch.arange(per_prompt, device=mask_features.device).repeat(num_prompts)
            else:  # SEEM v1: `spatial_queries_per_prompt` random copies per prompt
                per_prompt = self.queries_per_prompt
                picks = torch.randint(
                    self.query_feat.num_embeddings, (num_prompts * per_prompt,), generator=generator,
                    device=generator.device if generator is not None else "cpu",
                ).to(mask_features.device)
            spatial_index = torch.arange(num_prompts, device=mask_features.device).repeat_interleave(per_prompt)
            groups["spatial"] = (initial[:, picks], initial_position[:, picks])
        if previous_masks is not None:
            groups["memory"] = (
                self.spatial_featured.weight.unsqueeze(0).expand(batch, -1, -1),
                self.spatial_embed.weight.unsqueeze(0).expand(batch, -1, -1),
            )
        lengths = {name: content.shape[1] for name, (content, _) in groups.items()}
        queries = torch.cat([content for content, _ in groups.values()], dim=1)
        query_position = torch.cat([position for _, position in groups.values()], dim=1)
        text, text_position = grounding_tokens, None if grounding_tokens is None else grounding_tokens.detach()

        num_predicted = queries.shape[1] - lengths.get("memory", 0)
        rounds = []
        hidden = self._predict_round(queries[:, :num_predicted], mask_features, sizes[0], lengths, rounds)
        layers = zip(
            self.transformer_cross_attention_layers, self.transformer_self_attention_layers, self.transformer_ffn_layers
        )
        for index, (cross, self_attention, ffn) in enumerate(layers):
            level = index % self.num_levels
            memory_index = None
            if previous_masks is not None:
                memory_hidden, memory_index = self._memory_attention(previous_masks, sizes[level],
                                                                     self._draws(generator))
                hidden = torch.cat([hidden, memory_hidden], dim=1)
            hidden = hidden & ~hidden.all(-1, keepdim=True)  # a query that would see nothing sees everything
            queries = self.cross_attention_norms[index](cross(
                queries, query_position, memories[level], positions[level],
                hidden.repeat_interleave(self.num_heads, dim=0),
            ))
            sequence, sequence_position = [queries], [query_position]
            if text is not None:
                sequence.append(text), sequence_position.append(text_position)
            tokens = None
            if token_levels is not None:
                tokens, token_index, _ = token_levels[level]
                sequence.append(tokens), sequence_position.append(tokens.detach())
            mask = None
            if len(sequence) > 1 or memory_index is not None or "object" not in lengths:
                visible = self_attention_visibility(
                    batch, lengths.get("object", 0), lengths.get("grounding", 0), grounding_padding, spatial_index,
                    memory_index, None if tokens is None else token_index, device=queries.device,
                )
                mask = (~visible).repeat_interleave(self.num_heads, dim=0)
            sequence = self.self_attention_norms[index](
                self_attention(torch.cat(sequence, 1), torch.cat(sequence_position, 1), mask)
            )
            sequence = self.ffn_norms[index](ffn(sequence))
            queries = sequence[:, : queries.shape[1]]
            if text is not None:
                text = sequence[:, queries.shape[1] : queries.shape[1] + text.shape[1]]
            hidden = self._predict_round(
                queries[:, :num_predicted], mask_features, sizes[(index + 1) % self.num_levels], lengths, rounds
            )
        return {"rounds": rounds, "prompt_embeddings": embeddings}

    def _draws(self, generator: torch.Generator | None) -> torch.Generator | None:
        """The generator for one of SEEM's sampling draws (prompt pixels, memory slots): a given `generator`; in
        training torch's global one, as SEEM trains; in eval mode without a generator a fresh one seeded 0 for each
        draw, so a call repeats exactly (the same distribution as SEEM's draws, which the original makes at
        inference too: `rand_sample`, the memory `multinomial`)."""
        if generator is not None or self.training:
            return generator
        return torch.Generator().manual_seed(0)

    def _predict_round(self, queries, mask_features, target_size, lengths, rounds):
        """Runs the prediction head on every query group, appends the round's outputs split by group, and returns
        the next cross-attention mask."""
        class_embeddings, mask_embeddings, mask_logits, hidden = self.predict(queries, mask_features, target_size)
        outputs, start = {}, 0
        for name in ("object", "grounding", "spatial"):
            if name not in lengths:
                continue
            part = slice(start, start + lengths[name])
            prefix = "" if name == "object" else f"{name}_"
            outputs[f"{prefix}class_embeddings"] = class_embeddings[:, part]
            outputs[f"{prefix}mask_logits"] = mask_logits[:, part]
            if name == "spatial":
                outputs["spatial_mask_embeddings"] = mask_embeddings[:, part]
            start += lengths[name]
        rounds.append(outputs)
        return hidden

    def _memory_attention(self, previous_masks, size, generator):
        """Gives each memory slot to a prompt (uniformly, with replacement, sorted, as the original draws it in
        every layer) and hides from it everything outside that prompt's previous mask."""
        hidden = _hidden_outside(previous_masks, size)
        weights = torch.ones(previous_masks.shape[1], device=generator.device if generator is not None else "cpu")
        slots = torch.multinomial(weights, self.spatial_featured.num_embeddings, replacement=True, generator=generator)
        slots = slots.sort().values.to(previous_masks.device)
        return hidden[:, slots], slots


__all__ = [
    "SeemCrossAttentionLayer",
    "SeemDecoder",
    "SeemFFNLayer",
    "SeemMLP",
    "SeemSelfAttention",
    "SeemSelfAttentionLayer",
]

"""SEEM's decoder: X-Decoder's masked-attention transformer over the pixel decoder's three levels, with a class
head that scores queries against text embeddings. This file holds the layers and the generic (object-query)
path; the grounding, spatial and memory query groups build on the same layers."""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers.models.detr.modeling_detr import DetrSinePositionEmbedding

from .configuration_seem import SeemConfig


class SeemSelfAttention(nn.Module):
    """Multi-head attention with PyTorch's parameter layout (`in_proj_weight` = [query; key; value]) whose softmax
    turns rows that are entirely masked into zeros instead of NaN (SEEM's `nan_to_num`): a padded prompt token
    then attends to nothing rather than poisoning the batch."""

    def __init__(self, hidden_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
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

        scores = project(query, 0) @ project(key, 1).transpose(-1, -2) / math.sqrt(head_dim)
        if attention_mask is not None:
            scores = scores.masked_fill(attention_mask.view(batch, heads, *attention_mask.shape[-2:]), float("-inf"))
        probabilities = torch.nan_to_num(scores.softmax(-1))
        attended = (probabilities @ project(value, 2)).transpose(1, 2).reshape(batch, length, hidden)
        return self.out_proj(attended)


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
        self.self_attn = SeemSelfAttention(config.hidden_dim, config.num_heads)

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


class SeemDecoder(nn.Module):
    """The masked-attention decoder of SEEM's generic (object-query) path.

    Layer i attends to pixel-decoder level i % 3 (strides 32, 16, 8), each query only inside the mask it predicted
    one step before (pixels with sigmoid < 0.5 are hidden; a query hiding everything sees everything), then the
    queries attend to each other, then an FFN; every layer is post-norm. Predictions (class embeddings and masks)
    are made before the first layer and after each, so there are `decoder_layers + 1` rounds, all supervised.
    """

    def __init__(self, config: SeemConfig):
        super().__init__()
        width = config.hidden_dim
        self.num_heads, self.num_levels = config.num_heads, config.num_feature_levels
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

    def predict(self, queries, mask_features, target_size):
        """Class embeddings `(batch, queries, dim_proj)`, mask logits `(batch, queries, H/4, W/4)` and the
        attention mask of the next layer at `target_size` (True = hidden)."""
        normed = self.decoder_norm(queries)
        mask_logits = torch.einsum("bqc,bchw->bqhw", self.mask_embed(normed), mask_features)
        resized = nn.functional.interpolate(mask_logits, size=target_size, mode="bilinear", align_corners=False)
        hidden = (resized.sigmoid().flatten(2) < 0.5).unsqueeze(1).repeat(1, self.num_heads, 1, 1).flatten(0, 1)
        return self.class_embed(normed), mask_logits, hidden.detach()

    def forward(self, multi_scale: list[torch.Tensor], mask_features: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Returns one dict per round (`class_embeddings`, `mask_logits`), the last round last."""
        batch = mask_features.shape[0]
        memories, positions, sizes = [], [], []
        for level, features in enumerate(multi_scale):
            sizes.append(features.shape[-2:])
            positions.append(
                self.position_embedding(features.shape, features.device, features.dtype).flatten(2).transpose(1, 2)
            )
            memories.append(features.flatten(2).transpose(1, 2) + self.level_embed.weight[level])
        queries = self.query_feat.weight.unsqueeze(0).expand(batch, -1, -1)
        query_position = self.query_embed.weight.unsqueeze(0).expand(batch, -1, -1)

        class_embeddings, mask_logits, hidden = self.predict(queries, mask_features, sizes[0])
        rounds = [{"class_embeddings": class_embeddings, "mask_logits": mask_logits}]
        layers = zip(
            self.transformer_cross_attention_layers, self.transformer_self_attention_layers, self.transformer_ffn_layers
        )
        for index, (cross, self_attention, ffn) in enumerate(layers):
            level = index % self.num_levels
            hidden = hidden & ~hidden.all(-1, keepdim=True)  # a query that would see nothing sees everything
            queries = self.cross_attention_norms[index](
                cross(queries, query_position, memories[level], positions[level], hidden)
            )
            queries = self.self_attention_norms[index](self_attention(queries, query_position))
            queries = self.ffn_norms[index](ffn(queries))
            class_embeddings, mask_logits, hidden = self.predict(
                queries, mask_features, sizes[(index + 1) % self.num_levels]
            )
            rounds.append({"class_embeddings": class_embeddings, "mask_logits": mask_logits})
        return rounds


__all__ = [
    "SeemCrossAttentionLayer",
    "SeemDecoder",
    "SeemFFNLayer",
    "SeemMLP",
    "SeemSelfAttention",
    "SeemSelfAttentionLayer",
]

"""A Llama-style decoder-only transformer: tokens in, logits out.

Pre-norm RMSNorm, rotary position embeddings, grouped-query attention through
`scaled_dot_product_attention`, SwiGLU feed-forward, no biases, optional tied embeddings.

Construction only allocates (so the model builds on the meta device); `init_weights()` fills
parameters and the rotary tables. Parallelism, device placement, precision and the loss
belong to the trainer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from model.config import ModelConfig
from model.kv_cache import KVCache


def rope_tables(head_dim: int, max_seq_len: int, theta: float,
                device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position * frequency, each (max_seq_len, head_dim), in float32.

    Dimension i and i + head_dim/2 form one rotating pair with frequency theta^(-2i/head_dim)
    (the "rotate half" layout of Hugging Face's Llama, so its weights need no permutation).
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.int64).float() / head_dim))
    positions = torch.arange(max_seq_len, device=device, dtype=torch.int64).float()
    angles = torch.outer(positions, inv_freq)  # (S, hd/2)
    angles = torch.cat((angles, angles), dim=-1)  # (S, hd)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, nh, T, hd) by position; cos and sin are (T, hd). Computed in float32."""
    xf = x.float()
    x1, x2 = xf.chunk(2, dim=-1)  # (B, nh, T, hd/2) each
    rotated = torch.cat((-x2, x1), dim=-1)
    return (xf * cos + rotated * sin).type_as(x)


class Attention(nn.Module):
    """Causal grouped-query self-attention with rotary positions."""

    def __init__(self, config: ModelConfig, layer_id: int) -> None:
        super().__init__()
        self.layer_id = layer_id
        self.n_heads = config.n_heads
        self.n_kv_heads = config.n_kv_heads
        self.head_dim = config.head_dim
        self.q_proj = nn.Linear(config.dim, config.n_heads * config.head_dim, bias=False)
        self.k_proj = nn.Linear(config.dim, config.n_kv_heads * config.head_dim, bias=False)
        self.v_proj = nn.Linear(config.dim, config.n_kv_heads * config.head_dim, bias=False)
        self.out_proj = nn.Linear(config.n_heads * config.head_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        gqa = self.n_kv_heads != self.n_heads
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)  # (B, nh, T, hd)
        else:
            past = cache.length
            k, v = cache.update(self.layer_id, k, v)  # (B, nkv, past + T, hd)
            if past == 0:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
            elif T == 1:
                # One new token sees every cached position: no mask at all.
                y = F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)
            else:
                # is_causal aligns the mask top-left when T != S; new tokens need it bottom-right.
                mask = torch.ones(T, past + T, dtype=torch.bool, device=q.device).tril(diagonal=past)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, nh * hd)
        return self.out_proj(y)


class FeedForward(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.dim, config.ffn_dim, bias=False)
        self.up_proj = nn.Linear(config.dim, config.ffn_dim, bias=False)
        self.down_proj = nn.Linear(config.ffn_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class TransformerBlock(nn.Module):
    """Pre-norm residual block: x + attention(norm(x)), then x + feed_forward(norm(x))."""

    def __init__(self, config: ModelConfig, layer_id: int) -> None:
        super().__init__()
        self.layer_id = layer_id
        self.attention_norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.attention = Attention(config, layer_id)
        self.ffn_norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.feed_forward = FeedForward(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, cache)
        return x + self.feed_forward(self.ffn_norm(x))

    def init_weights(self, config: ModelConfig) -> None:
        std = config.init_std
        # Each block adds two projections to the residual stream; scaling their init by
        # 1/sqrt(2 * n_layers) keeps the stream's variance independent of depth (GPT-2).
        residual_std = std / math.sqrt(2 * config.n_layers)
        for linear in (self.attention.q_proj, self.attention.k_proj, self.attention.v_proj,
                       self.feed_forward.gate_proj, self.feed_forward.up_proj):
            _trunc_normal_(linear.weight, std)
        for linear in (self.attention.out_proj, self.feed_forward.down_proj):
            _trunc_normal_(linear.weight, residual_std)
        self.attention_norm.reset_parameters()
        self.ffn_norm.reset_parameters()


def _trunc_normal_(weight: torch.Tensor, std: float) -> None:
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-3 * std, b=3 * std)


class Transformer(nn.Module):
    """Token ids (B, T) in, logits (B, T, vocab_size) out."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        # A ModuleList of blocks: a trainer wraps each one (fully_shard, activation checkpointing).
        self.layers = nn.ModuleList(TransformerBlock(config, i) for i in range(config.n_layers))
        self.norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        # Tied: the logits reuse tok_embeddings.weight directly rather than sharing a Parameter
        # between two modules, which moving off the meta device (to_empty) would untie.
        self.output = None if config.tie_embeddings else nn.Linear(config.dim, config.vocab_size, bias=False)
        cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        # Not persistent: derived from the config, so checkpoints hold only learned weights.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Fill every parameter and the rotary tables on whatever device they live on.

        Truncated normal (at 3 std) with `init_std` for embeddings, input projections and the
        output head; `init_std / sqrt(2 * n_layers)` for the projections that write into the
        residual stream; ones for norm weights.
        """
        config = self.config
        self.init_rope()
        _trunc_normal_(self.tok_embeddings.weight, config.init_std)
        for block in self.layers:
            block.init_weights(config)
        self.norm.reset_parameters()
        if self.output is not None:
            _trunc_normal_(self.output.weight, config.init_std)

    @torch.no_grad()
    def init_rope(self) -> None:
        """Recompute the rotary tables in float32 on their device.

        Needed after `to_empty()` (uninitialised memory) and after `.to(dtype)`, which would
        otherwise leave the tables in low precision.
        """
        device = self.rope_cos.device
        self.rope_cos, self.rope_sin = rope_tables(self.config.head_dim, self.config.max_seq_len,
                                                   self.config.rope_theta, device=device)

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits for every position of `tokens` (B, T).

        With a cache, `tokens` continue the sequence already cached: their positions start at
        `cache.length`, and the cache grows by T.
        """
        B, T = tokens.shape
        start = 0 if cache is None else cache.length
        if start + T > self.config.max_seq_len:
            raise ValueError(f"sequence of {start + T} tokens exceeds max_seq_len={self.config.max_seq_len}")
        if cache is not None and start + T > cache.max_len:
            raise ValueError(f"sequence of {start + T} tokens exceeds the KV cache's max_len={cache.max_len}")
        cos = self.rope_cos[start:start + T]  # (T, hd)
        sin = self.rope_sin[start:start + T]
        h = self.tok_embeddings(tokens)  # (B, T, d)
        for block in self.layers:
            h = block(h, cos, sin, cache)
        if cache is not None:
            cache.advance(T)
        h = self.norm(h)
        weight = self.tok_embeddings.weight if self.output is None else self.output.weight
        return F.linear(h, weight)  # (B, T, V)

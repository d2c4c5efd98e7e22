"""A preallocated key/value cache for autoregressive decoding."""

from __future__ import annotations

import torch

from model.config import ModelConfig


class KVCache:
    """Keys and values of every layer for the positions seen so far, in fixed-size buffers.

    The buffers are allocated once for `max_len` positions, so a decoding step writes one slice
    instead of concatenating (which would copy the whole cache every token). All sequences in the
    batch share one length: prompts of a batch must be the same length.
    """

    def __init__(self, config: ModelConfig, *, batch_size: int, max_len: int,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> None:
        if max_len > config.max_seq_len:
            raise ValueError(f"KV cache max_len={max_len} exceeds the model's max_seq_len={config.max_seq_len}")
        shape = (config.n_layers, batch_size, config.n_kv_heads, max_len, config.head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)  # (L, B, n_kv, S_max, hd)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.length = 0  # positions already written; the next token's position

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store a layer's new keys/values (B, n_kv, T, hd) and return all so far (B, n_kv, length + T, hd)."""
        end = self.length + k.size(2)
        self.keys[layer, :, :, self.length:end] = k
        self.values[layer, :, :, self.length:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, n: int) -> None:
        """Called once per forward, after every layer has stored its `n` new positions."""
        self.length += n

    def reset(self) -> None:
        self.length = 0

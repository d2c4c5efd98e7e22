"""Autoregressive decoding: greedy or sampled (temperature, top-k, top-p), streamed token by token."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from model.kv_cache import KVCache
from model.transformer import Transformer


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """How the next token is chosen. temperature 0 is greedy (argmax); top_k / top_p None is off."""

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    stop_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, or left out to keep every token; got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], or left out to keep every token; got {self.top_p}")


def next_token(logits: torch.Tensor, sampling: SamplingConfig,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Choose one token per row of logits (B, V); returns (B,)."""
    if sampling.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / sampling.temperature
    if sampling.top_k is not None and sampling.top_k < logits.size(-1):
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p is not None and sampling.top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        sorted_probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already hold top_p of the mass;
        # the most likely token is therefore always kept.
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        drop_sorted = mass_before >= sampling.top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


@torch.inference_mode()
def stream_tokens(model: Transformer, prompt: Sequence[int], sampling: SamplingConfig, *,
                  generator: torch.Generator | None = None, use_cache: bool = True) -> Iterator[int]:
    """Yield new token ids one at a time after `prompt`.

    Stops after `max_new_tokens`, when the context reaches the model's max_seq_len, or when
    `stop_token_id` is chosen (that token is not yielded). Without the cache every step reruns
    the whole sequence; the two give the same tokens.
    """
    if len(prompt) == 0:
        raise ValueError("the prompt is empty: give at least one token (e.g. the end-of-text id)")
    max_len = model.config.max_seq_len
    if len(prompt) > max_len:
        raise ValueError(f"the prompt has {len(prompt)} tokens; the model's context is {max_len}")
    was_training = model.training
    model.eval()
    weight = model.tok_embeddings.weight
    sequence = torch.tensor([list(prompt)], dtype=torch.long, device=weight.device)  # (1, T)
    total = min(max_len, len(prompt) + sampling.max_new_tokens)
    cache = KVCache(model.config, batch_size=1, max_len=total, device=weight.device,
                    dtype=weight.dtype) if use_cache else None
    length = len(prompt)
    try:
        while length < total:
            if cache is None:
                logits = model(sequence)  # (1, length, V)
            else:
                logits = model(sequence[:, cache.length:], cache)  # only the tokens not yet cached
            token = next_token(logits[:, -1], sampling, generator)  # (1,)
            token_id = int(token.item())
            if token_id == sampling.stop_token_id:
                return
            yield token_id
            sequence = torch.cat((sequence, token.view(1, 1)), dim=1)
            length += 1
    finally:
        model.train(was_training)


def generate(model: Transformer, prompt: Sequence[int], sampling: SamplingConfig, *,
             generator: torch.Generator | None = None, use_cache: bool = True,
             on_token: Callable[[int], None] | None = None) -> list[int]:
    """All new token ids after `prompt`; `on_token` is called with each as soon as it is chosen."""
    tokens = []
    for token_id in stream_tokens(model, prompt, sampling, generator=generator, use_cache=use_cache):
        tokens.append(token_id)
        if on_token is not None:
            on_token(token_id)
    return tokens

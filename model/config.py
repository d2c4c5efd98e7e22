"""Model shapes: the frozen `ModelConfig`, named presets, closed-form parameter and FLOP counts."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import InitVar, dataclass
from typing import Any


class ModelConfigError(ValueError):
    """A model config problem, phrased as one line that says how to fix it."""


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Shapes of a Llama-style decoder-only transformer.

    `n_kv_heads` defaults to `n_heads` (plain multi-head attention) and `ffn_dim` to the Llama
    rule (two thirds of 4 * dim, rounded up to `multiple_of`); both are resolved when the config
    is built, so a saved config always states them. `multiple_of` only serves that rule and is
    not kept.
    """

    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int | None = None
    ffn_dim: int | None = None
    multiple_of: InitVar[int] = 256
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 2048
    tie_embeddings: bool = False
    init_std: float = 0.02

    def __post_init__(self, multiple_of: int) -> None:
        _check_positive_int("multiple_of", multiple_of)
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "max_seq_len"):
            _check_positive_int(name, getattr(self, name))
        for name in ("n_kv_heads", "ffn_dim"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name))
        for name in ("norm_eps", "rope_theta", "init_std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ModelConfigError(f"{name} must be a number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.tie_embeddings, bool):
            raise ModelConfigError(f"tie_embeddings must be true or false, got {self.tie_embeddings!r}")

        if self.dim % self.n_heads:
            divisors = [h for h in range(1, min(self.dim, 128) + 1) if self.dim % h == 0 and (self.dim // h) % 2 == 0]
            raise ModelConfigError(
                f"dim={self.dim} is not divisible by n_heads={self.n_heads}: pick n_heads from {divisors} "
                f"or change dim (head_dim = dim // n_heads)")
        if self.head_dim % 2:
            raise ModelConfigError(
                f"head_dim = dim // n_heads = {self.head_dim} is odd; rotary embeddings rotate pairs of "
                f"dimensions, so choose dim and n_heads with an even quotient")
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        if self.n_heads % self.n_kv_heads:
            raise ModelConfigError(
                f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}: grouped-query "
                f"attention shares each key/value head among n_heads // n_kv_heads query heads; pick "
                f"n_kv_heads from {[k for k in range(1, self.n_heads + 1) if self.n_heads % k == 0]}")
        if self.ffn_dim is None:
            object.__setattr__(self, "ffn_dim", llama_ffn_dim(self.dim, multiple_of))

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, table: Mapping[str, Any], where: str = "model config") -> ModelConfig:
        """Build from a mapping (a parsed model.json); unknown or missing keys are one-line errors."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        allowed = {*fields, "multiple_of"}
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise ModelConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        required = [name for name, f in fields.items()
                    if f.default is dataclasses.MISSING and name not in table]
        if required:
            raise ModelConfigError(f"{where}: missing key(s) {required}")
        try:
            return cls(**table)
        except ModelConfigError as error:
            raise ModelConfigError(f"{where}: {error}") from None


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelConfigError(f"{name} must be a whole number >= 1, got {value!r}")


def llama_ffn_dim(dim: int, multiple_of: int) -> int:
    """SwiGLU hidden size: 2/3 of 4 * dim (same parameters as a 4x GELU MLP), rounded up to multiple_of."""
    hidden = int(2 * (4 * dim) / 3)
    return multiple_of * math.ceil(hidden / multiple_of)


# Sizes follow the GPT-3 size classes (125m, 350m) and Llama shapes (1b after Llama 3.2 1B,
# 7b = Llama-2-7B exactly). The parameter count depends on the vocabulary: see num_params.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, multiple_of=16, max_seq_len=256),
    "125m": dict(dim=768, n_layers=12, n_heads=12, max_seq_len=2048, tie_embeddings=True),
    "350m": dict(dim=1024, n_layers=24, n_heads=16, max_seq_len=2048, tie_embeddings=True),
    "1b": dict(dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, ffn_dim=8192, max_seq_len=2048,
               rope_theta=500000.0, tie_embeddings=True),
    "7b": dict(dim=4096, n_layers=32, n_heads=32, n_kv_heads=32, multiple_of=256, norm_eps=1e-5,
               rope_theta=10000.0, max_seq_len=4096, tie_embeddings=False),
}


def preset(name: str, *, vocab_size: int, **overrides: Any) -> ModelConfig:
    """A named preset with the tokenizer's vocabulary size; `overrides` replace any field."""
    if name not in PRESETS:
        raise ModelConfigError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(ModelConfig)} | {"multiple_of"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ModelConfigError(f"preset {name!r}: unknown override(s) {unknown}; allowed: {sorted(fields)}")
    return ModelConfig(**{**PRESETS[name], "vocab_size": vocab_size, **overrides})


def num_params(config: ModelConfig, *, embedding: bool = True) -> int:
    """Parameter count in closed form; `embedding=False` leaves out the input embedding table.

    The input table is a lookup, not a matmul; with tied embeddings the same matrix is also the
    output projection, so it is counted even with `embedding=False`.
    """
    d, hd, f = config.dim, config.head_dim, config.ffn_dim
    attention = d * (config.n_heads * hd) + 2 * d * (config.n_kv_heads * hd) + (config.n_heads * hd) * d
    feed_forward = 3 * d * f
    norms = 2 * d
    per_layer = attention + feed_forward + norms
    table = config.vocab_size * d
    output = 0 if config.tie_embeddings else table
    total = table + config.n_layers * per_layer + d + output
    if not embedding and not config.tie_embeddings:
        total -= table
    return total


def flops_per_token(config: ModelConfig, seq_len: int) -> int:
    """Training FLOPs per token (forward + backward): 6N + 12 * n_layers * n_heads * head_dim * seq_len.

    N is every parameter that takes part in a matmul: all parameters except the input embedding
    table, which is a lookup (`num_params(config, embedding=False)`). The output projection is a
    (dim x vocab) matmul per token and is counted, also when it shares its matrix with the input
    table. Norm weights are elementwise and counted though negligible. The attention term is the
    score and value matmuls over the full (not causally halved) seq_len window, the convention of
    PaLM's MFU accounting (Chowdhery et al. 2022, appendix B), so MFU figures compare with
    published ones.
    """
    if seq_len < 1:
        raise ModelConfigError(f"seq_len must be >= 1, got {seq_len}")
    n = num_params(config, embedding=False)
    return 6 * n + 12 * config.n_layers * config.n_heads * config.head_dim * seq_len

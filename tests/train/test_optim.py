"""Weight decay on matrices only; warm-up then cosine."""

from __future__ import annotations

import math

import pytest
import torch

from model.config import preset
from model.transformer import Transformer
from train.config import OptimizerConfig
from train.optim import build_optimizer, learning_rate, parameter_groups


def test_decay_applies_to_matrices_only():
    model = Transformer(preset("tiny", vocab_size=64))
    decay, no_decay = parameter_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    # Norm weights: two per block and the final one.
    assert len(no_decay["params"]) == 2 * model.config.n_layers + 1


def test_adamw_is_not_fused_on_cpu():
    optimizer = build_optimizer(Transformer(preset("tiny", vocab_size=64)), OptimizerConfig(), torch.device("cpu"))
    assert isinstance(optimizer, torch.optim.AdamW) and not optimizer.defaults["fused"]


def test_schedule():
    config = OptimizerConfig(lr=1.0, min_lr=0.1, warmup_steps=10)
    assert learning_rate(1, config, 110) == pytest.approx(0.1)
    assert learning_rate(10, config, 110) == pytest.approx(1.0)
    assert learning_rate(60, config, 110) == pytest.approx(0.55)  # half way down the cosine
    assert learning_rate(110, config, 110) == pytest.approx(0.1)
    rates = [learning_rate(s, config, 110) for s in range(1, 111)]
    assert all(a <= b for a, b in zip(rates[:10], rates[1:10]))
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    no_warmup = OptimizerConfig(lr=1.0, min_lr=0.0, warmup_steps=0)
    assert learning_rate(1, no_warmup, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 100)))

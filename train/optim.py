"""AdamW with decoupled weight decay on 2-D weights only, and the warm-up + cosine learning rate."""

from __future__ import annotations

import math

import torch
from torch import nn

from train.config import OptimizerConfig


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Matrices (projections, embeddings) decay; vectors (norm weights) do not."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, config: OptimizerConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the model's (possibly sharded) parameters; the fused kernel on CUDA."""
    return torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr,
                             betas=(config.beta1, config.beta2), eps=config.eps,
                             fused=device.type == "cuda", foreach=None if device.type == "cuda" else True)


def learning_rate(step: int, config: OptimizerConfig, total_steps: int) -> float:
    """The rate for optimizer step `step` (1-based): linear warm-up to lr, then cosine down to min_lr."""
    if config.warmup_steps and step <= config.warmup_steps:
        return config.lr * step / config.warmup_steps
    span = total_steps - config.warmup_steps
    progress = 1.0 if span <= 0 else min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1.0 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr

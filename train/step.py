"""One training step: the fp32 loss, gradient accumulation over micro-batches, clipping, evaluation.

These work on a plain module as well as on an FSDP2-sharded one, which is how the tests
compare two ranks with one process.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss, computed in fp32 whatever the logits' dtype. logits (B, T, V), targets (B, T)."""
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


def forward_backward(model: nn.Module, micro_batches: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Accumulate gradients of the mean loss over the micro-batches; returns that loss (this rank's).

    Gradients are reduced across ranks only after the last micro-batch; FSDP averages them,
    so the result is the gradient of the mean loss over the global batch.
    """
    total = torch.zeros((), device=device)
    count = len(micro_batches)
    for i, tokens in enumerate(micro_batches):
        if isinstance(model, FSDPModule):
            model.set_requires_gradient_sync(i == count - 1)
        tokens = tokens.to(device, non_blocking=True)  # (B, T + 1)
        loss = cross_entropy(model(tokens[:, :-1]), tokens[:, 1:]) / count
        loss.backward()
        total += loss.detach()
    return total


def clip_gradients(model: nn.Module, max_norm: float) -> torch.Tensor:
    """The global gradient norm (over every shard); gradients are scaled down to max_norm when above it."""
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    if isinstance(norm, DTensor):
        norm = norm.full_tensor()
    if max_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, micro_batches: Sequence[torch.Tensor], *,
               grad_clip: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step; returns (this rank's loss, global gradient norm before clipping)."""
    loss = forward_backward(model, micro_batches, device)
    norm = clip_gradients(model, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss, norm


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Mean loss over `batches` (this rank's)."""
    losses = []
    for tokens in batches:
        tokens = tokens.to(device)  # (B, T + 1)
        losses.append(cross_entropy(model(tokens[:, :-1]), tokens[:, 1:]))
    if isinstance(model, FSDPModule):
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.reshard()  # the root keeps its parameters gathered after forward; free them
    return torch.stack(losses).mean()

"""Parallelism for a Transformer built on the meta device, applied in a fixed order.

1. activation checkpointing per block (none, full or selective),
2. torch.compile per block (optional),
3. FSDP2 `fully_shard` on each block, then on the root with the embeddings, final norm and head.

Parameters stay on the meta device; the trainer materialises and fills them afterwards.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

from model.transformer import Transformer
from train.config import ParallelConfig

ACTIVATION_CHECKPOINTING = ("none", "full", "selective")


def _saved_ops() -> frozenset:
    """Ops whose outputs selective checkpointing keeps: matmuls and attention, the costly ones to redo."""
    aten = torch.ops.aten
    names = ["mm", "bmm", "addmm", "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
             "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu"]
    return frozenset(getattr(aten, name).default for name in names if hasattr(aten, name))


SAVED_OPS = _saved_ops()


def _keep_matmuls(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    # Norms, rotary embeddings, SiLU and the residual adds are cheap to recompute and their
    # outputs are as large as a matmul's, so recomputing them halves the saved memory or better.
    return CheckpointPolicy.MUST_SAVE if op in SAVED_OPS else CheckpointPolicy.PREFER_RECOMPUTE


def selective_context():
    return create_selective_checkpoint_contexts(_keep_matmuls)


def apply_activation_checkpointing(model: Transformer, mode: str) -> None:
    """Wrap each block so its activations are recomputed in backward (full) or mostly kept (selective)."""
    if mode not in ACTIVATION_CHECKPOINTING:
        raise ValueError(f"activation checkpointing {mode!r}: choose one of {list(ACTIVATION_CHECKPOINTING)}")
    if mode == "none":
        return
    options = {} if mode == "full" else {"context_fn": selective_context}
    for i, block in enumerate(model.layers):
        # The wrapper's parameter-name prefix is dropped by the state-dict helpers, so
        # checkpoints and model directories keep the plain names.
        model.layers[i] = checkpoint_wrapper(block, checkpoint_impl=CheckpointImpl.NO_REENTRANT,
                                             preserve_rng_state=False, **options)


def apply_compile(model: Transformer) -> None:
    """Compile each block in place (parameter names unchanged); blocks share shapes, so one graph serves all."""
    for block in model.layers:
        block.compile()


def mixed_precision(setting: str, device: torch.device) -> MixedPrecisionPolicy:
    """bf16 parameters for compute with fp32 gradient reduction, or fp32 throughout.

    `auto` is bf16 on CUDA and fp32 on CPU. The sharded parameters and the optimizer stay fp32 either way.
    """
    if setting == "bf16" or (setting == "auto" and device.type == "cuda"):
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def apply_fsdp(model: Transformer, mesh: DeviceMesh, policy: MixedPrecisionPolicy) -> None:
    """Shard each block, then the root; the root stays gathered after forward because backward starts with its head."""
    for block in model.layers:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=False)


def parallelize(model: Transformer, config: ParallelConfig, device: torch.device, mesh: DeviceMesh) -> nn.Module:
    apply_activation_checkpointing(model, config.activation_checkpointing)
    if config.compile:
        apply_compile(model)
    apply_fsdp(model, mesh, mixed_precision(config.mixed_precision, device))
    return model


"""One rank of the FSDP equivalence test, run under torchrun: a few steps on a fixed global batch.

Each rank trains on its own rows of the same global batches; rank 0 saves the losses, the
gradients of the first step and the final weights for the test to compare with one process.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.tensor import DTensor

from model.config import preset
from train.config import TrainJob, load_train_job
from train.optim import build_optimizer, learning_rate, set_learning_rate
from train.step import clip_gradients, forward_backward
from train.trainer import build_model, init_distributed, mean_over_ranks

VOCAB = 320
STEPS = 3


def global_batches(job: TrainJob, world_size: int) -> torch.Tensor:
    """(steps, grad_accum, world_size * batch_size, seq_len + 1) token ids, the same on every rank."""
    generator = torch.Generator().manual_seed(1234)
    shape = (STEPS, job.train.grad_accum, world_size * job.data.batch_size, job.data.seq_len + 1)
    return torch.randint(0, VOCAB, shape, generator=generator)


def plain_name(name: str) -> str:
    return name.replace("_checkpoint_wrapped_module.", "")


def run_steps(model: nn.Module, job: TrainJob, batches: torch.Tensor, device: torch.device) -> dict:
    """STEPS optimizer steps on `batches` (steps, accum, rows, T + 1); losses and norms are global means."""
    optimizer = build_optimizer(model, job.optimizer, device)
    losses, norms, first_grads = [], [], {}
    for step in range(1, STEPS + 1):
        set_learning_rate(optimizer, learning_rate(step, job.optimizer, job.train.steps))
        loss = forward_backward(model, list(batches[step - 1]), device)
        if step == 1:
            for name, param in model.named_parameters():
                grad = param.grad.full_tensor() if isinstance(param.grad, DTensor) else param.grad
                first_grads[plain_name(name)] = grad.detach().clone()
        norms.append(clip_gradients(model, job.optimizer.grad_clip).item())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(mean_over_ranks(loss) if dist.is_initialized() else loss.item())
    return {"losses": losses, "norms": norms, "grads": first_grads}


def main(job_path: str, out_path: str) -> None:
    job = load_train_job(job_path)
    env = init_distributed(job.parallel)
    model = build_model(job, preset("tiny", vocab_size=VOCAB), env)
    rows = job.data.batch_size
    mine = global_batches(job, env.world_size)[:, :, env.rank * rows:(env.rank + 1) * rows]
    result = run_steps(model, job, mine, env.device)
    result["final"] = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if env.is_main:
        torch.save(result, out_path)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

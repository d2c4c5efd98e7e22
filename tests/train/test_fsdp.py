"""FSDP2 over two ranks gives what one process gives on the same global batch."""

from __future__ import annotations

import pytest
import torch

from model.config import preset
from model.transformer import Transformer
from tests.train import fsdp_worker
from tests.train.conftest import job_table, run_checked, torchrun, write_job
from train.config import parse_train_job, resolve_paths
from train.trainer import initial_state

RTOL, ATOL = 1e-4, 1e-6


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=RTOL, atol=ATOL)


@pytest.fixture(scope="module")
def equivalence(tmp_path_factory, token_dir):
    """(two-rank FSDP result, one-process result) for three steps of two micro-batches each."""
    tmp = tmp_path_factory.mktemp("fsdp")
    table = job_table(token_dir, tmp / "run", data={"batch_size": 2, "seq_len": 32},
                      train={"steps": 10, "grad_accum": 2},
                      parallel={"activation_checkpointing": "selective"},
                      optimizer={"grad_clip": 0.05, "warmup_steps": 1})
    job_path = write_job(tmp / "job.toml", table)
    out = tmp / "fsdp.pt"
    run_checked(torchrun([str(fsdp_worker.__file__), str(job_path), str(out)]))
    sharded = torch.load(out, weights_only=False)

    job = resolve_paths(parse_train_job(table, "test"))
    config = preset("tiny", vocab_size=fsdp_worker.VOCAB)
    with torch.device("meta"):
        model = Transformer(config)
    model.to_empty(device="cpu")
    model.load_state_dict(initial_state(job, config))
    model.init_rope()
    single = fsdp_worker.run_steps(model, job, fsdp_worker.global_batches(job, 2), torch.device("cpu"))
    single["final"] = model.state_dict()
    return sharded, single


def test_same_losses(equivalence):
    sharded, single = equivalence
    assert sharded["losses"] == pytest.approx(single["losses"], rel=1e-5)
    # The clip threshold sits below the norms, so clipping acted on every step.
    assert all(n > 0.05 for n in single["norms"])
    assert sharded["norms"] == pytest.approx(single["norms"], rel=1e-4)


def test_same_gradients(equivalence):
    sharded, single = equivalence
    assert sharded["grads"].keys() == single["grads"].keys()
    for name, grad in single["grads"].items():
        assert close(sharded["grads"][name], grad), name
        # Gradients summed over the two ranks instead of averaged would be twice as large:
        # the tolerance tells them apart.
        assert not close(2 * grad, grad), name


def test_same_weights_after_steps(equivalence):
    sharded, single = equivalence
    for name, weight in single["final"].items():
        # Adam divides by the root of the squared gradients, which magnifies rounding in tiny ones.
        assert torch.allclose(sharded["final"][name], weight, rtol=RTOL, atol=1e-5), name

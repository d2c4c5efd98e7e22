"""Fixtures for the trainer tests: token directories, job files and a torchrun launcher."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.fixtures.token_shards import build_tokenizer, patterned_documents, write_token_dir
from tests.fixtures.torch_threads import one_torch_thread  # noqa: F401  (autouse)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def token_dir(tmp_path_factory, tokenizer) -> Path:
    """Four shards of learnable documents with row groups of 32, and the tokenizer they were made with."""
    docs = patterned_documents(480, tokenizer.get_vocab_size(), seed=1)
    return write_token_dir(tmp_path_factory.mktemp("tokens") / "tokens", docs, shards=4, row_group_rows=32,
                           tokenizer=tokenizer)


def job_table(token_dir: Path, output_dir: Path, **sections: Mapping[str, Any]) -> dict[str, Any]:
    """A small CPU training job; `sections` update its tables."""
    table: dict[str, Any] = {
        "job": {"name": "test", "output_dir": str(output_dir)},
        "data": {"path": str(token_dir), "seq_len": 64, "batch_size": 4, "workers": 0, "shuffle_buffer": 16},
        "model": {"preset": "tiny"},
        "train": {"steps": 4},
        "optimizer": {"lr": 3e-3, "warmup_steps": 2},
        "parallel": {"device": "cpu"},
        "checkpoint": {"every": 0, "keep": 2},
        "metrics": {"every": 1, "progress": False},
    }
    for name, values in sections.items():
        table[name] = {**table.get(name, {}), **values}
    return table


def write_job(path: Path, table: Mapping[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(dict(table)))
    return path


def torchrun(args: list[str], processes: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *args]


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def run_checked(command: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    return result

"""Checkpoints with torch.distributed.checkpoint (DCP), written atomically and pruned to the last K.

```
RUN/checkpoints/step-00000100/
  .metadata, __0_0.distcp, ...   DCP: sharded model and optimizer, `train` (step, tokens seen),
                                 and `ranks.rank<r>`: each rank's loader state and RNG states
  job.toml                       the resolved job this checkpoint was written by
  COMPLETE                       JSON (step, world size, loader workers); written last
```

Every rank writes its own shards and DCP's coordinator writes `.metadata` once all have
finished; rank 0 then writes `COMPLETE` by an atomic rename. A directory without it (a run
killed mid-save) is never resumed from, and is deleted by the next save.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
JOB_FILE = "job.toml"
_STEP_DIR = re.compile(r"step-(\d{8})")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from, saying why and what to do."""


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path

    def marker(self) -> dict[str, Any]:
        return json.loads((self.path / COMPLETE).read_text())


def step_dir(directory: Path, step: int) -> Path:
    return directory / f"step-{step:08d}"


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _pack(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _unpack(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=False)


class CheckpointStore:
    """The checkpoints of one run directory; save and load are collective (every rank calls them)."""

    def __init__(self, directory: str | Path, keep: int) -> None:
        self.directory = Path(directory)
        self.keep = keep

    def _all(self) -> list[Checkpoint]:
        if not self.directory.is_dir():
            return []
        found = [Checkpoint(int(m.group(1)), p) for p in self.directory.iterdir()
                 if p.is_dir() and (m := _STEP_DIR.fullmatch(p.name))]
        return sorted(found, key=lambda c: c.step)

    def complete(self) -> list[Checkpoint]:
        """Checkpoints whose COMPLETE marker exists, oldest first."""
        return [c for c in self._all() if (c.path / COMPLETE).is_file()]

    def latest(self) -> Checkpoint | None:
        done = self.complete()
        return done[-1] if done else None

    def save(self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, *, train_state: dict[str, int],
             rank_state: dict[str, Any], job_toml: str, marker: dict[str, Any]) -> Checkpoint:
        """Write step `step`: model, optimizer, `train_state` (shared) and `rank_state` (this rank's own)."""
        rank = dist.get_rank()
        path = step_dir(self.directory, step)
        if rank == 0:
            if path.exists():
                shutil.rmtree(path)  # left by a run killed while saving this step
            path.mkdir(parents=True)
        dist.barrier()
        state = {"model": get_model_state_dict(model),
                 "optimizer": get_optimizer_state_dict(model, optimizer),
                 "train": dict(train_state),
                 "ranks": {f"rank{rank}": _pack(rank_state)}}
        started = time.perf_counter()
        dcp.save(state, checkpoint_id=str(path))
        if rank == 0:
            (path / JOB_FILE).write_text(job_toml)
            _write_atomic(path / COMPLETE, json.dumps(
                {"step": step, **marker, "train_keys": sorted(train_state), "time": time.time()}, indent=2))
            self.prune()
            log.info("checkpoint step %d written to %s in %.1fs", step, path, time.perf_counter() - started)
        dist.barrier()
        return Checkpoint(step, path)

    def load(self, checkpoint: Checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer
             ) -> tuple[dict[str, int], dict[str, Any]]:
        """Restore model and optimizer in place; returns (train_state, this rank's rank_state)."""
        rank = dist.get_rank()
        marker = checkpoint.marker()
        world = dist.get_world_size()
        if marker.get("world_size") != world:
            raise CheckpointError(
                f"{checkpoint.path}: written by {marker.get('world_size')} processes, this run has {world}; "
                f"each rank's data position is stored separately, so resume with {marker.get('world_size')} "
                f"processes, or start a new run in a new output_dir")
        state = {"model": get_model_state_dict(model),
                 "optimizer": get_optimizer_state_dict(model, optimizer),
                 "train": {key: 0 for key in marker.get("train_keys", ["step"])},
                 "ranks": {f"rank{rank}": b""}}
        dcp.load(state, checkpoint_id=str(checkpoint.path))
        set_model_state_dict(model, state["model"])
        set_optimizer_state_dict(model, optimizer, state["optimizer"])
        return state["train"], _unpack(state["ranks"][f"rank{rank}"])

    def prune(self) -> None:
        """Keep the newest `keep` complete checkpoints; delete older ones and every incomplete one."""
        complete = self.complete()
        keep = {c.path for c in complete[-self.keep:]}
        for checkpoint in self._all():
            if checkpoint.path not in keep:
                shutil.rmtree(checkpoint.path, ignore_errors=True)


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)

"""Which checkpoints count and which are kept: the COMPLETE marker decides."""

from __future__ import annotations

import random

import numpy as np
import torch

from train.checkpoint import COMPLETE, CheckpointStore, rng_state, set_rng_state, step_dir


def fake(store: CheckpointStore, step: int, complete: bool) -> None:
    path = step_dir(store.directory, step)
    path.mkdir(parents=True)
    (path / "__0_0.distcp").write_bytes(b"x")
    if complete:
        (path / COMPLETE).write_text('{"step": %d, "world_size": 1}' % step)


def test_latest_ignores_incomplete(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints", keep=2)
    assert store.latest() is None
    for step, complete in [(10, True), (20, True), (30, False)]:
        fake(store, step, complete)
    (tmp_path / "checkpoints" / "notes").mkdir()
    assert store.latest().step == 20
    assert [c.step for c in store.complete()] == [10, 20]


def test_prune_keeps_the_newest_complete_and_drops_debris(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints", keep=2)
    for step, complete in [(5, True), (10, False), (15, True), (20, True), (25, False)]:
        fake(store, step, complete)
    store.prune()
    assert sorted(p.name for p in store.directory.iterdir()) == ["step-00000015", "step-00000020"]


def test_rng_state_round_trip():
    state = rng_state()
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.rand(5), random.random(), np.random.rand()
    set_rng_state(state)
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]

"""A run killed with SIGKILL and started again continues exactly where an uninterrupted run would be."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.train.conftest import REPO, child_env, job_table, run_checked, torchrun, write_job
from train.checkpoint import COMPLETE, CheckpointStore

STEPS = 20


def losses(run_dir: Path, kind: str = "train") -> dict[int, float]:
    """step -> loss; a step logged twice (before a kill and after the resume) keeps the last line."""
    found = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == kind:
            found[record["step"]] = record["loss"]
    return found


def job_for(tmp_path: Path, token_dir: Path, name: str) -> Path:
    table = job_table(token_dir, tmp_path / name,
                      data={"workers": 2, "seq_len": 64, "batch_size": 8, "shuffle_buffer": 8},
                      train={"steps": STEPS}, checkpoint={"every": 5, "keep": 2},
                      validation={"every": 10, "batches": 2})
    return write_job(tmp_path / f"{name}.toml", table)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (torchrun starts its ranks in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything under it at once, as when a machine dies."""
    for victim in [pid, *descendants(pid)]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_after_checkpoint(job: Path, checkpoint: Path, timeout: float = 180) -> int:
    """Start the job and SIGKILL torchrun and every process under it once `checkpoint` is complete."""
    log = open(job.with_suffix(".log"), "w")
    process = subprocess.Popen(torchrun(["-m", "train", str(job)]), cwd=REPO, env=child_env(), stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not (checkpoint / COMPLETE).exists():
            assert process.poll() is None, f"the run ended before {checkpoint.name}: {job.with_suffix('.log')}"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.01)
        kill_tree(process.pid)
        return process.wait()
    finally:
        if process.poll() is None:
            kill_tree(process.pid)
            process.wait()
        log.close()


@pytest.mark.slow
def test_kill_and_resume_gives_the_same_losses(tmp_path, token_dir):
    straight = tmp_path / "straight"
    run_checked(torchrun(["-m", "train", str(job_for(tmp_path, token_dir, "straight"))]))

    killed = tmp_path / "killed"
    job = job_for(tmp_path, token_dir, "killed")
    assert kill_after_checkpoint(job, killed / "checkpoints" / "step-00000010") == -signal.SIGKILL
    assert not (killed / "model").exists(), "the run finished before the kill"
    before = losses(killed)
    assert 10 <= max(before) < STEPS
    # A newer checkpoint that never got its COMPLETE marker must be passed over.
    debris = killed / "checkpoints" / "step-00000019"
    debris.mkdir()
    (debris / "__0_0.distcp").write_bytes(b"half written")

    resumed = run_checked(torchrun(["-m", "train", str(job)]))
    match = re.search(r"resumed from \S+step-(\d+) at step (\d+)", resumed.stderr)
    assert match, resumed.stderr[-3000:]
    assert 10 <= int(match.group(2)) < STEPS

    expected = losses(straight)
    assert sorted(expected) == list(range(1, STEPS + 1))
    assert losses(killed) == pytest.approx(expected, rel=1e-6)
    assert losses(killed, "validation") == pytest.approx(losses(straight, "validation"), rel=1e-6)
    assert expected[STEPS] < expected[1] - 0.3, "the loss should fall"
    # The last two complete checkpoints are kept; the debris is gone.
    store = CheckpointStore(killed / "checkpoints", keep=2)
    assert [c.step for c in store.complete()] == [15, 20]
    assert not debris.exists()
    assert (killed / "model" / "model.safetensors").is_file()

"""The whole trainer in one process: outputs, resume, refusals, starting from a saved model."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from model.hf import export_hf
from model.model_dir import load_model_dir
from pipeline.cli import main as winnow
from tests.train.conftest import job_table, write_job
from train.__main__ import main as train_main
from train.checkpoint import COMPLETE, CheckpointStore
from train.config import load_train_job
from train.trainer import run_job


def set_group_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchrun's variables for a single process; the monkeypatch removes them again."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                           MASTER_PORT=str(port)).items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def group_of_one(monkeypatch):
    set_group_of_one(monkeypatch)


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, token_dir):
    """Twelve steps in one process, with validation and checkpoints every four."""
    tmp = tmp_path_factory.mktemp("trainer")
    mp = pytest.MonkeyPatch()
    set_group_of_one(mp)
    table = job_table(token_dir, tmp / "run", train={"steps": 12}, optimizer={"lr": 1e-2, "warmup_steps": 2},
                      checkpoint={"every": 4, "keep": 1}, validation={"every": 4, "batches": 2},
                      metrics={"every": 2, "peak_flops": 1e11})
    job_path = write_job(tmp / "job.toml", table)
    try:
        run_job(load_train_job(job_path))
    finally:
        mp.undo()
    return tmp / "run", job_path, table


def test_outputs(finished_run):
    run_dir, _, _ = finished_run
    train = records(run_dir, "train")
    assert [r["step"] for r in train] == [2, 4, 6, 8, 10, 12]
    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "tokens_per_s_per_device", "mfu", "memory_gib"):
        assert all(key in r for r in train), key
    assert 0 < train[-1]["mfu"] < 1
    assert train[-1]["loss"] < train[0]["loss"]
    assert [r["step"] for r in records(run_dir, "validation")] == [4, 8, 12]
    assert [c.step for c in CheckpointStore(run_dir / "checkpoints", keep=1).complete()] == [12]
    assert (run_dir / "job.toml").read_text().startswith("[job]")
    loaded = load_model_dir(run_dir / "model")
    assert loaded.config.n_layers == 2 and loaded.end_of_text_id == 0


def test_generate_reads_the_model_directory(finished_run, capsys):
    run_dir, _, _ = finished_run
    assert winnow(["generate", "--checkpoint", str(run_dir / "model"), "--prompt", "The river",
                   "--max-new-tokens", "4", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("The river")


def test_a_finished_run_resumes_and_stops(finished_run, group_of_one):
    run_dir, job_path, _ = finished_run
    lines = len(records(run_dir, "train"))
    run_job(load_train_job(job_path))
    assert len(records(run_dir, "train")) == lines


def test_a_checkpoint_from_another_world_size_is_refused(finished_run, group_of_one, tmp_path, capsys):
    run_dir, _, table = finished_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    marker = copy / "checkpoints" / "step-00000012" / COMPLETE
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "world_size": 2}))
    job = write_job(tmp_path / "job.toml", {**table, "job": {"name": "copy", "output_dir": str(copy)},
                                           "train": {"steps": 14}})
    assert train_main([str(job)]) == 2
    assert "written by 2 processes, this run has 1" in capsys.readouterr().err


@pytest.mark.parametrize("export", [False, True], ids=["model-dir", "hugging-face"])
def test_init_from_a_saved_model(finished_run, group_of_one, tmp_path, token_dir, export):
    run_dir, _, _ = finished_run
    source = run_dir / "model"
    if export:
        source = export_hf(source, tmp_path / "hf")
    table = job_table(token_dir, tmp_path / "run", model={"init_from": str(source)}, train={"steps": 2},
                      optimizer={"lr": 1e-5, "min_lr": 1e-6, "warmup_steps": 1})
    del table["model"]["preset"]
    run_job(load_train_job(write_job(tmp_path / "job.toml", table)))
    first = records(tmp_path / "run", "train")[0]["loss"]
    last_of_source = records(run_dir, "train")[-1]["loss"]
    assert first < last_of_source + 0.5  # far below a fresh model's log(vocab) ~ 5.8


def test_missing_tokens_are_a_one_line_error(group_of_one, tmp_path, capsys):
    job = write_job(tmp_path / "job.toml", job_table(tmp_path / "nowhere", tmp_path / "run"))
    assert train_main([str(job)]) == 2
    err = capsys.readouterr().err
    assert "manifest.json: not found" in err and err.count("\n") == 1

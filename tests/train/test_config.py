"""Training job files: typed, frozen, every unknown or wrong key a one-line error."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from pipeline.configfile import ConfigError
from tests.train.conftest import REPO, job_table, write_job
from train.config import TrainJob, load_train_job, parse_train_job, train_job_toml


def test_the_tiny_job_parses():
    job = load_train_job(REPO / "jobs" / "train-tiny.toml")
    assert job.model.preset == "tiny" and job.parallel.processes in (1, 2) and job.parallel.device == "cpu"
    assert job.data.path == str(REPO / "out" / "sample" / "tokens")
    assert job.job.output_dir == str(REPO / "out" / "train-tiny")
    assert job.validation.every > 0


def test_resolved_job_round_trips(tmp_path):
    job = load_train_job(write_job(tmp_path / "job.toml", job_table(tmp_path / "tokens", tmp_path / "run")))
    again = parse_train_job(tomllib.loads(train_job_toml(job)), "again")
    assert again == job
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.train.steps = 5


@pytest.mark.parametrize("change, message", [
    ({"data": {"sequence_length": 5}}, "data: unknown key 'sequence_length'; allowed: batch_size, path, seed"),
    ({"trainer": {}}, "unknown section 'trainer'; allowed: checkpoint, data, job, metrics, model"),
    ({"data": {"seq_len": 0}}, "data: seq_len must be at least 1, got 0"),
    ({"model": {"preset": "huge"}}, "model: unknown preset 'huge'; choose one of"),
    ({"model": {"init_from": "somewhere"}}, "model: set exactly one of preset"),
    ({"parallel": {"activation_checkpointing": "some"}}, "parallel.activation_checkpointing: got 'some', allowed"),
    ({"optimizer": {"min_lr": 1.0}}, "need lr > 0 and 0 <= min_lr <= lr"),
    ({"optimizer": {"warmup_steps": 10}}, "optimizer.warmup_steps=10 is more than train.steps=4"),
    ({"train": {"steps": "many"}}, "train.steps: expected int, got 'many'"),
])
def test_bad_keys_are_one_line_errors(tmp_path, change, message):
    table = job_table(tmp_path / "tokens", tmp_path / "run", **change)
    with pytest.raises(ConfigError) as error:
        parse_train_job(table, "job.toml")
    assert message in str(error.value)
    assert str(error.value).startswith("job.toml: ") and "\n" not in str(error.value)


def test_missing_section(tmp_path):
    table = job_table(tmp_path / "tokens", tmp_path / "run")
    del table["train"]
    with pytest.raises(ConfigError, match=r"missing required section \[train\]"):
        parse_train_job(table, "job.toml")


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the job file"):
        load_train_job(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[job\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_train_job(tmp_path / "bad.toml")


def test_uris_stay_uris(tmp_path):
    table = job_table(Path("tokens"), tmp_path / "run")
    table["data"]["path"] = "gs://bucket/tokens"
    job = load_train_job(write_job(tmp_path / "job.toml", table))
    assert job.data.path == "gs://bucket/tokens"
    assert isinstance(job, TrainJob)

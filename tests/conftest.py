import os
from pathlib import Path

import pytest

from pipeline.curate import run_curation
from pipeline.job import load_job, parse_job, resolve_paths

REPO = Path(__file__).resolve().parent.parent


def sample_job(run_dir: Path, **overrides):
    """jobs/sample.toml with its output moved to run_dir."""
    job = load_job(REPO / "jobs" / "sample.toml")
    import dataclasses

    return dataclasses.replace(job, job=dataclasses.replace(job.job, output_dir=str(run_dir)), **overrides)


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Path:
    """The sample job run once on the in-process DirectRunner; tests read its outputs."""
    run_dir = tmp_path_factory.mktemp("sample") / "run"
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        run_curation(sample_job(run_dir))
    finally:
        os.chdir(cwd)
    return run_dir


def job_from(table: dict, name: str = "test"):
    return resolve_paths(parse_job(table, name))

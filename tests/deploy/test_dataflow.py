"""The Dataflow deployment: the sample job builds into a whole Dataflow job offline, and the profile merges."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.configfile import ConfigError
from pipeline.curate import run_curation_pipeline, runner_flags
from pipeline.job import apply_profile, load_job

ROOT = Path(__file__).resolve().parents[2]
DATAFLOW = ROOT / "deploy" / "dataflow"
DRY_RUN = ["--project=winnow-test", "--region=us-central1", "--temp_location=gs://winnow-test/tmp",
           "--sdk_container_image=us-central1-docker.pkg.dev/winnow-test/winnow/worker:0.1.0", "--dry_run=True"]

# The steps a curation job must hold: every stage, the global dedup, the tokenizer and the writers.
STEPS = [
    "Read/ReadRecords", "Decode/DecodeBytes", "Extract/ExtractMainText", "Repair/RepairText",
    "Language/IdentifyLanguage", "Quality/ApplyQualityRules", "Dedup/Sketch", "Dedup/ByDigest",
    "Dedup/GroupBands", "Dedup/Components", "Dedup/Verify", "Dedup/Resolve", "Dedup/JoinDecisions",
    "DedupReport", "TrainTokenizer", "Tokenize/EncodeDocuments", "Tokenize/WriteTokenShards",
    "WriteCurated", "WriteRejected", "WriteClusters", "Stats/WriteStatsJson",
]


@pytest.fixture(scope="module")
def dataflow_job():
    job = apply_profile(load_job(ROOT / "jobs" / "sample.toml"), DATAFLOW / "profile.toml")
    stats, result = run_curation_pipeline(job, DRY_RUN)
    assert stats is None
    return result.job


def test_the_sample_job_builds_into_a_dataflow_job_with_every_stage(dataflow_job):
    job = dataflow_job
    names = [t.unique_name for t in job.proto_pipeline.components.transforms.values()]
    missing = [step for step in STEPS if not any(name == step or name.startswith(step + "/") for name in names)]
    assert not missing, f"steps missing from the Dataflow job: {missing}"
    # On Dataflow whole documents go through the service shuffle, never through local spill files.
    assert not any("/Spill" in name for name in names)
    # Workers run the winnow image named on the command line.
    environments = job.proto_pipeline.components.environments.values()
    assert any(e.urn == "beam:env:docker:v1" and b"/winnow/worker:0.1.0" in e.payload for e in environments)


def test_the_profile_wins_over_the_job_and_the_command_line_over_both(tmp_path):
    job = load_job(ROOT / "jobs" / "sample.toml")
    merged = apply_profile(job, DATAFLOW / "profile.toml")
    assert merged.runner["runner"] == "DataflowRunner"
    flags = runner_flags(merged, ["--max_num_workers=7"])
    assert "--runner=DataflowRunner" in flags and flags[-1] == "--max_num_workers=7"
    # The job's own keys that the profile does not set stay.
    own = tmp_path / "job.toml"
    own.write_text((ROOT / "jobs" / "sample.toml").read_text().replace(
        '[runner]\n', '[runner]\nnumber_of_worker_harness_threads = 2\n'))
    runner = apply_profile(load_job(own), DATAFLOW / "profile.toml").runner
    assert runner["number_of_worker_harness_threads"] == 2 and runner["runner"] == "DataflowRunner"


def test_a_profile_with_anything_but_a_runner_table_is_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[runner]\nrunner = "DataflowRunner"\n[dedup]\nenabled = false\n')
    with pytest.raises(ConfigError, match="only a \\[runner\\] table, not 'dedup'"):
        apply_profile(load_job(ROOT / "jobs" / "sample.toml"), bad)
    with pytest.raises(ConfigError, match="cannot read the runner profile"):
        apply_profile(load_job(ROOT / "jobs" / "sample.toml"), tmp_path / "missing.toml")


def test_winnow_run_dry_run_prints_the_job_and_writes_nothing(tmp_path, capsys):
    job = tmp_path / "job.toml"
    job.write_text((ROOT / "jobs" / "sample.toml").read_text().replace('"out/sample"', f'"{tmp_path}/run"'))
    code = main(["run", str(job), "--profile", str(DATAFLOW / "profile.toml"), "--", *DRY_RUN])
    assert code == 0
    assert "dry run" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()


def test_the_commoncrawl_job_and_the_flex_template_parameters_are_valid():
    job = load_job(ROOT / "jobs" / "commoncrawl.toml")
    assert job.input.paths[0].startswith("s3://commoncrawl/") and job.run_dir.startswith("gs://")
    metadata = json.loads((DATAFLOW / "metadata.json").read_text())
    assert metadata["sdkInfo"]["language"] == "PYTHON"
    assert {p["name"] for p in metadata["parameters"]} == {"job", "profile", "overwrite"}
    # The flex entry point takes exactly those parameters.
    flex = (ROOT / "pipeline" / "flex.py").read_text()
    assert all(f'"--{p["name"]}"' in flex for p in metadata["parameters"])


def test_the_worker_image_matches_the_pinned_beam_version():
    lock = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().split() if "==" in line)
    dockerfile = (DATAFLOW / "Dockerfile").read_text()
    assert f"apache/beam_python3.11_sdk:{lock['apache-beam']}" in dockerfile
    assert "torch==2.13.0" in dockerfile and "-r requirements.lock" in dockerfile
    assert tomllib.loads((DATAFLOW / "profile.toml").read_text()).keys() == {"runner"}

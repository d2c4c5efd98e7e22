"""The same job gives the same documents and the same stats.json on every local runner."""

import json
import os

import pyarrow.parquet as pq
import pytest

from pipeline.curate import run_curation
from tests.conftest import REPO, sample_job

RUNNERS = {
    "direct-multiprocess-2": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    "portable-embed-loopback": ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"],
}


def _outputs(run_dir):
    curated = pq.read_table(run_dir / "curated").select(["id", "text", "language"]).to_pylist()
    rejected = pq.read_table(run_dir / "rejected").select(["id", "stage", "reason"]).to_pylist()
    stats = json.loads((run_dir / "stats.json").read_text())
    files = sorted(p.name for p in (run_dir / "curated").iterdir())
    clusters = pq.read_table(run_dir / "dedup" / "clusters.parquet").to_pylist()
    report = json.loads((run_dir / "dedup" / "report.json").read_text())
    return (sorted(curated, key=lambda r: r["id"]), sorted(rejected, key=lambda r: r["id"]), stats, files,
            sorted(clusters, key=lambda r: (r["kind"], r["id"])), report)


@pytest.mark.slow
@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_runner_agrees_with_in_process_direct_runner(runner, sample_run, tmp_path):
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        run_curation(sample_job(tmp_path / "run"), RUNNERS[runner])
    finally:
        os.chdir(cwd)
    baseline = _outputs(sample_run)
    other = _outputs(tmp_path / "run")
    assert other[0] == baseline[0]  # same kept ids and texts
    assert other[1] == baseline[1]  # same rejections and reasons
    assert other[2] == baseline[2]  # identical stats.json
    assert other[3] == baseline[3]  # same shard files
    assert other[4] == baseline[4]  # same duplicate groups and kept documents
    assert other[5] == baseline[5]  # identical dedup report
    shard = sorted((tmp_path / "run" / "curated").iterdir())[0]
    assert shard.read_bytes() == sorted((sample_run / "curated").iterdir())[0].read_bytes()

"""The sample job's outputs: readable as they are by the tools users load Parquet with."""

import json

import pyarrow.parquet as pq
import pytest

from pipeline.schema import CURATED_SCHEMA, REJECTED_SCHEMA


def test_sample_run_balances_and_keeps_many_languages(sample_run):
    stats = json.loads((sample_run / "stats.json").read_text())
    assert stats["balanced"] and stats["records"] == 400
    assert stats["failed"] == 0
    table = pq.read_table(sample_run / "curated")
    assert table.num_rows == stats["kept"] > 200
    assert len(set(table.column("language").to_pylist())) >= 5
    reasons = {reason for stage in stats["stages"] for reason in stage["dropped"]}
    assert "not_html" in reasons  # the sample's PDFs and images
    assert all(0.65 <= s <= 1.0 for s in table.column("language_score").to_pylist())


def test_curated_and_rejected_shards_carry_the_documented_schema(sample_run):
    curated = pq.ParquetFile(next((sample_run / "curated").glob("*.parquet")))
    assert curated.schema_arrow.equals(CURATED_SCHEMA, check_metadata=False)
    assert curated.metadata.row_group(0).column(0).compression == "ZSTD"
    rejected = pq.ParquetFile(next((sample_run / "rejected").glob("*.parquet")))
    assert rejected.schema_arrow.equals(REJECTED_SCHEMA, check_metadata=False)


def test_shards_load_in_pandas_duckdb_and_datasets(sample_run, tmp_path, monkeypatch):
    import duckdb
    import pandas as pd

    expected = pq.read_table(sample_run / "curated").num_rows
    frame = pd.read_parquet(sample_run / "curated")
    assert len(frame) == expected and frame["crawl_date"].dt.tz is not None
    glob = str(sample_run / "curated" / "*.parquet")
    count, languages = duckdb.sql(f"select count(*), count(distinct language) from '{glob}'").fetchall()[0]
    assert count == expected and languages >= 5

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    dataset = datasets.load_dataset("parquet", data_files=glob, split="train", cache_dir=str(tmp_path / "hf"))
    assert dataset.num_rows == expected and {"id", "text", "language", "url"} <= set(dataset.column_names)


def test_resolved_job_is_written_into_the_run_directory(sample_run):
    from pipeline.job import load_job

    job = load_job(sample_run / "job.toml")
    assert job.run_dir == str(sample_run)
    assert job.extract.max_bytes == 2_000_000 and job.language.min_score == 0.65


@pytest.mark.parametrize("column", ["id", "text", "language", "source", "record", "offset"])
def test_no_nulls_where_the_schema_says_not_null(sample_run, column):
    table = pq.read_table(sample_run / "curated")
    assert table.column(column).null_count == 0

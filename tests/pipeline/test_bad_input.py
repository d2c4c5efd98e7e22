"""Every kind of bad input is counted and dead-lettered; nothing crashes and the books balance."""

import collections

import pyarrow.parquet as pq
import pytest

from pipeline.curate import run_curation
from tests.conftest import job_from
from tests.fixtures.bad_corpus import build_bad_corpus

FILTERS_OFF = {
    "language": {"min_score": 0.0},
    "quality": {name: {"enabled": False} for name in ("gopher_quality", "gopher_repetition", "c4", "fineweb")},
    "dedup": {"enabled": False},  # the corpus repeats pages on purpose; dedup has tests of its own
}


def _run(corpus, run_dir, **sections):
    job = job_from({"job": {"name": "bad", "output_dir": str(run_dir)},
                    "input": {"paths": [f"{corpus}/*"]}, **sections})
    stats = run_curation(job)
    curated = pq.read_table(run_dir / "curated").to_pylist()
    rejected = pq.read_table(run_dir / "rejected").to_pylist()
    return stats, curated, rejected


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bad-corpus")
    build_bad_corpus(directory)
    return directory


@pytest.fixture(scope="module")
def filters_off(corpus, tmp_path_factory):
    return _run(corpus, tmp_path_factory.mktemp("bad-run-off") / "run", **FILTERS_OFF)


def _outcome(rows, file_name, record):
    found = [r for r in rows if r["source"].endswith("/" + file_name) and r["record"] == record]
    assert len(found) == 1, (file_name, record, found)
    return found[0]


def _reasons(rejected, file_name):
    return sorted((r["record"], r["stage"], r["outcome"], r["reason"]) for r in rejected
                  if r["source"].endswith("/" + file_name))


def test_books_balance_exactly_and_every_record_is_accounted_once(filters_off):
    stats, curated, rejected = filters_off
    assert stats["balanced"], stats["problems"]
    assert stats["records"] == stats["kept"] + stats["dropped"] + stats["failed"]
    assert stats["input_files"] == 14
    assert len(curated) == stats["kept"]
    assert len(rejected) == stats["dropped"] + stats["failed"]
    ids = [r["id"] for r in curated] + [r["id"] for r in rejected]
    assert len(ids) == len(set(ids)) == stats["records"]
    for stage in stats["stages"]:
        assert stage["in"] == stage["kept"] + sum(stage["dropped"].values()) + sum(stage["failed"].values())


def test_truncated_gzip_keeps_complete_records_and_fails_the_cut_one(filters_off):
    _, curated, rejected = filters_off
    assert _reasons(rejected, "truncated.warc.gz") == [(3, "read", "failed", "truncated_gzip")]
    assert sorted(r["record"] for r in curated if r["source"].endswith("/truncated.warc.gz")) == [0, 1, 2]


def test_malformed_warc_header_fails_one_record_and_reading_resumes(filters_off):
    _, curated, rejected = filters_off
    assert [r[1:] for r in _reasons(rejected, "malformed.warc.gz")] == [("read", "failed", "malformed_warc")]
    urls = sorted(r["url"] for r in curated if r["source"].endswith("/malformed.warc.gz"))
    assert len(urls) == 3  # the good record before the garbage and both after it


def test_non_html_empty_oversize_binary_and_pathological_pages_are_dropped_with_reasons(filters_off):
    _, _, rejected = filters_off
    assert _reasons(rejected, "nonhtml.warc.gz") == [(i, "extract", "dropped", "not_html") for i in range(3)]
    assert _reasons(rejected, "empty_body.warc.gz") == [(i, "decode", "dropped", "empty_body") for i in range(2)]
    assert _reasons(rejected, "oversize.warc.gz") == [(0, "extract", "dropped", "too_large")]
    assert _reasons(rejected, "nested.warc.gz") == [(i, "extract", "dropped", "no_text") for i in range(2)]
    assert (2, "decode", "dropped", "binary_content") in _reasons(rejected, "charset.warc.gz")
    oversize = _outcome(rejected, "oversize.warc.gz", 0)
    assert oversize["payload_size"] > 2_000_000 and oversize["payload_truncated"]
    assert len(oversize["payload"]) == 1_000_000  # dead_letter.max_payload_bytes


def test_charset_problems_are_repaired_not_lost(filters_off):
    stats, curated, rejected = filters_off
    wrong = _outcome(curated, "charset.warc.gz", 0)
    assert "café" in wrong["text"] and "Ã" not in wrong["text"]
    assert wrong["charset"] == "cp1252"
    bogus = _outcome(curated, "charset.warc.gz", 3)
    assert bogus["language"] == "en"
    # One byte in 75 invalid is past decode.max_invalid_fraction (1%): dropped, with the payload kept.
    invalid = _outcome(rejected, "charset.warc.gz", 1)
    assert (invalid["stage"], invalid["reason"]) == ("decode", "undecodable")
    assert invalid["payload_size"] == len(invalid["payload"]) > 0
    assert stats["notes"]["decode.declared_charset_wrong"] == 1
    assert stats["notes"]["decode.unknown_charset_name"] == 1


def test_empty_files_and_bad_rows_are_counted(filters_off):
    stats, curated, rejected = filters_off
    assert _reasons(rejected, "empty.warc.gz") == [(-1, "read", "dropped", "empty_file")]
    assert _reasons(rejected, "empty.jsonl") == [(-1, "read", "dropped", "empty_file")]
    for name in ("docs.jsonl", "docs.jsonl.gz"):
        reasons = collections.Counter(r[3] for r in _reasons(rejected, name))
        assert reasons == {"malformed_json": 1, "no_content_field": 1, "wrong_field_type": 1}
    assert _reasons(rejected, "docs.parquet") == [(2, "read", "dropped", "null_content")]
    assert sum(r["source"].endswith("/sample.wet.gz") for r in curated) == 4
    assert stats["notes"]["read.skipped_warcinfo_records"] >= 1
    assert stats["notes"]["read.blank_lines"] == 2


def test_html_in_jsonl_is_extracted(filters_off):
    _, curated, _ = filters_off
    html_rows = [r for r in curated if r["source"].endswith("/docs.jsonl") and r["record"] in (2, 3)]
    assert len(html_rows) == 2 and all("<" not in r["text"] for r in html_rows)


def test_default_filters_still_balance(corpus, tmp_path):
    stats, curated, rejected = _run(corpus, tmp_path / "run")
    assert stats["balanced"], stats["problems"]
    assert stats["records"] == stats["kept"] + stats["dropped"] + stats["failed"] == len(curated) + len(rejected)


def test_dead_letter_sampling_is_deterministic_and_counted(corpus, tmp_path):
    sections = dict(FILTERS_OFF, dead_letter={"sample_rate": 0.5})
    stats, _, rejected = _run(corpus, tmp_path / "a", **sections)
    again, _, rejected_again = _run(corpus, tmp_path / "b", **sections)
    assert stats == again and sorted(r["id"] for r in rejected) == sorted(r["id"] for r in rejected_again)
    assert 0 < len(rejected) < stats["dropped"] + stats["failed"]
    assert stats["written"]["rejected_rows"] == len(rejected)


def test_beam_counters_carry_the_same_counts_as_stats_json(corpus, tmp_path):
    from apache_beam.metrics.metric import MetricsFilter

    from pipeline.curate import run_curation_pipeline

    job = job_from({"job": {"name": "bad", "output_dir": str(tmp_path / "run")},
                    "input": {"paths": [f"{corpus}/*"]}, **FILTERS_OFF})
    stats, result = run_curation_pipeline(job)
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query(MetricsFilter().with_namespace("winnow"))["counters"]}
    for stage in stats["stages"]:
        name = stage["stage"]
        assert counters.get(f"{name}.in", 0) == stage["in"]
        assert counters.get(f"{name}.kept", 0) == stage["kept"]
        for reason, count in stage["dropped"].items():
            assert counters[f"{name}.dropped.{reason}"] == count
        for reason, count in stage["failed"].items():
            assert counters[f"{name}.failed.{reason}"] == count


def test_a_run_that_keeps_nothing_finishes_with_balanced_books(corpus, tmp_path):
    job = job_from({"job": {"name": "none-kept", "output_dir": str(tmp_path / "run")},
                    "input": {"paths": [f"{corpus}/*"]}, "language": {"languages": ["xx"]}})
    stats = run_curation(job)
    assert stats["balanced"], stats["problems"]
    assert stats["kept"] == 0 and stats["records"] == stats["dropped"] + stats["failed"]
    assert "tokens" not in stats and not (tmp_path / "run" / "tokenizer" / "tokenizer.json").exists()
    assert pq.read_table(tmp_path / "run" / "curated").num_rows == 0

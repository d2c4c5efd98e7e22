"""Global dedup in the pipeline: exact, near and URL duplicates, the keep rule, clusters and report."""

import json
import random

import pyarrow.parquet as pq
import pytest

from pipeline.curate import run_curation
from pipeline.dedup import KEEP_ORDER, normalize_url
from tests.conftest import job_from

WORDS = ("river valley harbour mountain village market bridge tower garden forest meadow castle "
         "library station museum theatre school church square street canal island coast field "
         "orchard vineyard mill bakery farmer painter sailor teacher doctor writer builder").split()


def _paragraph(rng: random.Random, words: int) -> str:
    out = []
    for _ in range(words // 12):
        sentence = " ".join(rng.choice(WORDS) for _ in range(12))
        out.append(sentence.capitalize() + ".")
    return " ".join(out)


def _corpus(tmp_path):
    """JSONL documents with known duplicates; returns the path and the expected groups."""
    rng = random.Random(5)
    base = [_paragraph(rng, 240) for _ in range(6)]
    records = []

    def add(key, text, url=None, date=None):
        records.append({"key": key, "text": text, "url": url or f"https://site{len(records) % 3}.example/{key}",
                        "date": date})

    add("a", base[0], date="2024-03-01T00:00:00Z")
    add("a-exact", base[0].upper().replace(".", " !"), date="2024-01-01T00:00:00Z")  # same normalised text, older
    words = base[1].split()
    add("b", base[1], date="2024-02-01T00:00:00Z")
    near = list(words)
    for i in range(0, len(near), 60):  # a handful of edits: Jaccard of 5-grams stays high
        near[i] = "changed"
    add("b-near", " ".join(near), date="2024-02-02T00:00:00Z")
    add("b-near2", " ".join(near[:-6]), date=None)
    for i, text in enumerate(base[2:]):
        add(f"c{i}", text, date="2024-02-01T00:00:00Z")
    add("url-old", _paragraph(rng, 240), url="https://news.example/story#top", date="2023-01-01T00:00:00Z")
    add("url-new", _paragraph(rng, 240), url="HTTPS://NEWS.example/story", date="2024-01-01T00:00:00Z")
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path, records


def _job(tmp_path, corpus, **dedup):
    return job_from({
        "job": {"name": "dedup-test", "output_dir": str(tmp_path / "run")},
        "input": {"paths": [str(corpus)]},
        "language": {"languages": [], "min_score": 0.0},
        "quality": {"gopher_quality": {"enabled": False}, "gopher_repetition": {"enabled": False},
                    "c4": {"enabled": False}, "fineweb": {"enabled": False}},
        "dedup": dedup,
    })


def _ids_by_key(run_dir, records):
    """Map each record key to its document id via the rejected/curated outputs' record index."""
    rows = pq.read_table(run_dir / "curated").select(["id", "record"]).to_pylist()
    rows += pq.read_table(run_dir / "rejected").select(["id", "record"]).to_pylist()
    by_record = {r["record"]: r["id"] for r in rows}
    return {rec["key"]: by_record[i] for i, rec in enumerate(records)}


@pytest.fixture(scope="module")
def dedup_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("dedup")
    corpus, records = _corpus(tmp_path)
    stats = run_curation(_job(tmp_path, corpus, url=True, minhash={"threshold": 0.7}))
    run_dir = tmp_path / "run"
    return run_dir, stats, records, _ids_by_key(run_dir, records)


def test_duplicates_are_removed_and_the_books_balance(dedup_run):
    run_dir, stats, records, ids = dedup_run
    assert stats["balanced"], stats["problems"]
    dedup = next(s for s in stats["stages"] if s["stage"] == "dedup")
    assert dedup["in"] == len(records)
    assert dedup["dropped"] == {"exact_duplicate": 1, "near_duplicate": 2, "url_duplicate": 1}
    kept = set(pq.read_table(run_dir / "curated").column("id").to_pylist())
    # Keep rule: earliest crawl date first, unknown dates last, then the smallest id.
    assert ids["a-exact"] in kept and ids["a"] not in kept
    assert ids["b"] in kept and ids["b-near"] not in kept and ids["b-near2"] not in kept
    # URL dedup keeps the newest crawl of a URL.
    assert ids["url-new"] in kept and ids["url-old"] not in kept
    assert all(ids[f"c{i}"] in kept for i in range(4))


def test_rejections_name_the_kept_document(dedup_run):
    run_dir, _, _, ids = dedup_run
    rejected = {r["id"]: r for r in pq.read_table(run_dir / "rejected").to_pylist() if r["stage"] == "dedup"}
    assert rejected[ids["a"]]["reason"] == "exact_duplicate"
    assert ids["a-exact"] in rejected[ids["a"]]["detail"]
    assert rejected[ids["b-near"]]["reason"] == "near_duplicate"
    assert ids["b"] in rejected[ids["b-near"]]["detail"]


def test_clusters_parquet_lists_every_group(dedup_run):
    run_dir, _, _, ids = dedup_run
    rows = pq.read_table(run_dir / "dedup" / "clusters.parquet").to_pylist()
    by_id = {r["id"]: r for r in rows}
    near = [r for r in rows if r["kind"] == "near"]
    assert {r["id"] for r in near} == {ids["b"], ids["b-near"], ids["b-near2"]}
    assert {r["cluster"] for r in near} == {min(ids["b"], ids["b-near"], ids["b-near2"])}
    assert by_id[ids["b"]]["kept"] and by_id[ids["b"]]["similarity"] == 1.0
    assert 0.7 <= by_id[ids["b-near"]]["similarity"] < 1.0
    assert by_id[ids["b-near"]]["kept_id"] == ids["b"]
    exact = [r for r in rows if r["kind"] == "exact"]
    assert {r["id"] for r in exact} == {ids["a"], ids["a-exact"]}


def test_report_json_holds_parameters_counts_and_clusters(dedup_run):
    run_dir, _, _, ids = dedup_run
    report = json.loads((run_dir / "dedup" / "report.json").read_text())
    assert report["parameters"]["keep_order"] == KEEP_ORDER
    assert report["parameters"]["threshold"] == 0.7
    counts = report["counts"]
    assert counts["in"] == 11 and counts["removed"] == 4 and counts["kept"] == 7
    assert counts["exact_duplicates"] == 1 and counts["url_duplicates"] == 1
    assert counts["near_duplicate_clusters"] == 1 and counts["near_duplicates_removed"] == 2
    assert counts["candidate_edges"] >= 2
    assert report["cluster_sizes"] == {"3": 1}
    (cluster,) = report["largest_clusters"]
    assert cluster["size"] == 3 and cluster["members"][0]["id"] == ids["b"] and cluster["members"][0]["kept"]
    assert all(m["text"] for m in cluster["members"])
    assert sum(report["similarity_histogram"]["counts"]) == 2
    for pair in report["pairs"]:
        assert abs(pair["estimated"] - pair["exact"]) < 0.2
    assert report["domains"] and all(0 < d["rate"] <= 1 for d in report["domains"])
    assert (run_dir / "dedup" / "report.html").stat().st_size > 1000


def test_dedup_can_be_switched_off(tmp_path):
    corpus, records = _corpus(tmp_path)
    stats = run_curation(_job(tmp_path, corpus, enabled=False))
    assert stats["balanced"] and stats["kept"] == len(records)
    assert not (tmp_path / "run" / "dedup").exists()


def test_url_normalisation():
    assert normalize_url("HTTPS://Example.ORG:443/a?b=1#frag") == "https://example.org/a?b=1"
    assert normalize_url("http://example.org") == "http://example.org/"
    assert normalize_url(None) is None

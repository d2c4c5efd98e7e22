"""Extraction quality on the article-extraction benchmark: bare trafilatura against the whole pipeline.

    python benchmarks/bench_extraction_quality.py [--data ../shared/data/article-extraction-benchmark]

Scoring, per the benchmark's SOURCE.md: for each page, the multiset of lower-cased word
4-gram shingles of the extracted text against those of the ground truth; precision and
recall per page, averaged over pages, then F1 of the two averages.
"Pipeline" packs the pages into a WARC, runs `winnow run` with the language and quality
filters off (so only read, decode, extract and repair act), and scores the curated text.
A page the pipeline drops scores as an empty extraction.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "article-extraction-benchmark"
_WORD = re.compile(r"\w+", re.UNICODE)


def shingles(text: str | None, n: int = 4) -> Counter:
    words = _WORD.findall((text or "").lower())
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def score(extracted: dict[str, str | None], truth: dict[str, str]) -> dict:
    precisions, recalls = [], []
    for page_id, expected in truth.items():
        got, want = shingles(extracted.get(page_id)), shingles(expected)
        matched = sum((got & want).values())
        precisions.append(matched / sum(got.values()) if got else 0.0)
        recalls.append(matched / sum(want.values()) if want else 0.0)
    p = sum(precisions) / len(precisions)
    r = sum(recalls) / len(recalls)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4)}


def load(data: Path) -> tuple[dict[str, bytes], dict[str, dict]]:
    truth = json.loads((data / "ground-truth.json").read_text())
    pages = {page_id: gzip.decompress((data / "html" / f"{page_id}.html.gz").read_bytes()) for page_id in truth}
    return pages, truth


def bare(pages: dict[str, bytes], truth: dict[str, dict], **settings) -> dict[str, str | None]:
    import trafilatura

    return {pid: trafilatura.extract(html.decode("utf-8", errors="replace"), url=truth[pid].get("url"), **settings)
            for pid, html in pages.items()}


def through_pipeline(pages: dict[str, bytes], truth: dict[str, dict], workdir: Path) -> dict[str, str | None]:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from pipeline.curate import run_curation
    from pipeline.job import parse_job, resolve_paths

    order = sorted(pages)
    with open(workdir / "bench.warc.gz", "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for pid in order:
            headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(truth[pid].get("url") or f"https://bench.test/{pid}", "response",
                                                          payload=io.BytesIO(pages[pid]), http_headers=headers))
    off = {"enabled": False}
    job = resolve_paths(parse_job({
        "job": {"name": "extraction-quality", "output_dir": str(workdir / "run")},
        "input": {"paths": [str(workdir / "bench.warc.gz")], "reshuffle": False},
        "language": {"min_score": 0.0},
        "quality": {"gopher_quality": off, "gopher_repetition": off, "c4": off, "fineweb": off},
    }, "bench"))
    run_curation(job, overwrite=True)
    import pyarrow.parquet as pq

    table = pq.read_table(workdir / "run" / "curated")
    by_record = dict(zip(table.column("record").to_pylist(), table.column("text").to_pylist()))
    return {pid: by_record.get(index) for index, pid in enumerate(order)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    if not (args.data / "ground-truth.json").exists():
        raise SystemExit(f"benchmark data not found at {args.data}; pass --data")
    pages, truth = load(args.data)
    expected = {pid: t["articleBody"] for pid, t in truth.items()}

    from pipeline.extract import ExtractConfig

    ours = ExtractConfig()
    rows = {}
    for name, settings in (
        ("trafilatura defaults", {}),
        ("trafilatura favor_precision", {"favor_precision": True}),
        ("trafilatura, winnow's settings", {"favor_precision": ours.favor_precision, "favor_recall": ours.favor_recall,
                                            "fast": ours.fast, "include_comments": ours.include_comments,
                                            "include_tables": ours.include_tables}),
    ):
        start = time.perf_counter()
        rows[name] = score(bare(pages, truth, **settings), expected) | {"seconds": round(time.perf_counter() - start, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        rows["winnow pipeline (read, decode, extract, repair)"] = score(
            through_pipeline(pages, truth, Path(tmp)), expected) | {"seconds": round(time.perf_counter() - start, 1)}

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"extraction quality, {len(pages)} pages (word 4-gram shingles)")
    for column in ("extractor", "precision", "recall", "F1", "seconds"):
        table.add_column(column, justify="left" if column == "extractor" else "right")
    for name, row in rows.items():
        table.add_row(name, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", str(row["seconds"]))
    Console().print(table)
    print(json.dumps({"benchmark": "extraction_quality", "pages": len(pages), "results": rows}))


if __name__ == "__main__":
    main()

"""Curation throughput: the whole pipeline against bare trafilatura.extract on the same pages, in one run.

    python benchmarks/bench_curation.py [--pages 5000] [--scales 2 4]

Builds a corpus of real-looking pages with jobs/sample/build.py (Debian documentation text in
web-page templates, with duplicates, spam, mojibake and non-HTML records), then measures:
  - bare:  trafilatura.extract with the job's settings on every HTML page, already decoded
  - 1 worker: `winnow run` end to end with the default runner (the worker in the runner's own
    process) and with one worker process on the multi-process DirectRunner; bare extraction and
    these two runs are taken in turn --repeats times, each run compared with the bare run before it
  - 2 workers: the multi-process DirectRunner with two worker processes
  - 1 worker on 16 pages: the fixed cost of a run (Beam's start-up and finish), so that the
    overhead is reported both for the whole run and per document
  - CPU seconds of the runner, the SDK workers and the extractor children
  - peak resident memory of the SDK workers by stage (the pipeline records each worker's peak
    as Beam distributions, `RUN/metrics.json`), of each extractor child and of the runner process
--scales repeats the 2-worker run on multiples of the corpus (default 2x), to show whether
per-worker memory stays flat as the corpus grows. Dedup and the tokenizer are switched off: they
have benchmarks of their own (bench_dedup_*.py, bench_tokenizer.py). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from procmem import TreeMemory, classify_beam  # noqa: E402

DATA = ROOT / "benchmarks" / "data"


def build_corpus(pages: int, files: int) -> Path:
    out = DATA / f"pages-{pages}"
    if not (out / "manifest.json").exists():
        subprocess.run([sys.executable, str(ROOT / "jobs/sample/build.py"), "--out-dir", str(out),
                        "--pages", str(pages), "--files", str(files), "--seed", "7"], check=True)
    return out


def html_pages(corpus: Path) -> list[tuple[str, str | None]]:
    """Every HTML response in the corpus, decoded the way the pipeline decodes it."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    from pipeline.decode import DecodeConfig, DecodeError, decode_html, is_textual
    from pipeline.readers import _split_content_type

    pages = []
    for path in sorted(corpus.glob("*.warc.gz")):
        with open(path, "rb") as f:
            for record in ArchiveIterator(f, record_types=WarcRecordType.response, parse_http=True):
                media, charset = _split_content_type(record.http_headers.get("Content-Type"))
                body = record.reader.read()
                if media != "text/html" or not is_textual(media, body):
                    continue
                try:
                    pages.append((decode_html(body, charset, DecodeConfig()).text, record.headers.get("WARC-Target-URI")))
                except DecodeError:
                    continue
    return pages


def bare_extract(pages: list[tuple[str, str | None]]) -> float:
    from pipeline.extract import ExtractConfig
    import trafilatura

    config = ExtractConfig()
    start = time.perf_counter()
    for html, url in pages:
        trafilatura.extract(html, url=url, favor_precision=config.favor_precision, favor_recall=config.favor_recall,
                            fast=config.fast, include_comments=config.include_comments,
                            include_tables=config.include_tables, include_images=False, include_links=False,
                            with_metadata=False, deduplicate=False, output_format="txt")
    return time.perf_counter() - start


def run_pipeline(corpus: Path, workers: int, tag: str) -> dict:
    run_dir = DATA / f"run-{tag}"
    job = DATA / f"job-{tag}.toml"
    job.write_text(
        f'[job]\nname = "bench-{tag}"\noutput_dir = "{run_dir}"\n\n[input]\npaths = ["{corpus}/*.warc.gz"]\n'
        # Small shards, so a doubled corpus means more shards, not bigger ones: the writer's
        # memory is bounded by the shard size, as it is at scale with the default 128 MiB.
        f'\n[output]\ntarget_shard_bytes = {4 << 20}\n\n[dedup]\nenabled = false\n\n[tokenizer]\nenabled = false\n')
    # workers=0: the default runner, Beam's portable runner with the worker in the same process.
    command = [sys.executable, "-m", "pipeline.cli", "run", str(job), "--overwrite"]
    if workers:
        command += ["--", "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with TreeMemory(process.pid, lambda pid, cmd: classify_beam(pid, cmd, process.pid)) as memory:
        _, err = process.communicate()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"pipeline run failed ({process.returncode}):\n{err.decode()[-3000:]}")
    stats = json.loads((run_dir / "stats.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    peaks = {name.removesuffix(".worker_peak_rss_mib"): d["max"]
             for name, d in metrics["distributions"].items() if name.endswith(".worker_peak_rss_mib")}
    # Each stage's own time (Beam counters <stage>.busy_ms), per input record.
    busy = {name.removesuffix(".busy_ms"): round(value / stats["records"], 3)
            for name, value in metrics["counters"].items() if name.endswith(".busy_ms")}
    workers_peak = [peak for role, peak in memory.peaks.values() if role == "sdk_worker"]
    extractor_peak = [peak for role, peak in memory.peaks.values() if role == "extractor"]
    return {
        "workers": workers,
        "records": stats["records"],
        "kept": stats["kept"],
        "seconds": round(seconds, 2),
        "docs_per_s": round(stats["records"] / seconds, 2),
        "sdk_worker_peak_mib": round(max(workers_peak, default=0), 1),
        # Each worker's peak by the end of its document stages (read .. quality), and of writing.
        "sdk_worker_document_stages_mib": peaks.get("quality", 0),
        "sdk_worker_writing_mib": max((v for k, v in peaks.items() if k.startswith("write.")), default=0),
        "extractor_peak_mib": round(max(extractor_peak, default=0), 1),
        "runner_peak_mib": round(memory.max_by_role().get("runner", 0), 1),
        # CPU seconds of each kind of process: what the run costs, whatever runs alongside.
        "cpu_seconds": {role: round(seconds, 2) for role, seconds in sorted(memory.cpu_by_role().items())},
        "stage_ms_per_record": busy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of bare extraction and the 1-worker runs, taken in turn")
    parser.add_argument("--scales", type=int, nargs="*", default=[2],
                        help="also run 2 workers on these multiples of --pages, to watch per-worker memory")
    args = parser.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)

    corpus = build_corpus(args.pages, args.files)
    pages = html_pages(corpus)
    tiny_corpus = build_corpus(16, 1)
    # This machine's speed drifts by 10% and more over minutes, so bare extraction and the
    # 1-worker runs are measured in turn, --repeats times, and each run is compared with the
    # bare run just before it; the median of those ratios is reported.
    rounds = []
    for _ in range(args.repeats):
        bare_seconds = bare_extract(pages)
        in_process = run_pipeline(corpus, 0, f"{args.pages}-w0")
        one = run_pipeline(corpus, 1, f"{args.pages}-w1")
        rounds.append({"bare_seconds": round(bare_seconds, 2), "in_process": in_process, "one": one})
    # The same runs on a few pages: Beam's start-up and finish, a fixed cost per run.
    tiny = {mode: run_pipeline(tiny_corpus, mode, f"16-w{mode}") for mode in (0, 1)}
    two = run_pipeline(corpus, 2, f"{args.pages}-w2")
    scaled = [run_pipeline(build_corpus(scale * args.pages, scale * args.files), 2, f"{scale * args.pages}-w2")
              for scale in args.scales]

    def overheads(mode: str, key: int) -> dict:
        """Whole-run and per-document overhead of one kind of 1-worker run over bare extraction."""
        whole, per_doc, fixed = [], [], []
        for r in rounds:
            run, bare_per_page = r[mode], r["bare_seconds"] / len(pages)
            whole.append((run["seconds"] / run["records"]) / bare_per_page - 1)
            # Per document, without the fixed cost: what a run of any size adds per page.
            marginal = (run["seconds"] - tiny[key]["seconds"]) / (run["records"] - tiny[key]["records"])
            per_doc.append(marginal / bare_per_page - 1)
            fixed.append(tiny[key]["seconds"] - marginal * tiny[key]["records"])
        return {"whole_run": round(statistics.median(whole), 4), "per_document": round(statistics.median(per_doc), 4),
                "fixed_seconds": round(statistics.median(fixed), 2),
                "whole_run_each": [round(x, 4) for x in whole]}

    bare_seconds = statistics.median(r["bare_seconds"] for r in rounds)
    bare = {"pages": len(pages), "seconds": round(bare_seconds, 2), "docs_per_s": round(len(pages) / bare_seconds, 2),
            "seconds_each": [r["bare_seconds"] for r in rounds]}
    over = {"in_process": overheads("in_process", 0), "one_worker_process": overheads("one", 1)}
    # The median round's runs stand for the 1-worker rates.
    middle = sorted(rounds, key=lambda r: r["one"]["seconds"])[len(rounds) // 2]
    in_process, one = middle["in_process"], middle["one"]
    runs = [in_process, one, two, *scaled]
    speedup = two["docs_per_s"] / one["docs_per_s"]

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"curation benchmark, {args.pages} pages")
    for column in ("run", "docs", "seconds", "docs/s", "SDK worker peak MiB", "by end of document stages",
                   "by end of writing", "extractor peak MiB", "runner peak MiB"):
        table.add_column(column, justify="right" if column != "run" else "left")
    table.add_row("bare trafilatura.extract", str(bare["pages"]), str(bare["seconds"]), str(bare["docs_per_s"]),
                  "", "", "", "", "")
    for run in runs:
        name = "winnow, in process" if run["workers"] == 0 else f"winnow, {run['workers']} worker proc."
        table.add_row(name, str(run["records"]),
                      str(run["seconds"]), str(run["docs_per_s"]), str(run["sdk_worker_peak_mib"]),
                      str(run["sdk_worker_document_stages_mib"]), str(run["sdk_worker_writing_mib"]),
                      str(run["extractor_peak_mib"]), str(run["runner_peak_mib"]))
    console = Console()
    console.print(table)
    console.print(f"bare extraction: {1000 * bare_seconds / len(pages):.2f} ms per page "
                  f"(each round: {', '.join(map(str, bare['seconds_each']))} s)")
    for mode, label in (("in_process", "1 worker in process (default runner)"),
                        ("one_worker_process", "1 worker process (multi-process runner)")):
        o = over[mode]
        console.print(f"non-extraction overhead, {label}: whole run {o['whole_run']:+.1%} (target <= +25%; "
                      f"each round {', '.join(f'{x:+.1%}' for x in o['whole_run_each'])}), per document "
                      f"{o['per_document']:+.1%} after a fixed {o['fixed_seconds']:.1f} s per run")
    console.print(f"2 workers / 1 worker process: {speedup:.2f}x (target >= 1.7x)")
    for run in (in_process, one):
        cpu = run["cpu_seconds"]
        console.print(f"CPU seconds, {run['workers']} worker process(es): "
                      + ", ".join(f"{role} {seconds}" for role, seconds in cpu.items())
                      + f"; sum {sum(cpu.values()):.1f} against {bare_seconds:.1f} s of bare extraction")
    stages = one["stage_ms_per_record"]
    console.print("1 worker process, each stage's own time per input record (ms): "
                  + ", ".join(f"{name} {ms}" for name, ms in stages.items())
                  + f"; sum {sum(stages.values()):.2f}; whole run {1000 * one['seconds'] / one['records']:.2f}")
    print(json.dumps({"benchmark": "curation", "bare": bare, "runs": runs, "rounds": rounds, "tiny_runs": tiny,
                      "overhead_1_worker": over, "speedup_2_workers": round(speedup, 3)}))


if __name__ == "__main__":
    main()

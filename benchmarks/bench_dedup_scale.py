"""Dedup at scale: throughput of the dedup stage alone, signature rate against datasketch, memory per worker.

    python benchmarks/bench_dedup_scale.py [--docs 100000] [--memory-docs 10000 50000] [--shards 16] [--control]

The corpus (benchmarks/data/dedup-scale-<docs>-seed<seed>/part-NN.jsonl, with text, url and
date fields) is real prose recombined (benchmarks/real_text.py: article bodies and prose
paragraphs of /usr/share/doc): each document draws paragraphs at random, a long one cut to
a random window of 40-160 words, until it reaches a lognormal length (median about 400
words, as extracted web pages). 80% of the documents are such originals; 10% are exact
copies of a random original and 10% near copies (1-4% of words substituted, inserted or
deleted, a third with a site line added as well), shuffled through the shards.

Measured, each pipeline in its own process (the runner) on the multi-process DirectRunner:
  - read:  ReadDocuments on the JSONL shards, then a count
  - dedup: ReadDocuments, pipeline.dedup.Deduplicate(DedupConfig()) (exact and MinHash-LSH near
           dedup with FineWeb's defaults), then a count of the kept documents
with 1 and 2 workers on --docs; the dedup stage's own rate is docs / (dedup seconds - read
seconds). Every run's counts are checked: all documents read and seen by dedup, exact
duplicates removed as counted in the corpus. Peak resident memory of each SDK worker and of
the runner process (procmem.TreeMemory) for 2 workers at every size in --memory-docs and
--docs, with the bytes the local runner hands each worker per grouped collection; --control
adds read + a group-by-id of the whole documents (the shape of dedup's final join) at every
size, a grouping with no dedup code in it. Child logs: benchmarks/data/<corpus>-<mode>-w<n>.log.
Signature rate: MinHasher against datasketch's per-document MinHash(..., scheme="affine64") +
update_batch on the first --signature-docs documents of the corpus, timed as bench_signatures
times. Prints tables and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from procmem import TreeMemory, classify_beam  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
EXACT_SHARE = 0.10
NEAR_SHARE = 0.10
MODES = ("read", "dedup", "group")
SITE_LINES = (
    "Subscribe to our newsletter for the week's best stories, delivered every Friday morning.",
    "This article was updated with additional reporting and a correction to the second paragraph.",
    "Share on Facebook Share on Twitter Share by email Print this page Save for later",
    "Copyright the publisher. All rights reserved. Do not republish without permission.",
)


# ---------------------------------------------------------------------------- corpus


def compose(paragraphs: list[str], rng: random.Random) -> str:
    """A document of randomly drawn paragraphs (long ones cut to a window), lognormal in length."""
    length = max(50, min(20_000, int(rng.lognormvariate(6.0, 0.8))))  # median e**6, about 400 words
    pieces, have = [], 0
    while have < length:
        words = rng.choice(paragraphs).split()
        window = rng.randint(40, 160)
        if len(words) > window:
            start = rng.randrange(len(words) - window + 1)
            words = words[start:start + window]
        pieces.append(" ".join(words))
        have += len(words)
    return "\n\n".join(pieces)


def near_copy(text: str, rng: random.Random, vocabulary: list[str]) -> str:
    """The text with 1-4% of its words substituted, inserted or deleted; a third also get a site line."""
    words = text.split(" ")
    for _ in range(max(1, int(len(words) * rng.uniform(0.01, 0.04)))):
        position = rng.randrange(len(words))
        kind = rng.random()
        if kind < 0.5:
            words[position] = rng.choice(vocabulary)
        elif kind < 0.75:
            words.insert(position, rng.choice(vocabulary))
        elif len(words) > 1:
            del words[position]
    out = " ".join(words)
    if rng.random() < 1 / 3:
        line = rng.choice(SITE_LINES)
        out = f"{line}\n\n{out}" if rng.random() < 0.5 else f"{out}\n\n{line}"
    return out


def distinct_texts(corpus: Path) -> int:
    """How many distinct normalised texts the corpus holds: what exact dedup must keep."""
    import hashlib

    from pipeline.minhash import normalize_for_dedup

    digests = set()
    for path in sorted(corpus.glob("part-*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                text = normalize_for_dedup(json.loads(line)["text"])
                digests.add(hashlib.blake2b(text.encode(), digest_size=16).digest())
    return len(digests)


def build_corpus(docs: int, shards: int, seed: int) -> Path:
    out = DATA / f"dedup-scale-{docs}-seed{seed}"
    done = out / "corpus.json"
    if done.exists():
        info = json.loads(done.read_text())
        if "exact_duplicates" not in info:
            info["exact_duplicates"] = docs - distinct_texts(out)
            done.write_text(json.dumps(info))
        return out
    from real_text import all_paragraphs

    rng = random.Random(seed)
    paragraphs = all_paragraphs()
    vocabulary = sorted({w for p in paragraphs[:20_000] for w in p.split() if w.isalpha() and len(w) >= 3})
    exact = int(docs * EXACT_SHARE)
    near = int(docs * NEAR_SHARE)
    originals = [compose(paragraphs, rng) for _ in range(docs - exact - near)]
    records = [(text, "original") for text in originals]
    records += [(rng.choice(originals), "exact") for _ in range(exact)]
    records += [(near_copy(rng.choice(originals), rng, vocabulary), "near") for _ in range(near)]
    rng.shuffle(records)
    out.mkdir(parents=True, exist_ok=True)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    total_bytes = 0
    files = [open(out / f"part-{n:02d}.jsonl", "w", encoding="utf-8") for n in range(shards)]
    try:
        for index, (text, _) in enumerate(records):
            line = json.dumps({"text": text, "url": f"https://site{index % 997}.example/page/{index}",
                               "date": (start + timedelta(seconds=rng.randrange(86400 * 600))).isoformat()})
            files[index % shards].write(line + "\n")
            total_bytes += len(line) + 1
    finally:
        for f in files:
            f.close()
    words = sum(len(text.split()) for text, _ in records)
    # A random original can repeat another by chance: exact dedup's answer is counted, not assumed.
    done.write_text(json.dumps({"docs": docs, "originals": len(originals), "exact_copies": exact,
                                "near_copies": near, "shards": shards, "seed": seed, "bytes": total_bytes,
                                "mean_words": round(words / docs, 1), "source_paragraphs": len(paragraphs),
                                "exact_duplicates": docs - distinct_texts(out)}))
    return out


# ---------------------------------------------------------------------------- one pipeline, in its own process


def record_grouped_sizes() -> dict[str, list[int]]:
    """Bytes the local runner hands each worker per grouped PCollection, filled in as the pipeline runs.

    The local runner (FnApiRunner) holds every grouping's data and sends each worker its whole share
    as one message (execution.GroupingBuffer.partition); this wraps that method, read-only, to log
    the sizes. Beam internals, for diagnosis only: a Beam release that moves them turns this off.
    """
    sizes: dict[str, list[int]] = {}
    try:
        from apache_beam.runners.portability.fn_api_runner import execution
        from apache_beam.runners.portability.fn_api_runner.translations import split_buffer_id
    except ImportError:
        return sizes
    buffer_class, context_class = execution.GroupingBuffer, execution.BundleContextManager
    if not (hasattr(buffer_class, "partition") and hasattr(context_class, "get_buffer")):
        return sizes
    get_buffer, partition = context_class.get_buffer, buffer_class.partition

    def named_get_buffer(self, buffer_id, transform_id):
        buffer = get_buffer(self, buffer_id, transform_id)
        if isinstance(buffer, buffer_class) and not hasattr(buffer, "bench_name"):
            buffer.bench_name = split_buffer_id(buffer_id)[1]
        return buffer

    def measured_partition(self, n):
        fresh = not self._grouped_output
        parts = partition(self, n)
        if fresh:
            sizes[getattr(self, "bench_name", "?")] = [sum(map(len, part)) for part in parts]
        return parts

    context_class.get_buffer = named_get_buffer
    buffer_class.partition = measured_partition
    return sizes


def run_child(mode: str, corpus: Path, workers: int) -> None:
    """Build and run one pipeline here (this process is the runner); print its counts and seconds as JSON."""
    import apache_beam as beam
    from apache_beam.metrics import Metrics
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.curate import local_runner, match_inputs
    from pipeline.dedup import DedupConfig, Deduplicate
    from pipeline.job import InputConfig
    from pipeline.stages import KEPT, ReadDocuments

    def record(count: int) -> None:
        Metrics.counter("bench", "out").inc(count)

    files = match_inputs(InputConfig(paths=(f"{corpus}/*.jsonl",), format="jsonl"))
    options = PipelineOptions(["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"])
    p = beam.Pipeline(runner=local_runner(options), options=options)  # as `winnow run` does
    docs = (p | "ListInputFiles" >> beam.Create(files)
            | "Read" >> ReadDocuments("text", "html", "url", "date", False))[KEPT]
    if mode == "dedup":
        out = (docs | "Dedup" >> Deduplicate(DedupConfig())).kept
    elif mode == "group":
        # Dedup's last step groups every whole document by id; this is that grouping alone.
        out = (docs | "ById" >> beam.Map(lambda d: (d.id, d)) | "GroupById" >> beam.GroupByKey()
               | "Values" >> beam.FlatMap(lambda kv: kv[1]))
    else:
        out = docs
    out | "Count" >> beam.combiners.Count.Globally() | "Record" >> beam.Map(record)
    grouped = record_grouped_sizes()
    start = time.perf_counter()
    result = p.run()
    result.wait_until_finish()
    seconds = time.perf_counter() - start
    metrics = result.metrics().query(MetricsFilter())
    counters = {f"{r.key.metric.namespace}:{r.key.metric.name}": r.committed for r in metrics["counters"]}
    # Each worker's peak resident memory by the end of each stage and grouping, as the pipeline records it.
    peaks = {r.key.metric.name.removesuffix(".worker_peak_rss_mib"): r.committed.max
             for r in metrics["distributions"]
             if r.key.metric.name.endswith(".worker_peak_rss_mib") and r.committed is not None}
    print(json.dumps({"seconds": seconds, "out": counters.get("bench:out"),
                      "read": counters.get("winnow:read.in"), "dedup_in": counters.get("winnow:dedup.in"),
                      "dedup_kept": counters.get("winnow:dedup.kept"),
                      "exact": counters.get("winnow:dedup.dropped.exact_duplicate"),
                      "near": counters.get("winnow:dedup.dropped.near_duplicate"),
                      "grouped_bytes_per_worker": grouped, "worker_peak_mib_by_step": dict(sorted(peaks.items()))}))


def grouping_name(buffer_name: str) -> str:
    """'ref_AppliedPTransform_Dedup-GroupBands_35' -> 'Dedup/GroupBands'."""
    name = re.sub(r"_\d+$", "", buffer_name.removeprefix("ref_AppliedPTransform_"))
    return name.replace("-", "/")


def run_measured(mode: str, corpus: Path, workers: int) -> dict:
    """One pipeline in a child process, with the peak memory of the runner and of each SDK worker."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--corpus", str(corpus),
               "--workers", str(workers)]
    log = DATA / f"{corpus.name}-{mode}-w{workers}.log"

    def classify(pid: int, cmdline: str) -> str:
        # The local runner starts each SDK worker through a shell, whose command line names it too.
        if cmdline.split(" ", 1)[0].rsplit("/", 1)[-1] in ("sh", "bash", "dash"):
            return "shell"
        return classify_beam(pid, cmdline, process.pid)

    start = time.perf_counter()
    with open(log, "wb") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr)
        with TreeMemory(process.pid, classify) as memory:
            out, _ = process.communicate()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{mode} pipeline failed ({process.returncode}), see {log}:\n"
                         f"{log.read_text(errors='replace')[-3000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    info = json.loads((corpus / "corpus.json").read_text())
    problems = []
    if result["read"] != info["docs"]:
        problems.append(f"read {result['read']} of {info['docs']} documents")
    if mode == "dedup":
        if result["dedup_in"] != info["docs"]:
            problems.append(f"dedup saw {result['dedup_in']} of {info['docs']} documents")
        if result["exact"] != info["exact_duplicates"]:
            problems.append(f"{result['exact']} exact duplicates removed, {info['exact_duplicates']} expected")
        if result["out"] != result["dedup_kept"]:
            problems.append(f"count {result['out']} != dedup.kept {result['dedup_kept']}")
    elif result["out"] != info["docs"]:
        problems.append(f"counted {result['out']} of {info['docs']} documents")
    result["problems"] = problems
    result["log"] = str(log)
    # The groupings worth showing: at least 1 MiB for some worker.
    result["grouped_bytes_per_worker"] = {
        grouping_name(name): parts for name, parts in result["grouped_bytes_per_worker"].items()
        if max(parts, default=0) >= 1 << 20}
    worker_peaks = sorted((peak for role, peak in memory.peaks.values() if role == "sdk_worker"), reverse=True)
    result.update({
        "mode": mode, "workers": workers, "wall_seconds": round(wall, 2), "seconds": round(result["seconds"], 2),
        "sdk_worker_peaks_mib": [round(p, 1) for p in worker_peaks],
        "runner_peak_mib": round(memory.max_by_role().get("runner", 0.0), 1),
    })
    return result


# ---------------------------------------------------------------------------- signatures


def signature_rates(corpus: Path, count: int, repeats: int) -> dict:
    """Docs/s of our signatures and of datasketch's per-document MinHash, on the corpus's first `count` documents."""
    import numpy as np
    from bench_signatures import best_rate
    from datasketch import MinHash

    from pipeline.minhash import (
        DEFAULT_SEED, MinHashConfig, MinHasher, hash_shingle, normalize_for_dedup, word_shingles,
    )

    texts: list[str] = []
    for path in sorted(corpus.glob("part-*.jsonl")):
        with open(path, encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line, _ in zip(f, range(count - len(texts)))]
    config = MinHashConfig()
    hasher = MinHasher.from_config(config)
    shared = np.array(hasher.permutations)
    normalize_for_dedup("")  # the folding table is built once per process, outside the timings
    shingles = [word_shingles(normalize_for_dedup(t), config.ngram) for t in texts]

    def ours() -> list:
        return [hasher.signature(s) for s in shingles]

    def ours_from_text() -> list:
        return [hasher.signature(word_shingles(normalize_for_dedup(t), config.ngram)) for t in texts]

    def datasketch(permutations=None) -> list:
        out = []
        for s in shingles:
            m = MinHash(config.num_perm, DEFAULT_SEED, hashfunc=hash_shingle, scheme="affine64",
                        permutations=permutations)
            m.update_batch(s)
            out.append(m.hashvalues)
        return out

    reference = ours()
    if not all(np.array_equal(x, y) for x, y in zip(reference, datasketch())):
        raise SystemExit("signatures differ from datasketch's")
    rates = {
        "ours": best_rate(ours, len(texts), repeats),
        "datasketch": best_rate(datasketch, len(texts), repeats),
        "datasketch_shared_permutations": best_rate(lambda: datasketch(shared), len(texts), repeats),
        "ours_from_text": best_rate(ours_from_text, len(texts), repeats),
    }
    return {"docs": len(texts), "shingles_per_doc": round(sum(map(len, shingles)) / len(texts), 1),
            "docs_per_s": {k: round(v, 1) for k, v in rates.items()},
            "ratio_vs_datasketch": round(rates["ours"] / rates["datasketch"], 2),
            "ratio_vs_datasketch_shared_permutations":
                round(rates["ours"] / rates["datasketch_shared_permutations"], 2)}


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000, help="corpus size for the throughput runs")
    parser.add_argument("--memory-docs", type=int, nargs="*", default=[10_000, 50_000],
                        help="smaller corpora for the memory runs (2 workers); --docs is always included")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--signature-docs", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats for the signature rates")
    parser.add_argument("--control", action="store_true",
                        help="also run read + group-by-id of whole documents at every memory size")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.corpus, args.workers)
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 170)  # wide tables stay whole in logs
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    started = time.perf_counter()
    sizes = sorted(set(args.memory_docs) | {args.docs})
    corpora = {n: build_corpus(n, args.shards, args.seed) for n in sizes}
    corpus_info = {n: json.loads((path / "corpus.json").read_text()) for n, path in corpora.items()}
    built = time.perf_counter() - started
    main_corpus = corpora[args.docs]

    signatures = signature_rates(main_corpus, args.signature_docs, args.repeats)
    runs = []
    for workers in (1, 2):
        for mode in ("read", "dedup"):
            runs.append({"docs": args.docs, **run_measured(mode, main_corpus, workers)})
    for n in sizes:
        if n != args.docs:
            runs.append({"docs": n, **run_measured("dedup", corpora[n], 2)})
        if args.control:
            runs.append({"docs": n, **run_measured("group", corpora[n], 2)})
    load_after = Path("/proc/loadavg").read_text().split()[:3]

    def find(mode: str, workers: int, docs: int) -> dict:
        return next(r for r in runs if (r["mode"], r["workers"], r["docs"]) == (mode, workers, docs))

    dedup_rates = {}
    for workers in (1, 2):
        read, dedup = find("read", workers, args.docs), find("dedup", workers, args.docs)
        share = dedup["seconds"] - read["seconds"]
        dedup_rates[workers] = {"dedup_only_seconds": round(share, 2),
                                "dedup_only_docs_per_s": round(args.docs / share, 1) if share > 0 else None}

    info = corpus_info[args.docs]
    table = Table(title=f"dedup at scale: {args.docs:,} docs in {args.shards} JSONL shards "
                        f"({info['bytes'] / 2**20:,.0f} MiB, {info['mean_words']:.0f} words/doc mean; "
                        f"{info['exact_copies']:,} exact and {info['near_copies']:,} near copies; "
                        f"{info['exact_duplicates']:,} exact duplicates in all)")
    for column in ("pipeline", "workers", "docs", "seconds", "docs/s", "dedup alone s", "dedup alone docs/s",
                   "kept", "exact removed", "near removed", "SDK worker peak MiB", "runner peak MiB", "counts"):
        table.add_column(column, justify="left" if column == "pipeline" else "right")
    for run in runs:
        alone = dedup_rates.get(run["workers"], {}) if run["mode"] == "dedup" and run["docs"] == args.docs else {}
        label = {"read": "read + count", "dedup": "read + Deduplicate + count",
                 "group": "read + group by id + count"}[run["mode"]]
        table.add_row(label, str(run["workers"]), f"{run['docs']:,}", f"{run['seconds']:.1f}",
                      f"{run['docs'] / run['seconds']:,.0f}",
                      f"{alone['dedup_only_seconds']:.1f}" if alone else "",
                      f"{alone['dedup_only_docs_per_s']:,.0f}" if alone.get("dedup_only_docs_per_s") else "",
                      f"{run['dedup_kept']:,}" if run["dedup_kept"] is not None else "",
                      f"{run['exact']:,}" if run["exact"] is not None else "",
                      f"{run['near']:,}" if run["near"] is not None else "",
                      " / ".join(f"{p:,.0f}" for p in run["sdk_worker_peaks_mib"]), f"{run['runner_peak_mib']:,.0f}",
                      "[red]WRONG[/red]" if run["problems"] else "ok")
    console.print(table)
    for run in runs:
        if run["problems"]:
            console.print(f"[red]{run['mode']}, {run['workers']} worker(s), {run['docs']:,} docs: "
                          f"{'; '.join(run['problems'])}[/red] (log: {run['log']})")

    # What the local runner handed each worker in one message, per grouping, as the corpus grows.
    grouped_runs = [r for r in runs if r["workers"] == 2 and r["mode"] in ("dedup", "group")]
    largest = max((r for r in grouped_runs if r["mode"] == "dedup"), key=lambda r: r["docs"], default=None)
    if largest and largest["grouped_bytes_per_worker"]:
        names = sorted(largest["grouped_bytes_per_worker"],
                       key=lambda name: -max(largest["grouped_bytes_per_worker"][name]))[:6]
        grouped = Table(title="largest grouped collections: MiB the local runner sends one worker in one message "
                              "(2 workers, the larger share)")
        grouped.add_column("grouping (PCollection)")
        columns = sorted(grouped_runs, key=lambda r: (r["mode"], r["docs"]))
        for run in columns:
            grouped.add_column(f"{run['mode']}, {run['docs']:,} docs", justify="right")
        controls = {n for r in columns if r["mode"] == "group" for n in r["grouped_bytes_per_worker"]}
        for name in names + sorted(controls - set(names)):
            cells = []
            for run in columns:
                parts = run["grouped_bytes_per_worker"].get(name)
                cells.append(f"{max(parts) / 2**20:,.1f}" if parts else "")
            grouped.add_row(name, *cells)
        console.print(grouped)

    rates = signatures["docs_per_s"]
    sig = Table(title=f"MinHash signatures of {signatures['docs']:,} corpus documents "
                      f"({signatures['shingles_per_doc']:.0f} shingles/doc), 112 permutations, affine64; "
                      "all but the last row start from the same shingle lists")
    for column in ("signatures", "docs/s", "vs datasketch MinHash + update_batch"):
        sig.add_column(column, justify="left" if column == "signatures" else "right")
    for name, label in (("ours", "ours: MinHasher.signature, from shingles"),
                        ("datasketch", "datasketch: MinHash(...) + update_batch per document"),
                        ("datasketch_shared_permutations", "datasketch: MinHash(..., permutations=shared)"),
                        ("ours_from_text", "ours from raw text (normalise, shingle, hash, permute)")):
        sig.add_row(label, f"{rates[name]:,.0f}", f"{rates[name] / rates['datasketch']:.2f}x")
    console.print(sig)
    console.print(f"load average before {' '.join(load_before)}, after {' '.join(load_after)} (2 cores); "
                  f"corpora ready in {built:.0f} s; whole benchmark {time.perf_counter() - started:.0f} s")
    print(json.dumps({"benchmark": "dedup_scale", "corpus": {str(n): corpus_info[n] for n in sizes},
                      "signatures": signatures, "dedup_alone": dedup_rates, "runs": runs,
                      "load_before": load_before, "load_after": load_after}))


if __name__ == "__main__":
    main()

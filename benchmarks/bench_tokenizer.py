"""Tokenizer training, the Tokenize stage against bare encode_batch, and compression by vocabulary size.

    python benchmarks/bench_tokenizer.py [--doc-mb 24] [--train-mb 12] [--encode-mb 16] [--vocab-sizes 8192,32768,65536]

Text: the curated output of the bundled sample (out/sample/curated/*.parquet, a multilingual
web crawl; when missing, the sample job runs into a temporary directory first) plus, for
volume, the system's documentation under /usr/share/doc (changelogs, READMEs, licences; .gz
files decompressed), cut into documents of at most 20,000 characters at paragraph breaks.
A seeded hash of each document id holds out 10% of the documents; nothing is written to
the repository.

  - training: the bounded sample (pipeline.tokenizer.SampleSelection, --train-mb of the
    held-in documents), trained once per vocabulary size; MB/s of sample text.
  - encoding: the Tokenize stage on the in-process DirectRunner (documents read from a
    Parquet file, encoded in batches, shuffled to shards, written as Parquet with a
    manifest) against bare `Tokenizer.encode_batch` and `encode_batch_fast` on the same
    documents in the same process, with the 32k tokenizer; text tokens per second, best of
    --repeats, and the median of each repeat's own ratio (the three run back to back, each
    repeat starting with another one, so a busy machine slows them alike). The garbage
    collector is paused while the bare calls run. CPU seconds (every thread of the process)
    are reported too: on a busy machine they show the work each path does better than the
    wall clock. The stage's wall time includes pipeline construction and start, reading and
    writing; each repeat also runs the stage on an eighth of the documents, and the difference
    ("at scale") is the stage's rate with that fixed cost left out, as on a corpus of any size.
  - compression: UTF-8 bytes per token on the held-out documents, overall and for the
    web and documentation parts, per vocabulary size.

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import gzip
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import apache_beam as beam  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from pipeline.token_manifest import read_manifest  # noqa: E402
from pipeline.tokenize_stage import Tokenize, write_tokenizer  # noqa: E402
from pipeline.tokenizer import (  # noqa: E402
    SampleDocument, SampleSelection, TokenizerConfig, load_tokenizer, sample_rank, train_tokenizer, utf8_size,
)

DOC_ROOT = Path("/usr/share/doc")
SAMPLE_GLOB = ROOT / "out" / "sample" / "curated"
MAX_DOCUMENT_CHARS = 20_000
HELD_OUT_SEED = 99  # a seed of its own, so the held-out split is not the training sample's order
HELD_OUT_SHARE = 0.10


@dataclass(frozen=True)
class Doc:
    id: str
    text: str
    part: str  # "web" (curated sample) or "docs" (/usr/share/doc)


def _doc_id(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def curated_documents() -> list[Doc]:
    """The bundled sample's curated documents; runs the sample job into a temporary directory when missing."""
    files = sorted(SAMPLE_GLOB.glob("*.parquet"))
    if not files:
        from pipeline.curate import run_curation
        from pipeline.job import load_job

        run_dir = Path(tempfile.mkdtemp(prefix="winnow-bench-sample-")) / "run"
        job = load_job(ROOT / "jobs" / "sample.toml")
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            run_curation(dataclasses.replace(job, job=dataclasses.replace(job.job, output_dir=str(run_dir))))
        finally:
            os.chdir(cwd)
        files = sorted((run_dir / "curated").glob("*.parquet"))
    rows = pq.read_table(files, columns=["id", "text"]).to_pylist()
    return [Doc(r["id"], r["text"], "web") for r in rows if r["text"]]


def documentation_documents(megabytes: float) -> list[Doc]:
    """Documents from /usr/share/doc up to `megabytes` of UTF-8 text, in path order."""
    docs: list[Doc] = []
    budget = int(megabytes * 1e6)
    for path in sorted(p for p in DOC_ROOT.rglob("*") if p.is_file() and not p.is_symlink()):
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError):
            continue  # binary or unreadable
        if "\x00" in text or not text.strip():
            continue
        for i, chunk in enumerate(_chunks(text)):
            docs.append(Doc(_doc_id(f"{path}#{i}"), chunk, "docs"))
            budget -= utf8_size(chunk)
            if budget <= 0:
                return docs
    return docs


def _chunks(text: str) -> list[str]:
    """Pieces of at most MAX_DOCUMENT_CHARS, cut at paragraph breaks where there are any."""
    out, start = [], 0
    while start < len(text):
        end = min(len(text), start + MAX_DOCUMENT_CHARS)
        if end < len(text):
            cut = text.rfind("\n\n", start + MAX_DOCUMENT_CHARS // 2, end)
            end = cut + 2 if cut > 0 else end
        out.append(text[start:end])
        start = end
    return out


def held_out(doc: Doc) -> bool:
    return sample_rank(doc.id, HELD_OUT_SEED) < HELD_OUT_SHARE * 2**64


def train_sample(docs: list[Doc], megabytes: float, seed: int) -> list[str]:
    selection = SampleSelection(int(megabytes * 1e6))
    for doc in docs:
        selection.add(SampleDocument(rank=sample_rank(doc.id, seed), id=doc.id, text=doc.text,
                                     size=utf8_size(doc.text)))
    return selection.texts()


def _take(docs: list[Doc], megabytes: float) -> list[Doc]:
    out, left = [], megabytes * 1e6
    for doc in docs:
        if left <= 0:
            break
        out.append(doc)
        left -= utf8_size(doc.text)
    return out


def run_stage(tokenizer_path: str, docs: list[Doc], workdir: Path, label: str) -> tuple[float, dict]:
    """The Tokenize stage alone in a pipeline that reads the documents from Parquet; (seconds, manifest)."""
    from pipeline.curate import local_runner

    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "docs.parquet"
    if not source.exists():
        pq.write_table(pa.table({"id": [d.id for d in docs], "text": [d.text for d in docs]}), source)
    out = workdir / f"tokens-{label}"
    config = TokenizerConfig()
    start = time.perf_counter()
    options = PipelineOptions(["--runner=DirectRunner"])
    with beam.Pipeline(runner=local_runner(options), options=options) as p:  # as `winnow run` does
        rows = p | "Read" >> beam.io.ReadFromParquet(str(source))
        documents = rows | "ToDoc" >> beam.Map(lambda r: Doc(r["id"], r["text"], ""))
        path = p | "TokenizerPath" >> beam.Create([tokenizer_path])
        documents | "Tokenize" >> Tokenize(config, str(out), path, target_shard_bytes=128 * 2**20,
                                           row_group_bytes=32 * 2**20, compression="zstd", compression_level=3)
    seconds = time.perf_counter() - start
    return seconds, read_manifest(str(out / "manifest.json"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doc-mb", type=float, default=24.0, help="text taken from /usr/share/doc (default 24)")
    parser.add_argument("--train-mb", type=float, default=12.0, help="training sample size (default 12)")
    parser.add_argument("--encode-mb", type=float, default=16.0, help="text encoded by stage and bare (default 16)")
    parser.add_argument("--vocab-sizes", default="8192,32768,65536")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of bare and stage (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console(stderr=True)
    web, docs = curated_documents(), documentation_documents(args.doc_mb)
    corpus = sorted(web + docs, key=lambda d: d.id)
    held_in = [d for d in corpus if not held_out(d)]
    test = [d for d in corpus if held_out(d)]
    console.print(f"corpus: {len(web)} web documents ({sum(utf8_size(d.text) for d in web) / 1e6:.1f} MB), "
                  f"{len(docs)} documentation documents ({sum(utf8_size(d.text) for d in docs) / 1e6:.1f} MB); "
                  f"{len(test)} held out")
    sample = train_sample(held_in, args.train_mb, args.seed)
    sample_bytes = sum(utf8_size(t) for t in sample)

    workdir = Path(tempfile.mkdtemp(prefix="winnow-bench-tokenizer-"))
    try:
        return _measure(args, console, web, docs, test, held_in, sample, sample_bytes, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _measure(args, console, web, docs, test, held_in, sample, sample_bytes, workdir: Path) -> int:
    from rich.console import Console
    from rich.table import Table

    training, compression, tokenizers = [], [], {}
    for vocab_size in (int(v) for v in args.vocab_sizes.split(",")):
        config = TokenizerConfig(vocab_size=vocab_size, seed=args.seed)
        start = time.perf_counter()
        tokenizer = train_tokenizer(sample, config)
        seconds = time.perf_counter() - start
        path = str(workdir / f"tokenizer-{vocab_size}" / "tokenizer.json")
        write_tokenizer(tokenizer, path)
        tokenizers[vocab_size] = path
        training.append({"vocab_size": vocab_size, "vocab_learned": tokenizer.get_vocab_size(),
                         "sample_mb": round(sample_bytes / 1e6, 2), "seconds": round(seconds, 2),
                         "mb_per_s": round(sample_bytes / 1e6 / seconds, 3)})
        entry = {"vocab_size": vocab_size}
        for part, docs_part in (("all", test), ("web", [d for d in test if d.part == "web"]),
                                ("docs", [d for d in test if d.part == "docs"])):
            texts = [d.text for d in docs_part]
            tokens = sum(len(e.ids) for e in tokenizer.encode_batch_fast(texts, add_special_tokens=False))
            entry[f"bytes_per_token_{part}"] = round(sum(utf8_size(t) for t in texts) / max(tokens, 1), 3)
        compression.append(entry)
        console.print(f"trained {vocab_size}: {seconds:.1f} s; held-out bytes/token {entry['bytes_per_token_all']}")

    encode_vocab = 32768 if 32768 in tokenizers else next(iter(tokenizers))
    encode_docs = _take(held_in, args.encode_mb)
    texts = [d.text for d in encode_docs]
    encode_bytes = sum(utf8_size(t) for t in texts)
    tokenizer = load_tokenizer(Path(tokenizers[encode_vocab]).read_bytes())
    timings: dict[str, list[float]] = {"encode_batch": [], "encode_batch_fast": [], "stage": []}
    cpu: dict[str, list[float]] = {name: [] for name in timings}
    counted: dict[str, int] = {}
    manifest = None

    def bare(method: str) -> None:
        gc.collect()
        gc.disable()
        start, start_cpu = time.perf_counter(), time.process_time()
        encodings = getattr(tokenizer, method)(texts, add_special_tokens=False)
        timings[method].append(time.perf_counter() - start)
        cpu[method].append(time.process_time() - start_cpu)
        gc.enable()
        counted[method] = sum(len(e.ids) for e in encodings)

    names = list(timings)
    # The stage on an eighth of the documents too: a pipeline's start and finish cost the same
    # whatever it encodes, so the difference between the two runs is what encoding costs at scale.
    small_docs = encode_docs[: max(1, len(encode_docs) // 8)]
    small_seconds: list[float] = []
    small_tokens = 0
    for repeat in range(args.repeats):
        # Each repeat starts with another of the three, so none always runs after the same neighbour.
        for name in names[repeat % 3:] + names[:repeat % 3]:
            if name == "stage":
                gc.collect()
                start_cpu = time.process_time()
                seconds, manifest = run_stage(tokenizers[encode_vocab], encode_docs, workdir, str(repeat))
                timings[name].append(seconds)
                cpu[name].append(time.process_time() - start_cpu)
                seconds, small_manifest = run_stage(tokenizers[encode_vocab], small_docs, workdir / "small",
                                                    str(repeat))
                small_seconds.append(seconds)
                small_tokens = small_manifest["tokens"] - small_manifest["documents"]
            else:
                bare(name)
        console.print(f"repeat {repeat}: " + ", ".join(f"{k} {v[-1]:.1f} s ({cpu[k][-1]:.1f} CPU s)"
                                                      for k, v in timings.items()))
    text_tokens = counted["encode_batch"]
    assert counted["encode_batch_fast"] == text_tokens
    best = {name: min(values) for name, values in timings.items()}
    rate = {name: text_tokens / seconds for name, seconds in best.items()}
    # Each repeat times all three back to back, so its ratios share the machine's load at the time.
    paired = {name: statistics.median(b / s for b, s in zip(timings[name], timings["stage"]))
              for name in ("encode_batch", "encode_batch_fast")}
    # At scale: the stage's seconds for the documents beyond the eighth, against bare encoding's
    # share of its time for the same tokens (bare calls have no start-up cost to leave out).
    share = 1 - small_tokens / text_tokens
    marginal = {name: statistics.median(share * b / (s - t) for b, s, t in zip(timings[name], timings["stage"],
                                                                             small_seconds))
                for name in ("encode_batch", "encode_batch_fast")}
    fixed_seconds = statistics.median(t - (s - t) * (1 - share) / share for s, t in zip(timings["stage"], small_seconds))
    # CPU seconds of the whole process (every thread): the work each path does, whatever else runs on the machine.
    per_cpu = {name: statistics.median(b / s for b, s in zip(cpu[name], cpu["stage"]))
               for name in ("encode_batch", "encode_batch_fast")}

    table = Table(title=f"tokenizer: {sample_bytes / 1e6:.1f} MB training sample, "
                        f"{encode_bytes / 1e6:.1f} MB encoded ({len(encode_docs)} documents), "
                        f"{len(test)} held-out documents, {os.cpu_count()} CPUs")
    for column in ("vocab", "train s", "train MB/s", "bytes/token held-out", "web", "docs"):
        table.add_column(column, justify="right")
    for t, c in zip(training, compression):
        table.add_row(f"{t['vocab_size']:,} ({t['vocab_learned']:,})", f"{t['seconds']:.1f}", f"{t['mb_per_s']:.2f}",
                      f"{c['bytes_per_token_all']:.2f}", f"{c['bytes_per_token_web']:.2f}",
                      f"{c['bytes_per_token_docs']:.2f}")
    Console(width=150).print(table)
    encode = Table(title=f"encoding with the {encode_vocab:,} tokenizer: {text_tokens:,} text tokens")
    for column in ("path", "best s", "tokens/s", "MB/s", "CPU s", "stage / this: best", "median pair",
                   "per CPU s", "at scale"):
        encode.add_column(column, justify="right")
    for name in ("encode_batch", "encode_batch_fast", "stage"):
        encode.add_row(name, f"{best[name]:.2f}", f"{rate[name]:,.0f}", f"{encode_bytes / 1e6 / best[name]:.2f}",
                       f"{statistics.median(cpu[name]):.1f}", f"{rate['stage'] / rate[name]:.0%}",
                       f"{paired[name]:.0%}" if name in paired else "", f"{per_cpu[name]:.0%}" if name in per_cpu else "",
                       f"{marginal[name]:.0%}" if name in marginal else "")
    Console(width=150).print(encode)
    Console(width=150).print(
        f"at scale: the stage's time beyond a run on {len(small_docs)} documents ({small_tokens:,} tokens; "
        f"{', '.join(f'{t:.1f}' for t in small_seconds)} s), median of the repeats; the stage's fixed cost "
        f"(pipeline start and finish) about {fixed_seconds:.1f} s per run")
    print(json.dumps({
        "benchmark": "tokenizer",
        "cpus": os.cpu_count(),
        "corpus": {"web_docs": len(web), "doc_docs": len(docs), "held_out_docs": len(test)},
        "training": training,
        "compression": compression,
        "encoding": {
            "vocab_size": encode_vocab, "documents": len(encode_docs), "mb": round(encode_bytes / 1e6, 2),
            "text_tokens": text_tokens, "repeats": args.repeats,
            "seconds": {k: [round(v, 3) for v in vs] for k, vs in timings.items()},
            "cpu_seconds": {k: [round(v, 3) for v in vs] for k, vs in cpu.items()},
            "tokens_per_s": {k: round(v) for k, v in rate.items()},
            "stage_vs_encode_batch": round(rate["stage"] / rate["encode_batch"], 3),
            "stage_vs_encode_batch_fast": round(rate["stage"] / rate["encode_batch_fast"], 3),
            "stage_vs_encode_batch_median_pair": round(paired["encode_batch"], 3),
            "stage_vs_encode_batch_fast_median_pair": round(paired["encode_batch_fast"], 3),
            "stage_vs_encode_batch_per_cpu_second": round(per_cpu["encode_batch"], 3),
            "stage_vs_encode_batch_at_scale": round(marginal["encode_batch"], 3),
            "stage_vs_encode_batch_fast_at_scale": round(marginal["encode_batch_fast"], 3),
            "small_run": {"documents": len(small_docs), "text_tokens": small_tokens,
                          "seconds": [round(v, 3) for v in small_seconds]},
            "stage_fixed_seconds": round(fixed_seconds, 2),
            "stage_vs_encode_batch_fast_per_cpu_second": round(per_cpu["encode_batch_fast"], 3),
        },
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Trainer throughput: the streaming loader alone, then whole training steps under torchrun.

    python benchmarks/bench_train.py                        # CPU: loader, tiny and 125m on 1 and 2 ranks
    python benchmarks/bench_train.py --presets tiny --ranks 2

Works on a synthetic token directory (random ids, vocabulary 32768, documents of 50 to 1,500
tokens) in a temporary directory. The loader figure is packed tokens per second out of a
`TokenLoader` (seq_len 2048, batch 8) per DataLoader worker, 0 workers meaning reading in the
main process. The trainer figures come from the run's own metrics.jsonl (one line per step,
the first steps left out as warm-up): tokens/s over all ranks and the median step time; each
rank gets one thread (OMP_NUM_THREADS=1). The machine's load average is printed with the
results, since a shared machine makes every figure lower. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import tomli_w  # noqa: E402

from model.config import num_params, preset  # noqa: E402

VOCAB = 32768
# Per preset on a CPU: (batch per rank, seq_len, timed steps, warm-up steps left out).
SHAPES = {"tiny": (4, 256, 20, 3), "125m": (1, 512, 3, 1)}


def write_corpus(directory: Path, shards: int, documents: int, seed: int = 0) -> Path:
    """Random-token shards with manifest.json and a stand-in tokenizer.json."""
    from tokenizers import Tokenizer, models

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    entries = []
    for shard in range(shards):
        lengths = rng.integers(50, 1500, documents)
        docs = [np.append(rng.integers(2, VOCAB, n, dtype=np.uint16), np.uint16(0)) for n in lengths]
        offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int32)
        tokens = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(docs)))
        table = pa.table({"id": [f"{shard}-{i}" for i in range(documents)], "tokens": tokens,
                          "num_tokens": pa.array([len(d) for d in docs], pa.int64())})
        name = f"part-{shard:05d}-of-{shards:05d}.parquet"
        pq.write_table(table, directory / name, row_group_size=256)
        entries.append({"path": name, "documents": documents, "tokens": int(offsets[-1])})
    vocab = {"<|endoftext|>": 0, "<|pad|>": 1, **{f"t{i}": i for i in range(2, VOCAB)}}
    Tokenizer(models.WordLevel(vocab, unk_token="<|pad|>")).save(str(directory / "tokenizer.json"))
    manifest = {"version": 1, "dtype": "uint16", "shards": entries,
                "tokenizer": {"path": "tokenizer.json", "sha256": "", "vocab_size": VOCAB, "end_of_text_id": 0,
                              "pad_id": 1},
                "documents": shards * documents, "tokens": sum(e["tokens"] for e in entries)}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def bench_loader(corpus: Path, workers: int, batches: int) -> dict:
    from train.loader import PackedSequences, TokenLoader
    from train.shards import read_manifest, row_group_sizes, split_units, whole_shards

    manifest = read_manifest(str(corpus))
    units = split_units(whole_shards(manifest), max(1, workers), lambda s: row_group_sizes(manifest.shards[s]))
    seq_len, batch = 2048, 8
    loader = TokenLoader(PackedSequences(manifest, units, seq_len=seq_len, vocab_size=VOCAB, workers=workers,
                                         shuffle_buffer=1024), batch)
    iterator = iter(loader)
    next(iterator)  # start-up: worker processes and the first buffers
    start = time.perf_counter()
    for _ in itertools.islice(iterator, batches):
        pass
    seconds = time.perf_counter() - start
    tokens_per_s = batches * batch * (seq_len + 1) / seconds
    return {"workers": workers, "batches": batches, "tokens_per_s": round(tokens_per_s),
            "tokens_per_s_per_worker": round(tokens_per_s / max(1, workers))}


def bench_trainer(corpus: Path, work: Path, name: str, ranks: int) -> dict:
    batch, seq_len, steps, warmup = SHAPES[name]
    run_dir = work / f"run-{name}-{ranks}"
    job = {
        "job": {"name": f"bench-{name}-{ranks}", "output_dir": str(run_dir)},
        "data": {"path": str(corpus), "seq_len": seq_len, "batch_size": batch, "workers": 1},
        "model": {"preset": name},
        "train": {"steps": steps + warmup},
        "optimizer": {"lr": 1e-3, "warmup_steps": 1},
        "parallel": {"device": "cpu", "processes": ranks},
        "checkpoint": {"every": 0, "keep": 1},
        "metrics": {"every": 1, "progress": False},
    }
    job_path = work / f"job-{name}-{ranks}.toml"
    job_path.write_text(tomli_w.dumps(job))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               "-m", "train", str(job_path)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                            text=True)
    wall = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{name} on {ranks} ranks failed:\n{result.stderr[-3000:]}")
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in lines if r["kind"] == "train" and r["step"] > warmup]
    step_time = statistics.median(r["step_time_s"] for r in timed)
    tokens_per_step = batch * seq_len * ranks
    return {"preset": name, "params": num_params(preset(name, vocab_size=VOCAB)), "ranks": ranks,
            "batch_per_rank": batch, "seq_len": seq_len, "timed_steps": len(timed),
            "step_time_s": round(step_time, 3), "tokens_per_s": round(tokens_per_step / step_time, 1),
            "tokens_per_s_per_rank": round(tokens_per_step / step_time / ranks, 1),
            "peak_rss_gib_rank0": round(max(r["memory_peak_gib"] for r in timed), 2), "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,125m", help="trainer presets (default tiny,125m)")
    parser.add_argument("--ranks", default="1,2", help="process counts to try (default 1,2)")
    parser.add_argument("--loader-workers", default="0,1,2", help="DataLoader worker counts (default 0,1,2)")
    parser.add_argument("--loader-batches", type=int, default=300,
                        help="timed loader batches (default 300, several shuffle buffers' worth)")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        corpus = write_corpus(work / "tokens", shards=4, documents=1000)
        loader = [bench_loader(corpus, int(w), args.loader_batches) for w in args.loader_workers.split(",") if w]
        trainer = [bench_trainer(corpus, work, name, int(ranks))
                   for name in filter(None, args.presets.split(",")) for ranks in args.ranks.split(",") if ranks]
    load_after = os.getloadavg()

    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 110))  # wide enough for the trainer table when piped
    cores = os.cpu_count()
    table = Table(title="loader only: packed tokens/s (seq_len 2048, batch 8, 4 shards)")
    for column in ("workers", "batches", "tokens/s", "tokens/s per worker"):
        table.add_column(column, justify="right")
    for r in loader:
        table.add_row(str(r["workers"]), str(r["batches"]), f"{r['tokens_per_s']:,}",
                      f"{r['tokens_per_s_per_worker']:,}")
    console.print(table)
    table = Table(title=f"trainer on CPU ({cores} cores, 1 thread per rank, fp32, FSDP2 over gloo)")
    for column in ("preset", "params", "ranks", "batch x seq", "step s", "tok/s", "tok/s/rank", "RSS GiB",
                   "wall s"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in trainer:
        table.add_row(r["preset"], f"{r['params'] / 1e6:.1f}M", str(r["ranks"]),
                      f"{r['batch_per_rank']} x {r['seq_len']}", f"{r['step_time_s']:.3f}",
                      f"{r['tokens_per_s']:,.0f}", f"{r['tokens_per_s_per_rank']:,.0f}",
                      f"{r['peak_rss_gib_rank0']:.2f}", f"{r['wall_s']:.0f}")
    console.print(table)
    console.print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} on {cores} cores")
    print(json.dumps({"benchmark": "train", "cores": cores, "load_average_before": round(load_before[0], 2),
                      "load_average_after": round(load_after[0], 2), "loader": loader, "trainer": trainer}))


if __name__ == "__main__":
    main()

"""MinHash signature throughput: pipeline.minhash against datasketch, on the same shingles.

    python benchmarks/bench_signatures.py [--docs 3000] [--num-perm 112] [--scheme affine64]

Builds real-looking documents from the system's license texts (/usr/share/common-licenses):
runs of consecutive words from random places, joined into paragraphs, with lognormal
lengths (median about 400 words, like extracted web pages). Every document is normalised
and shingled once; then, on exactly those shingles, it times per document:
  - ours:             MinHasher.signature (hashing + permutations)
  - datasketch:       MinHash(..., permutations=shared) + update_batch, its fastest use
  - datasketch fresh: MinHash(...) + update_batch, which also draws the permutations
and checks that all three give identical signatures. For scale, it also times ours from
raw text, and each stage of that alone. The garbage collector is paused while timing, as
timeit does. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.minhash import (  # noqa: E402
    DEFAULT_NGRAM, DEFAULT_NUM_PERM, SCHEMES, MinHasher, hash_shingle, normalize_for_dedup, shingle_hashes,
    word_shingles,
)

# Searched in this order until there are enough words; the licenses alone usually suffice.
TEXT_DIRS = (Path("/usr/share/common-licenses"), Path("/usr/share/doc"))
MIN_WORDS = 20_000


def source_words() -> list[str]:
    """Words of the system's license (and if need be documentation) texts, in reading order."""
    words: list[str] = []
    for root in TEXT_DIRS:
        if len(words) >= MIN_WORDS:
            break
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            try:
                words += path.read_text(encoding="utf-8").split()
            except (UnicodeDecodeError, OSError):
                continue  # compressed or binary files
    if len(words) < MIN_WORDS:
        raise SystemExit(f"found only {len(words):,} words under {', '.join(map(str, TEXT_DIRS))}; need {MIN_WORDS:,}")
    return words


def make_documents(words: list[str], count: int, seed: int) -> list[str]:
    """Documents of runs of consecutive source words, in paragraphs, lognormal in length."""
    rng = random.Random(seed)
    docs = []
    for _ in range(count):
        length = max(20, min(20_000, int(rng.lognormvariate(6.0, 0.8))))  # median e**6, about 400 words
        paragraphs, have = [], 0
        while have < length:
            run = rng.randint(20, 120)
            start = rng.randrange(len(words) - run)
            paragraphs.append(" ".join(words[start:start + run]))
            have += run
        docs.append("\n\n".join(paragraphs))
    return docs


def best_rate(work: Callable[[], object], items: int, repeats: int) -> float:
    """Items per second of the fastest of `repeats` runs, with the garbage collector paused as timeit does."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            work()
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return items / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--num-perm", type=int, default=DEFAULT_NUM_PERM)
    parser.add_argument("--ngram", type=int, default=DEFAULT_NGRAM)
    parser.add_argument("--scheme", choices=SCHEMES, default="affine64")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from datasketch import MinHash
    from rich.console import Console
    from rich.table import Table

    texts = make_documents(source_words(), args.docs, args.seed)
    normalize_for_dedup("")  # builds the folding table once, outside the timings
    shingles = [word_shingles(normalize_for_dedup(t), args.ngram) for t in texts]
    total_shingles = sum(map(len, shingles))

    hasher = MinHasher(num_perm=args.num_perm, seed=args.seed, scheme=args.scheme)
    shared = np.array(hasher.permutations)

    def ours() -> list:
        return [hasher.signature(s) for s in shingles]

    def ours_from_text() -> list:
        return [hasher.signature(word_shingles(normalize_for_dedup(t), args.ngram)) for t in texts]

    def datasketch_shared() -> list:
        out = []
        for s in shingles:
            m = MinHash(args.num_perm, args.seed, hashfunc=hash_shingle, scheme=args.scheme, permutations=shared)
            m.update_batch(s)
            out.append(m.hashvalues)
        return out

    def datasketch_fresh() -> list:
        out = []
        for s in shingles:
            m = MinHash(args.num_perm, args.seed, hashfunc=hash_shingle, scheme=args.scheme)
            m.update_batch(s)
            out.append(m.hashvalues)
        return out

    reference = ours()
    for name, work in (("datasketch", datasketch_shared), ("datasketch fresh", datasketch_fresh)):
        if not all(np.array_equal(x, y) for x, y in zip(reference, work())):
            raise SystemExit(f"signatures differ from {name}'s")

    normalized = [normalize_for_dedup(t) for t in texts]
    hashes = [shingle_hashes(s) for s in shingles]
    rates = {
        "ours": best_rate(ours, len(texts), args.repeats),
        "datasketch": best_rate(datasketch_shared, len(texts), args.repeats),
        "datasketch_fresh": best_rate(datasketch_fresh, len(texts), args.repeats),
        "ours_from_text": best_rate(ours_from_text, len(texts), args.repeats),
    }
    stages = {
        "normalize_for_dedup": best_rate(lambda: [normalize_for_dedup(t) for t in texts], len(texts), args.repeats),
        "word_shingles": best_rate(lambda: [word_shingles(t, args.ngram) for t in normalized], len(texts), args.repeats),
        "shingle_hashes": best_rate(lambda: [shingle_hashes(s) for s in shingles], len(texts), args.repeats),
        "signature_from_hashes": best_rate(lambda: [hasher.signature_from_hashes(h) for h in hashes], len(texts),
                                           args.repeats),
    }
    ratio = rates["ours"] / rates["datasketch"]

    table = Table(title=f"MinHash signatures: {len(texts)} docs, {total_shingles / len(texts):.0f} shingles/doc, "
                        f"num_perm {args.num_perm}, {args.scheme}")
    table.add_column("from shingles to signature")
    table.add_column("docs/s", justify="right")
    table.add_column("us/doc", justify="right")
    table.add_column("vs datasketch", justify="right")
    for name, label in (("ours", "ours: MinHasher.signature"),
                        ("datasketch", "datasketch: MinHash(permutations=shared) + update_batch"),
                        ("datasketch_fresh", "datasketch: MinHash() + update_batch")):
        table.add_row(label, f"{rates[name]:,.0f}", f"{1e6 / rates[name]:,.1f}", f"{rates[name] / rates['datasketch']:.2f}x")
    table.add_section()
    table.add_row("ours from raw text", f"{rates['ours_from_text']:,.0f}", f"{1e6 / rates['ours_from_text']:,.1f}", "")
    for name, rate in stages.items():
        table.add_row(f"  of which {name}", f"{rate:,.0f}", f"{1e6 / rate:,.1f}", "")
    Console().print(table)
    print(json.dumps({
        "benchmark": "signatures", "docs": len(texts), "shingles_per_doc": round(total_shingles / len(texts), 1),
        "num_perm": args.num_perm, "scheme": args.scheme, "identical": True,
        "docs_per_s": {k: round(v, 1) for k, v in rates.items()},
        "stage_docs_per_s": {k: round(v, 1) for k, v in stages.items()},
        "ratio_vs_datasketch": round(ratio, 2),
    }))


if __name__ == "__main__":
    main()

"""The `winnow tokenizer train`, `winnow tokenize` and `winnow plan` commands.

They run on one machine, over curated Parquet shards at any Beam filesystem path, with the
same functions as the pipeline's TrainTokenizer and Tokenize: the same corpus and settings
give the same tokenizer.json and the same token shards.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence

# Beam, tokenizers and the model modules load inside the run functions: registering the
# commands must not slow down every other `winnow` command.

EXIT_BAD_INPUT = 2  # a missing file, no input, an empty corpus, a bad option: nothing was written
TOKENS_PER_PARAMETER = 20  # compute-optimal training tokens per parameter (Hoffmann et al. 2022)
READ_BATCH_ROWS = 1024
COMPRESSION = ("zstd", 3)  # token shards as the job's [output] defaults write them


class CommandError(Exception):
    """A problem the person running the command can fix, in one line."""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `tokenizer train`, `tokenize` and `plan`; each parser's `handler` default is its run function."""
    tokenizer = subparsers.add_parser(
        "tokenizer", help="train a byte-level BPE tokenizer on curated shards",
        description="Tokenizer commands. `winnow tokenizer train` trains on a bounded, seeded sample of the "
                    "documents, as the pipeline's tokenizer step does.")
    tokenizer_commands = tokenizer.add_subparsers(dest="tokenizer_command", required=True)
    train = tokenizer_commands.add_parser(
        "train", help="train a tokenizer.json on curated Parquet shards",
        description="Train a byte-level BPE tokenizer on curated Parquet shards (columns id and text). "
                    "Documents enter the training sample by a seeded hash of their id, lowest first, up to "
                    "--sample-bytes of text. When --out is named tokenizer.json, the files "
                    "AutoTokenizer.from_pretrained reads are written beside it.")
    train.add_argument("--input", required=True, action="append",
                       help="curated shards: a path or glob, e.g. 'out/sample/curated/*.parquet' (repeatable)")
    train.add_argument("--out", required=True, help="tokenizer file to write, e.g. out/sample/tokenizer/tokenizer.json")
    train.add_argument("--vocab-size", type=int, default=32768,
                       help="tokens in the vocabulary, special tokens and the 256 bytes included (default 32768)")
    train.add_argument("--sample-bytes", type=int, default=200_000_000,
                       help="UTF-8 bytes of text to train on, at most (default 200000000)")
    train.add_argument("--min-frequency", type=int, default=2, help="fewest occurrences of a merged pair (default 2)")
    train.add_argument("--seed", type=int, default=0, help="seed of the sample choice (default 0)")
    train.add_argument("--pretokenizer", choices=("llama3", "gpt2"), default="llama3",
                       help="regex rules that split text before BPE (default llama3)")
    train.add_argument("--max-document-chars", type=int, default=10_000_000,
                       help="longer documents are left out (default 10000000)")
    train.set_defaults(handler=run_train)

    tokenize = subparsers.add_parser(
        "tokenize", help="encode curated shards into token shards and manifest.json",
        description="Encode every document of curated Parquet shards with a tokenizer.json, each followed by "
                    "<|endoftext|>, into token shards (id, tokens, num_tokens) and manifest.json in --out.")
    tokenize.add_argument("--tokenizer", required=True, help="tokenizer.json trained by `winnow tokenizer train`")
    tokenize.add_argument("--input", required=True, action="append",
                          help="curated shards: a path or glob (repeatable)")
    tokenize.add_argument("--out", required=True, help="directory for the token shards, e.g. out/sample/tokens")
    tokenize.add_argument("--target-shard-bytes", type=int, default=128 * 1024 * 1024,
                          help="text behind each token shard, about (default 134217728, as curated shards)")
    tokenize.add_argument("--row-group-bytes", type=int, default=32 * 1024 * 1024,
                          help="token bytes per Parquet row group, about (default 33554432)")
    tokenize.add_argument("--max-document-chars", type=int, default=10_000_000,
                          help="longer documents get no tokens and are counted as dropped (default 10000000)")
    tokenize.add_argument("--overwrite", action="store_true", help="replace token shards already in --out")
    tokenize.set_defaults(handler=run_tokenize)

    plan = subparsers.add_parser(
        "plan", help="size a model for a run's tokens (about 20 tokens per parameter)",
        description="Read RUN_DIR/tokens/manifest.json and print the token count, the compute-optimal parameter "
                    "count at about 20 tokens per parameter (Chinchilla: a 7B model wants about 140B tokens) "
                    "and the model preset nearest to it.")
    plan.add_argument("run_dir", help="run directory (or its tokens/ directory)")
    plan.set_defaults(handler=run_plan)


def _fail(command: str, message: str) -> int:
    print(f"winnow {command}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    return Progress(TextColumn("{task.description:<16}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=True)


def match_shards(patterns: Sequence[str]) -> list[tuple[str, int]]:
    """(path, size) of every file the patterns match, sorted; a pattern that matches nothing is an error."""
    from pipeline.curate import match_files

    found: dict[str, int] = {}
    for pattern in patterns:
        try:
            _, files = match_files(pattern)
        except ValueError as error:
            raise CommandError(f"--input {error} (curated shards are RUN_DIR/curated/*.parquet)") from None
        for m in files:
            found[m.path] = m.size_in_bytes
    return sorted(found.items())


def iter_batches(path: str, columns: Sequence[str]) -> Iterator:
    """Record batches of `columns` from one Parquet file at any Beam filesystem path."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        try:
            shard = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as error:
            raise CommandError(f"{path}: not a readable Parquet file ({error})") from None
        missing = [c for c in columns if c not in shard.schema_arrow.names]
        if missing:
            raise CommandError(f"{path}: no column {missing[0]!r}; curated shards have columns id and text")
        yield from shard.iter_batches(batch_size=READ_BATCH_ROWS, columns=list(columns))


def _text_sizes(batch, config):
    """UTF-8 bytes of each text in a batch, 0 for documents over max_document_chars (as TrainTokenizer counts)."""
    import pyarrow.compute as pc

    text = batch.column("text")
    fits = pc.less_equal(pc.utf8_length(text), config.max_document_chars)
    return pc.if_else(pc.and_(fits, pc.is_valid(text)), pc.binary_length(text), 0).fill_null(0)


def measure_text(files: Sequence[tuple[str, int]], config, progress, label: str) -> int:
    """Total UTF-8 bytes of the documents that can be sampled and tokenized."""
    import pyarrow.compute as pc

    task = progress.add_task(label, total=sum(size for _, size in files))
    total = 0
    for path, size in files:
        for batch in iter_batches(path, ("text",)):
            total += pc.sum(_text_sizes(batch, config)).as_py() or 0
        progress.advance(task, size)
    return total


def run_train(args: argparse.Namespace) -> int:
    """Sample the corpus as TrainTokenizer does, train, and write the tokenizer file."""
    from pipeline.tokenizer import (
        EmptyCorpusError, SampleSelection, TokenizerConfig, rank_threshold, sample_candidate, tokenizer_digest,
        train_tokenizer, utf8_size,
    )

    try:
        config = TokenizerConfig(vocab_size=args.vocab_size, sample_bytes=args.sample_bytes,
                                 min_frequency=args.min_frequency, seed=args.seed, pretokenizer=args.pretokenizer,
                                 max_document_chars=args.max_document_chars)
        files = match_shards(args.input)
        with _progress() as progress:
            total = measure_text(files, config, progress, "measuring text")
            threshold = rank_threshold(total, config.sample_bytes)
            selection = SampleSelection(config.sample_bytes)
            task = progress.add_task("choosing sample", total=sum(size for _, size in files))
            for path, size in files:
                for batch in iter_batches(path, ("id", "text")):
                    for doc_id, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
                        candidate = sample_candidate(doc_id, text, config, threshold)
                        if candidate is not None:
                            selection.add(candidate)
                progress.advance(task, size)
            sample = selection.texts()
            sample_bytes = sum(utf8_size(t) for t in sample)
            task = progress.add_task("training BPE", total=None)
            start = time.perf_counter()
            tokenizer = train_tokenizer(sample, config)
            seconds = time.perf_counter() - start
            progress.update(task, total=1, completed=1)
        from pipeline.tokenize_stage import TOKENIZER_FILE, read_tokenizer_file, write_tokenizer

        write_tokenizer(tokenizer, args.out, hf_files=os.path.basename(args.out) == TOKENIZER_FILE)
        digest = tokenizer_digest(read_tokenizer_file(args.out))
    except (CommandError, EmptyCorpusError, ValueError) as error:
        return _fail("tokenizer train", str(error))
    print(f"trained {tokenizer.get_vocab_size():,} tokens on {len(sample):,} documents "
          f"({sample_bytes / 1e6:,.1f} MB of {total / 1e6:,.1f} MB) in {seconds:.1f} s "
          f"({sample_bytes / 1e6 / max(seconds, 1e-9):.2f} MB/s)")
    print(f"wrote {args.out} (sha256 {digest})")
    return 0


def _prepare_out(out: str, overwrite: bool) -> None:
    """Refuse to mix token shards of two runs: existing ones are removed only when asked to."""
    from apache_beam.io.filesystems import FileSystems

    from pipeline.token_manifest import MANIFEST_FILE

    existing = [m.path for pattern in (f"{out}/*.parquet", f"{out}/{MANIFEST_FILE}")
                for m in FileSystems.match([pattern])[0].metadata_list]
    if existing and not overwrite:
        raise CommandError(f"--out {out!r} already holds token shards; pass --overwrite to replace them")
    if existing:
        FileSystems.delete(existing)
    if "://" not in out:
        os.makedirs(out, exist_ok=True)


class ShardSpill:
    """Token rows parked on local disk by shard, so each shard is sorted and written once all its rows are known."""

    def __init__(self, directory: str, count: int):
        import pyarrow as pa

        self._directory = directory
        self._count = count
        self._schema = pa.schema([("id", pa.string()), ("tokens", pa.binary()), ("text_bytes", pa.int64())])
        self.shards: dict[int, object] = {}  # shard -> open Arrow stream writer

    def _path(self, shard: int) -> str:
        return os.path.join(self._directory, f"{shard}.arrows")

    def add(self, rows: list) -> None:
        import pyarrow as pa

        from pipeline.sinks import shard_of

        by_shard: dict[int, list] = {}
        for row in rows:
            by_shard.setdefault(shard_of(row[0], self._count), []).append(row)
        for shard, part in sorted(by_shard.items()):
            if shard not in self.shards:
                self.shards[shard] = pa.ipc.new_stream(self._path(shard), self._schema)
            columns = [pa.array(column, kind) for column, kind in zip(zip(*part), self._schema.types)]
            self.shards[shard].write_batch(pa.RecordBatch.from_arrays(columns, schema=self._schema))

    def read(self) -> Iterator[tuple[str, list]]:
        """(shard file name, rows) per shard, in shard order; closes the spill files first."""
        import pyarrow as pa

        from pipeline.sinks import shard_name

        for writer in self.shards.values():
            writer.close()
        for shard in sorted(self.shards):
            with pa.ipc.open_stream(self._path(shard)) as reader:
                table = reader.read_all()
            yield shard_name(shard, self._count), list(zip(*(column.to_pylist() for column in table.columns)))


def run_tokenize(args: argparse.Namespace) -> int:
    """Encode every document as Tokenize does: same shards, same rows, same manifest."""
    import numpy as np

    from pipeline.sinks import shard_count, shard_name
    from pipeline.tokenize_stage import (
        DocumentEncoder, read_tokenizer_file, shard_rows, tokenizer_info, write_manifest, write_token_shard,
    )
    from pipeline.tokenizer import TokenizerConfig, load_tokenizer

    out = args.out.rstrip("/")
    if "://" not in out:
        out = os.path.abspath(out)
    tokenizer_path = args.tokenizer if "://" in args.tokenizer else os.path.abspath(args.tokenizer)
    try:
        config = TokenizerConfig(max_document_chars=args.max_document_chars)
        if args.target_shard_bytes <= 0 or args.row_group_bytes <= 0:
            raise CommandError("--target-shard-bytes and --row-group-bytes must be positive")
        tokenizer = load_tokenizer(read_tokenizer_file(tokenizer_path), tokenizer_path)
        info = tokenizer_info(tokenizer_path)
        files = match_shards(args.input)
        _prepare_out(out, args.overwrite)
        dtype = np.dtype(info.dtype)
        with (DocumentEncoder(tokenizer, config, overlap=True) as encoder, _progress() as progress,
              tempfile.TemporaryDirectory(prefix="winnow-tokens-") as spill_dir):
            count = shard_count(measure_text(files, config, progress, "measuring text"), args.target_shard_bytes)
            spill = ShardSpill(spill_dir, count)
            task = progress.add_task("encoding", total=sum(size for _, size in files))
            for path, size in files:
                for batch in iter_batches(path, ("id", "text")):
                    for doc_id, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
                        spill.add(encoder.add(doc_id, text or ""))
                progress.advance(task, size)
            spill.add(encoder.finish())
            task = progress.add_task("writing shards", total=max(1, len(spill.shards)))
            shards = []
            # With no rows at all, one empty shard, so readers of the glob find a schema (as Tokenize does).
            for name, rows in spill.read() if spill.shards else [(shard_name(0, 1), [])]:
                ids, tokens = shard_rows(rows, dtype)
                entry = write_token_shard(f"{out}/{name}", ids, tokens, dtype, args.row_group_bytes, *COMPRESSION)
                shards.append({**entry, "path": name})
                progress.advance(task)
        manifest = write_manifest(out, info, shards, encoder.tally)
    except (CommandError, FileNotFoundError, ValueError) as error:
        return _fail("tokenize", str(error))
    dropped = sum(manifest["dropped"].values()) + sum(manifest["failed"].values())
    reasons = ", ".join(f"{reason} {count}" for reason, count in {**manifest["dropped"], **manifest["failed"]}.items())
    print(f"encoded {manifest['documents']:,} documents into {manifest['tokens']:,} tokens ({info.dtype}) "
          f"in {len(shards)} shards; {dropped:,} dropped ({reasons})")
    print(f"wrote {out}/manifest.json")
    return 0


def _human(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def _read_plan_manifest(run_dir: str) -> tuple[str, dict]:
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    from pipeline.token_manifest import MANIFEST_FILE, parse_manifest_bytes

    root = run_dir.rstrip("/")
    candidates = [f"{root}/tokens/{MANIFEST_FILE}", f"{root}/{MANIFEST_FILE}"]
    for path in candidates:
        if FileSystems.exists(path):
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                return path, parse_manifest_bytes(f.read(), path)
    raise CommandError(f"{candidates[0]}: not found; tokenize the run first (winnow tokenize --out {root}/tokens)")


def run_plan(args: argparse.Namespace) -> int:
    """Tokens, the compute-optimal parameter count, and the presets around it."""
    from rich.console import Console
    from rich.table import Table

    from model.config import PRESETS, num_params, preset
    from pipeline.token_manifest import ManifestError

    try:
        path, manifest = _read_plan_manifest(args.run_dir)
    except (CommandError, ManifestError) as error:
        return _fail("plan", str(error))
    tokens = manifest["tokens"]
    vocab_size = manifest["tokenizer"]["vocab_size"]
    optimal = tokens / TOKENS_PER_PARAMETER
    sizes = {name: num_params(preset(name, vocab_size=vocab_size)) for name in PRESETS}
    nearest = min(sizes, key=lambda name: abs(math.log(sizes[name] / optimal)) if optimal else sizes[name])
    console = Console()
    table = Table(title=f"model presets for {_human(tokens)} tokens (vocabulary {vocab_size:,})")
    for column in ("preset", "parameters", f"tokens wanted (x{TOKENS_PER_PARAMETER})", "tokens available / wanted"):
        table.add_column(column, justify="left" if column == "preset" else "right")
    for name, params in sorted(sizes.items(), key=lambda item: item[1]):
        wanted = params * TOKENS_PER_PARAMETER
        table.add_row(name, _human(params), _human(wanted), f"{tokens / wanted:.3g}",
                      style="bold green" if name == nearest else None)
    console.print(f"manifest: {path}")
    console.print(f"tokens:   {tokens:,} in {manifest['documents']:,} documents, {len(manifest['shards'])} shards "
                  f"({manifest['dtype']})")
    console.print(f"compute-optimal parameters at {TOKENS_PER_PARAMETER} tokens per parameter: {_human(optimal)} "
                  f"({optimal:,.0f})")
    console.print(table)
    console.print(f"nearest preset: {nearest} ({_human(sizes[nearest])} parameters, wants "
                  f"{_human(sizes[nearest] * TOKENS_PER_PARAMETER)} tokens)")
    return 0


__all__ = ["EXIT_BAD_INPUT", "TOKENS_PER_PARAMETER", "add_commands", "run_plan", "run_tokenize", "run_train"]

"""Tokenizer training and tokenization as Beam transforms, after dedup.

`TrainTokenizer` gathers only a bounded sample in one place: every document's text is
measured (one global sum), a seeded hash of the id admits documents at a rate that fits the
byte budget, a combiner keeps the lowest-ranked ones up to the budget, and one DoFn trains
on them and writes `tokenizer.json`. `Tokenize` encodes every document in batches on every
worker and writes token shards and `manifest.json`, sharded like the curated output: shard
hash(id) mod n, rows sorted by id, so the files do not depend on the runner.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsSingleton, TaggedOutput
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue
from tokenizers import Tokenizer

from pipeline.document import Outcome
from pipeline.sinks import MergeCounts, ShardedWrite, parquet_writer, shard_name, write_json, write_text
from pipeline.stages import NAMESPACE, TALLY, tally_key
from pipeline.token_manifest import MANIFEST_FILE, build_manifest
from pipeline.tokenizer import (
    END_OF_TEXT_ID, PAD_ID, SampleDocument, SampleSelection, TokenizeReason, TokenizerConfig, encode_documents,
    hf_tokenizer_files, load_tokenizer, rank_threshold, sample_candidate, token_dtype, token_table,
    tokenizer_digest, too_long, train_tokenizer, utf8_size,
)

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
TOKENIZE_STAGE = "tokenize"  # tally keys: tokenize.in, tokenize.kept, tokenize.dropped.<reason>, tokenize.tokens
IN_KEY = tally_key(TOKENIZE_STAGE, "in")
KEPT_KEY = tally_key(TOKENIZE_STAGE, Outcome.KEPT)
TOO_LONG_KEY = tally_key(TOKENIZE_STAGE, Outcome.DROPPED, TokenizeReason.TOO_LONG)
TOKENS_KEY = tally_key(TOKENIZE_STAGE, "tokens")
# One encode_batch call: enough documents to keep every core busy, few enough characters to bound
# a worker's memory when documents are long.
ENCODE_BATCH_DOCUMENTS = 256
ENCODE_BATCH_CHARS = 8_000_000
SAMPLE_DOCUMENTS = "tokenizer.sample_documents"  # Beam counters of the training sample
SAMPLE_BYTES = "tokenizer.sample_bytes"

# A document's tokens on their way to a shard: id, token ids as bytes in the shard dtype, UTF-8
# bytes of its text (what shard counts are sized by). Plain tuples keep Beam's coder fast.
TokenRow = tuple[str, bytes, int]


def read_tokenizer_file(path: str) -> bytes:
    """A tokenizer.json's bytes from any Beam filesystem path; FileNotFoundError names the path when it is missing."""
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"{path}: tokenizer file not found; train one with `winnow tokenizer train` "
                                f"(or the pipeline's tokenizer step) and pass its path")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def write_tokenizer(tokenizer: Tokenizer, path: str, *, hf_files: bool = True) -> str:
    """Write tokenizer.json at `path`; with hf_files, also the files `AutoTokenizer.from_pretrained` reads beside it."""
    write_text(path, tokenizer.to_str(pretty=True), "application/json")
    if hf_files:
        directory = path.rsplit("/", 1)[0] if "/" in path else "."
        for name, content in hf_tokenizer_files(tokenizer).items():
            write_json(f"{directory}/{name}", content)
    return path


@dataclass(frozen=True)
class TokenizerInfo:
    """What the shard writer and the manifest need to know of the tokenizer file."""

    path: str
    sha256: str
    vocab_size: int
    dtype: str


def tokenizer_info(path: str) -> TokenizerInfo:
    data = read_tokenizer_file(path)
    tokenizer = load_tokenizer(data, path)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    return TokenizerInfo(path=path, sha256=tokenizer_digest(data), vocab_size=vocab_size,
                         dtype=token_dtype(vocab_size).name)


# Training.


class _KeepLowestRanks(beam.CombineFn):
    """The documents of lowest sample rank up to the byte budget: bounded at every merge."""

    def __init__(self, sample_bytes: int):
        self._sample_bytes = sample_bytes

    def create_accumulator(self) -> SampleSelection:
        return SampleSelection(self._sample_bytes)

    def add_input(self, acc: SampleSelection, doc: SampleDocument) -> SampleSelection:
        acc.add(doc)
        return acc

    def merge_accumulators(self, accs: Iterable[SampleSelection]) -> SampleSelection:
        accs = iter(accs)
        merged = next(accs)
        for acc in accs:
            merged.merge(acc)
        return merged

    def extract_output(self, acc: SampleSelection) -> SampleSelection:
        return acc


class TrainTokenizer(beam.PTransform):
    """Documents (with .id and .text) in; the path of the trained `<directory>/tokenizer.json` out, once."""

    def __init__(self, config: TokenizerConfig, directory: str):
        super().__init__()
        self._config = config
        self._path = f"{directory.rstrip('/')}/{TOKENIZER_FILE}"

    def expand(self, docs):
        config = self._config
        threshold = (
            docs
            | "MeasureText" >> beam.Map(lambda doc: 0 if too_long(doc.text, config) else utf8_size(doc.text))
            | "TotalBytes" >> beam.CombineGlobally(sum)
            | "SampleRate" >> beam.Map(rank_threshold, config.sample_bytes)
        )
        return (
            docs
            | "AdmitByHash" >> beam.FlatMap(_admit, config, threshold=AsSingleton(threshold))
            | "KeepLowestRanks" >> beam.CombineGlobally(_KeepLowestRanks(config.sample_bytes))
            | "TrainBpe" >> beam.FlatMap(_train_and_write, config, self._path,
                                         documents=AsSingleton(docs | "CountDocuments" >> beam.combiners.Count.Globally()))
        )


def _train_and_write(sample: SampleSelection, config: TokenizerConfig, path: str, documents: int) -> Iterator[str]:
    texts = sample.texts()
    if documents == 0:
        # A run that keeps no documents has nothing to tokenize: it writes no tokenizer and no
        # token shards, and stats.json has no tokens section. Documents with no usable text
        # (all empty or too long) still fail below, as the tokenizer could not encode them.
        logger.warning("no documents were kept: no tokenizer trained, no token shards written")
        return
    size = sum(utf8_size(t) for t in texts)
    Metrics.counter(NAMESPACE, SAMPLE_DOCUMENTS).inc(len(texts))
    Metrics.counter(NAMESPACE, SAMPLE_BYTES).inc(size)
    start = time.perf_counter()
    tokenizer = train_tokenizer(texts, config)
    logger.info("trained a %d-token BPE tokenizer on %d documents (%d bytes) in %.1f s",
                tokenizer.get_vocab_size(), len(texts), size, time.perf_counter() - start)
    yield write_tokenizer(tokenizer, path)


def _admit(doc, config: TokenizerConfig, threshold: int) -> Iterator[SampleDocument]:
    candidate = sample_candidate(doc.id, doc.text, config, threshold)
    if candidate is not None:
        yield candidate


# Encoding.


class DocumentEncoder:
    """Encodes (id, text) pairs in batches with one tokenizer; tallies what it does.

    Shared by the Beam DoFn and the local `winnow tokenize` command. With `overlap`, a full
    batch is encoded on a background thread (the tokenizer releases the GIL and spreads a batch
    over every core) while the caller goes on reading and writing, and `add` returns the rows of
    the batch before; `finish` waits for the last. The rows are the same either way.
    """

    def __init__(self, tokenizer: Tokenizer, config: TokenizerConfig, batch_size: int = ENCODE_BATCH_DOCUMENTS,
                 batch_chars: int = ENCODE_BATCH_CHARS, overlap: bool = False):
        self.tokenizer = tokenizer
        self._config = config
        self._batch_size = batch_size
        self._batch_chars = batch_chars
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._chars = 0
        self.tally: Counter = Counter()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="winnow-encode") if overlap else None
        self._running: Future | None = None

    def add(self, doc_id: str, text: str) -> list[TokenRow]:
        """Queue one document; returns rows when a batch is full (with overlap: the batch before's)."""
        self.tally[IN_KEY] += 1
        if too_long(text, self._config):
            self.tally[TOO_LONG_KEY] += 1
            return []
        self._ids.append(doc_id)
        self._texts.append(text)
        self._chars += len(text)
        full = len(self._ids) >= self._batch_size or self._chars >= self._batch_chars
        return self.flush() if full else []

    def flush(self) -> list[TokenRow]:
        """Encode the queued documents; returns their rows (with overlap: the batch before's)."""
        ids, texts = self._ids, self._texts
        self._ids, self._texts, self._chars = [], [], 0
        if self._executor is None:
            return self._collect(self._encode(ids, texts)) if ids else []
        previous, self._running = self._running, self._executor.submit(self._encode, ids, texts) if ids else None
        return self._collect(previous.result()) if previous is not None else []

    def finish(self) -> list[TokenRow]:
        """Encode what is queued and return every row not yet returned; the encoder can go on after."""
        rows = self.flush()
        if self._running is not None:
            running, self._running = self._running, None
            rows += self._collect(running.result())
        return rows

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> DocumentEncoder:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def _collect(self, result: tuple[list[TokenRow], Counter]) -> list[TokenRow]:
        rows, tally = result
        self.tally.update(tally)
        return rows

    def _encode(self, ids: list[str], texts: list[str]) -> tuple[list[TokenRow], Counter]:
        """A batch's rows and counts (it may run on the background thread: it touches no state)."""
        tally: Counter = Counter()
        try:
            encoded = encode_documents(self.tokenizer, texts)
        except Exception:  # one text the tokenizer refuses (a lone surrogate) fails its batch: go one by one
            rows = []
            for doc_id, text in zip(ids, texts):
                try:
                    rows += self._rows([doc_id], encode_documents(self.tokenizer, [text]), [text], tally)
                except Exception as error:  # a record boundary: count it and go on
                    tally[tally_key(TOKENIZE_STAGE, Outcome.FAILED, type(error).__name__)] += 1
                    logger.warning("document %s: not tokenized (%s: %s)", doc_id, type(error).__name__, error)
            return rows, tally
        return self._rows(ids, encoded, texts, tally), tally

    @staticmethod
    def _rows(ids: list[str], encoded: list[np.ndarray], texts: list[str], tally: Counter) -> list[TokenRow]:
        tally[KEPT_KEY] += len(ids)
        tally[TOKENS_KEY] += sum(len(t) for t in encoded)
        return [(doc_id, tokens.tobytes(), utf8_size(text)) for doc_id, tokens, text in zip(ids, encoded, texts)]


def _in_global_window(value) -> WindowedValue:
    return WindowedValue(value, MIN_TIMESTAMP, [GlobalWindow()])


class _EncodeFn(beam.DoFn):
    """Buffers documents and encodes them a batch at a time; the tokenizer loads once per path."""

    def __init__(self, config: TokenizerConfig):
        self._config = config

    def setup(self):
        self._path: str | None = None
        self._tokenizer: Tokenizer | None = None

    def start_bundle(self):
        self._close_encoder()  # one a failed bundle left behind

    def teardown(self):
        self._close_encoder()

    def _close_encoder(self):
        if getattr(self, "_encoder", None) is not None:
            self._encoder.close()
        self._encoder: DocumentEncoder | None = None

    def process(self, doc, tokenizer_path: str) -> Iterator[TokenRow]:
        if self._encoder is None:
            if tokenizer_path != self._path:
                self._tokenizer = load_tokenizer(read_tokenizer_file(tokenizer_path), tokenizer_path)
                self._path = tokenizer_path
            self._encoder = DocumentEncoder(self._tokenizer, self._config, overlap=True)
        yield from self._encoder.add(doc.id, doc.text)

    def finish_bundle(self):
        # Side inputs are not available here, which is why process() keeps the encoder.
        if self._encoder is None:
            return
        for row in self._encoder.finish():
            yield _in_global_window(row)
        for name, value in self._encoder.tally.items():
            Metrics.counter(NAMESPACE, name).inc(value)
        yield TaggedOutput(TALLY, _in_global_window(dict(self._encoder.tally)))
        self._close_encoder()


def shard_rows(rows: Iterable[TokenRow], dtype: np.dtype) -> tuple[list[str], list[np.ndarray]]:
    """A shard's rows sorted by id, as ids and token arrays."""
    ordered = sorted(rows, key=lambda row: row[0])
    return [row[0] for row in ordered], [np.frombuffer(row[1], dtype=dtype) for row in ordered]


def write_token_shard(path: str, ids: Sequence[str], tokens: Sequence[np.ndarray], dtype: np.dtype,
                      row_group_bytes: int, compression: str, compression_level: int) -> dict:
    """One token shard, rows in the order given, row groups of about row_group_bytes of token ids.

    Returns the shard's manifest entry (path as given, documents, tokens).
    """
    table = token_table(ids, tokens, dtype)
    itemsize = np.dtype(dtype).itemsize
    with parquet_writer(path, table.schema, compression, compression_level) as writer:
        start, size = 0, 0
        for end, array in enumerate(tokens, start=1):
            size += len(array) * itemsize
            if size >= row_group_bytes:
                writer.write_table(table.slice(start, end - start), row_group_size=end - start)
                start, size = end, 0
        if start < len(ids) or not ids:
            writer.write_table(table.slice(start), row_group_size=max(1, len(ids) - start))
    return {"path": path, "documents": len(ids), "tokens": int(sum(len(t) for t in tokens))}


# Token rows as the shard writer spills them.
TOKEN_ROW_SCHEMA = pa.schema([("id", pa.string()), ("tokens", pa.binary()), ("text_bytes", pa.int64())])


def _token_row(row: TokenRow) -> dict:
    return {"id": row[0], "tokens": row[1], "text_bytes": row[2]}


def _text_bytes(row: dict) -> int:
    return row["text_bytes"]


@dataclass
class TokenizeOutputs:
    tally: beam.PCollection  # dicts of counts, for stats.json
    manifest: beam.PCollection  # the manifest, once it is written


@dataclass(frozen=True)
class _TokenShards:
    """Where and how token shards are written; the steps that write them (small to pickle)."""

    directory: str
    target_shard_bytes: int
    row_group_bytes: int
    compression: str
    compression_level: int

    def write(self, shard: int, count: int, table: pa.Table, info: TokenizerInfo | None) -> dict:
        """One token shard from the shard writer's table (sorted by id) of token rows."""
        if info is None:  # no tokenizer was trained: nothing was kept
            return {}
        dtype = np.dtype(info.dtype)
        tokens = [np.frombuffer(value, dtype=dtype) for value in table["tokens"].to_pylist()]
        name = shard_name(shard, count)
        entry = write_token_shard(f"{self.directory}/{name}", table["id"].to_pylist(), tokens, dtype,
                                  self.row_group_bytes, self.compression, self.compression_level)
        return {**entry, "path": name}

    def write_manifest(self, shards: list[dict], tally: dict, info: TokenizerInfo | None) -> dict:
        if info is None:  # no tokenizer was trained: nothing was kept
            return {}
        return write_manifest(self.directory, info, shards, tally)


class Tokenize(beam.PTransform):
    """Documents (with .id and .text) in; token shards and manifest.json in `directory`.

    `tokenizer_path` is a one-element PCollection (TrainTokenizer's output, or a Create of a
    path). A shard holds the tokens of about `target_shard_bytes` of text, so token shards
    number about as many as curated shards.
    """

    def __init__(self, config: TokenizerConfig, directory: str, tokenizer_path: beam.PCollection, *,
                 target_shard_bytes: int, row_group_bytes: int, compression: str, compression_level: int,
                 temp_dir: str | None = None):
        super().__init__()
        self._config = config
        self._tokenizer_path = tokenizer_path
        # Spill files while shards are written; removed at the end.
        self._temp_dir = temp_dir or f"{directory.rstrip('/')}/_temporary"
        self._shards = _TokenShards(directory=directory.rstrip("/"), target_shard_bytes=target_shard_bytes,
                                    row_group_bytes=row_group_bytes, compression=compression,
                                    compression_level=compression_level)

    def expand(self, docs) -> TokenizeOutputs:
        shards = self._shards
        info = AsSingleton(self._tokenizer_path | "ReadTokenizerInfo" >> beam.Map(tokenizer_info), default_value=None)
        encoded = docs | "EncodeDocuments" >> beam.ParDo(
            _EncodeFn(self._config), AsSingleton(self._tokenizer_path)).with_outputs(TALLY, main="rows")
        entries = (
            encoded["rows"]
            | "ToTokenRows" >> beam.Map(_token_row)
            | "WriteTokenShards" >> ShardedWrite(self._temp_dir, TOKEN_ROW_SCHEMA, shards.target_shard_bytes,
                                                 _text_bytes, shards.write, info=info)
            | "DropEmpty" >> beam.Map(lambda written: [entry for entry in written if entry])
        )
        encode_tally = encoded[TALLY]
        write_tally = entries | "TallyTokenShards" >> beam.Map(
            lambda written: {"write.tokens_rows": sum(entry["documents"] for entry in written),
                             "write.tokens_shards": len(written)})
        merged = AsSingleton(encode_tally | "MergeEncodeTallies" >> beam.CombineGlobally(MergeCounts()))
        manifest = entries | "WriteManifest" >> beam.Map(shards.write_manifest, tally=merged, info=info)
        tally = (encode_tally, write_tally) | "MergeTokenizeTallies" >> beam.Flatten()
        return TokenizeOutputs(tally=tally, manifest=manifest)


def _by_reason(tally: dict, outcome: Outcome) -> dict[str, int]:
    prefix = tally_key(TOKENIZE_STAGE, outcome) + "."
    return {key[len(prefix):]: n for key, n in tally.items() if key.startswith(prefix)}


def write_manifest(directory: str, info: TokenizerInfo, shards: Sequence[dict], tally: dict) -> dict:
    """Write `<directory>/manifest.json` from the shards' entries (paths relative to it) and the encode tally."""
    manifest = build_manifest(
        tokenizer_path=info.path, tokenizer_sha256=info.sha256, vocab_size=info.vocab_size,
        end_of_text_id=END_OF_TEXT_ID, pad_id=PAD_ID, dtype=info.dtype, shards=shards,
        dropped={TokenizeReason.TOO_LONG: 0, **_by_reason(tally, Outcome.DROPPED)},
        failed=_by_reason(tally, Outcome.FAILED),
    )
    write_json(f"{directory.rstrip('/')}/{MANIFEST_FILE}", manifest)
    return manifest


__all__ = [
    "DocumentEncoder", "TOKENIZER_FILE", "Tokenize", "TokenizeOutputs", "TokenizerInfo", "TrainTokenizer",
    "read_tokenizer_file", "shard_rows", "tokenizer_info", "write_manifest", "write_token_shard", "write_tokenizer",
]

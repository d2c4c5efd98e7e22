"""Token shards on any pyarrow filesystem: the manifest, the split into read units, row-group reads.

A token directory holds `manifest.json` and Parquet shards with columns `id`, `tokens`
(list<uint16|uint32>, each document ending with the end-of-text id) and `num_tokens`. Paths may
be local or any URI `pyarrow.fs.FileSystem.from_uri` understands (`gs://`, `s3://`, ...).

The split rule (`split_units`): the corpus is cut into read units, and unit i of an epoch's
shuffled list goes to slot i mod S, where S = ranks x loader workers. Units are whole shards
when there are at least S of them; otherwise the shards' row groups; and if there are still
fewer than S row groups, row groups cut into contiguous row slices. Every document therefore
belongs to exactly one unit, so the slots neither overlap nor leave gaps.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
TOKEN_DTYPES = ("uint16", "uint32")
TOKENS_COLUMN = "tokens"


class TokenShardError(ValueError):
    """A token directory that cannot be read as training data, in one line naming the file."""


def resolve_uri(path: str) -> str:
    """URIs stay as they are; local paths become absolute so every process sees the same files."""
    return path if "://" in path else os.path.abspath(path)


def open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem for `uri` and the path within it."""
    try:
        return pafs.FileSystem.from_uri(resolve_uri(uri))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as error:
        raise TokenShardError(f"{uri}: no pyarrow filesystem for this path ({error})") from None


@dataclass(frozen=True)
class TokenizerInfo:
    path: str  # tokenizer.json, relative to the token directory or absolute
    sha256: str
    vocab_size: int
    end_of_text_id: int
    pad_id: int | None


@dataclass(frozen=True)
class ShardInfo:
    path: str  # full path or URI
    documents: int
    tokens: int


@dataclass(frozen=True)
class Unit:
    """Rows [start, stop) of shard number `shard`: what one slot reads at a time."""

    shard: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def _join(root: str, relative: str) -> str:
    if "://" in relative or relative.startswith("/"):
        return relative
    return f"{root.rstrip('/')}/{relative}"


def _require(table: dict, key: str, kind: type | tuple[type, ...], where: str):
    value = table.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TokenShardError(f"{where}: key {key!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


@dataclass(frozen=True)
class TokenManifest:
    """A parsed manifest.json; shard paths are resolved against the directory."""

    root: str
    tokenizer: TokenizerInfo
    dtype: str
    shards: tuple[ShardInfo, ...]

    @property
    def documents(self) -> int:
        return sum(s.documents for s in self.shards)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.shards)

    @property
    def tokenizer_path(self) -> str:
        return _join(self.root, self.tokenizer.path)

    @cached_property
    def fingerprint(self) -> str:
        """Identifies the shard list; a loader position only means something for the same list."""
        digest = hashlib.blake2b(digest_size=8)
        for shard in self.shards:
            digest.update(f"{shard.path.rsplit('/', 1)[-1]}:{shard.documents}:{shard.tokens};".encode())
        return digest.hexdigest()


def read_manifest(directory: str) -> TokenManifest:
    """Read and check `directory`/manifest.json."""
    root = resolve_uri(directory).rstrip("/")
    fs, path = open_filesystem(root)
    where = f"{root}/{MANIFEST_FILE}"
    try:
        with fs.open_input_stream(f"{path}/{MANIFEST_FILE}") as stream:
            raw = json.loads(stream.read().decode("utf-8"))
    except FileNotFoundError:
        raise TokenShardError(f"{where}: not found; point data.path at a token directory written by "
                              f"the tokenize stage") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TokenShardError(f"{where}: not readable JSON ({error})") from None
    if not isinstance(raw, dict):
        raise TokenShardError(f"{where}: expected a JSON object")
    if raw.get("version") != MANIFEST_VERSION:
        raise TokenShardError(f"{where}: version {raw.get('version')!r} is not supported; this reader "
                              f"reads version {MANIFEST_VERSION}")
    tok = _require(raw, "tokenizer", dict, where)
    pad = tok.get("pad_id")
    tokenizer = TokenizerInfo(
        path=_require(tok, "path", str, f"{where}: tokenizer"),
        sha256=str(tok.get("sha256", "")),
        vocab_size=_require(tok, "vocab_size", int, f"{where}: tokenizer"),
        end_of_text_id=_require(tok, "end_of_text_id", int, f"{where}: tokenizer"),
        pad_id=pad if isinstance(pad, int) and not isinstance(pad, bool) else None,
    )
    dtype = raw.get("dtype")
    if dtype not in TOKEN_DTYPES:
        raise TokenShardError(f"{where}: dtype {dtype!r} is not one of {list(TOKEN_DTYPES)}")
    entries = _require(raw, "shards", list, where)
    if not entries:
        raise TokenShardError(f"{where}: the manifest lists no shards; the corpus is empty")
    shards = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise TokenShardError(f"{where}: shards[{i}] is not an object")
        shards.append(ShardInfo(path=_join(root, _require(entry, "path", str, f"{where}: shards[{i}]")),
                                documents=_require(entry, "documents", int, f"{where}: shards[{i}]"),
                                tokens=_require(entry, "tokens", int, f"{where}: shards[{i}]")))
    return TokenManifest(root=root, tokenizer=tokenizer, dtype=dtype, shards=tuple(shards))


def row_group_sizes(shard: ShardInfo) -> list[int]:
    """Rows per row group, from the shard's footer only."""
    fs, path = open_filesystem(shard.path)
    try:
        with fs.open_input_file(path) as f:
            metadata = pq.ParquetFile(f).metadata
    except (OSError, pa.ArrowInvalid) as error:
        raise TokenShardError(f"{shard.path}: not a readable Parquet file ({error})") from None
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    if sum(sizes) != shard.documents:
        raise TokenShardError(f"{shard.path}: holds {sum(sizes)} rows but the manifest says {shard.documents}; "
                              f"the manifest and shards are from different runs")
    return sizes


def whole_shards(manifest: TokenManifest) -> list[Unit]:
    return [Unit(i, 0, s.documents) for i, s in enumerate(manifest.shards) if s.documents > 0]


def hold_out(manifest: TokenManifest) -> tuple[list[Unit], list[Unit]]:
    """(training, validation) ranges: the last shard is held out.

    A corpus of a single shard holds out its last tenth of documents (at least one) instead.
    """
    ranges = whole_shards(manifest)
    if len(ranges) >= 2:
        return ranges[:-1], ranges[-1:]
    if not ranges or ranges[0].rows < 2:
        raise TokenShardError(f"{manifest.root}: too few documents to hold any out for validation; set "
                              f"validation.every = 0 or give validation.path")
    only = ranges[0]
    held = max(1, only.rows // 10)
    return [Unit(only.shard, 0, only.stop - held)], [Unit(only.shard, only.stop - held, only.stop)]


def _row_group_pieces(unit: Unit, sizes: Sequence[int]) -> list[Unit]:
    pieces, start = [], 0
    for size in sizes:
        lo, hi = max(start, unit.start), min(start + size, unit.stop)
        if lo < hi:
            pieces.append(Unit(unit.shard, lo, hi))
        start += size
    return pieces


def _slices(unit: Unit, parts: int) -> list[Unit]:
    parts = min(parts, unit.rows)
    bounds = [unit.start + (unit.rows * k) // parts for k in range(parts + 1)]
    return [Unit(unit.shard, lo, hi) for lo, hi in zip(bounds, bounds[1:])]


def split_units(ranges: Sequence[Unit], slots: int, row_groups: Callable[[int], Sequence[int]]) -> list[Unit]:
    """Cut `ranges` into at least `slots` units: whole ranges, else row groups, else row slices.

    `row_groups(shard)` gives a shard's row-group sizes; it is only called when the ranges are
    fewer than the slots, so a large corpus never has its footers read up front.
    """
    ranges = [r for r in ranges if r.rows > 0]
    if len(ranges) >= slots:
        return list(ranges)
    pieces = [p for r in ranges for p in _row_group_pieces(r, row_groups(r.shard))]
    if len(pieces) >= slots:
        return pieces
    rows = sum(p.rows for p in pieces)
    if rows < slots:
        raise TokenShardError(f"{rows} documents cannot feed {slots} loader slots (ranks x workers); use fewer "
                              f"processes or data.workers, or more data")
    parts = math.ceil(slots / len(pieces))
    while True:
        units = [s for p in pieces for s in _slices(p, parts)]
        if len(units) >= slots:
            return units
        parts += 1


class ShardReader:
    """Reads documents from units of one manifest, one row group at a time, checking token ids."""

    def __init__(self, manifest: TokenManifest, vocab_size: int) -> None:
        self.manifest = manifest
        self.vocab_size = vocab_size
        # Filesystems are made on first use, so each loader worker process opens its own.
        self._open: dict[int, tuple[pafs.FileSystem, str]] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_open": {}}

    def documents(self, unit: Unit, start: int) -> Iterator[tuple[int, np.ndarray]]:
        """(row, tokens) for rows [start, unit.stop) of the unit's shard; tokens are a read-only view."""
        shard = self.manifest.shards[unit.shard]
        if unit.shard not in self._open:
            self._open[unit.shard] = open_filesystem(shard.path)
        fs, path = self._open[unit.shard]
        try:
            with fs.open_input_file(path) as f:
                parquet = pq.ParquetFile(f)
                metadata = parquet.metadata
                if metadata.num_rows != shard.documents:
                    raise TokenShardError(f"{shard.path}: holds {metadata.num_rows} rows but the manifest says "
                                          f"{shard.documents}; the manifest and shards are from different runs")
                first = 0
                for group in range(metadata.num_row_groups):
                    size = metadata.row_group(group).num_rows
                    lo, hi = max(start, first), min(first + size, unit.stop)
                    if lo < hi:
                        table = parquet.read_row_group(group, columns=[TOKENS_COLUMN])
                        yield from self._rows(table, shard, lo, lo - first, hi - lo)
                    first += size
                    if first >= unit.stop:
                        return
        except FileNotFoundError:
            raise TokenShardError(f"{shard.path}: listed in the manifest but not found") from None
        except (OSError, pa.ArrowInvalid, KeyError) as error:
            raise TokenShardError(f"{shard.path}: cannot read column {TOKENS_COLUMN!r} ({error})") from None

    def _rows(self, table: pa.Table, shard: ShardInfo, row: int, offset: int, count: int
              ) -> Iterator[tuple[int, np.ndarray]]:
        column = table.column(TOKENS_COLUMN).combine_chunks().slice(offset, count)
        if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
            raise TokenShardError(f"{shard.path}: column {TOKENS_COLUMN!r} is {column.type}, expected a list "
                                  f"of token ids")
        offsets = column.offsets.to_numpy()
        values = column.values.to_numpy(zero_copy_only=False)
        used = values[offsets[0]:offsets[-1]]
        if used.size and int(used.max()) >= self.vocab_size:
            raise TokenShardError(f"{shard.path}: token id {int(used.max())} is outside the model's vocabulary "
                                  f"of {self.vocab_size}; the model and the token shards disagree")
        valid = np.ones(count, dtype=bool) if column.null_count == 0 else column.is_valid().to_numpy(
            zero_copy_only=False)
        for i in range(count):
            if valid[i] and offsets[i + 1] > offsets[i]:
                yield row + i, values[offsets[i]:offsets[i + 1]]

"""Outputs: curated and rejected Parquet shards, and stats.json, all written through Beam FileSystems."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.accounting import build_stats
from pipeline.schema import row_bytes


def shard_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.parquet"


def shard_of(doc_id: str, count: int) -> int:
    """The shard (of `count`) a row goes to, by its id."""
    # Ids are hex digests already; re-hash so rejected-file ids that share a prefix still spread.
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big") % count


def shard_count(total_bytes: int, target_shard_bytes: int) -> int:
    return max(1, math.ceil(total_bytes / target_shard_bytes))


@contextlib.contextmanager
def parquet_writer(path: str, schema: pa.Schema, compression: str, compression_level: int):
    """A ParquetWriter on a new file at any Beam filesystem path."""
    codec = None if compression == "none" else compression
    options = {"compression_level": compression_level} if compression == "zstd" else {}
    with FileSystems.create(path, mime_type="application/vnd.apache.parquet",
                            compression_type=CompressionTypes.UNCOMPRESSED) as f:
        with pq.ParquetWriter(f, schema, compression=codec, **options) as writer:
            yield writer


def write_parquet(path: str, rows: list[dict], schema: pa.Schema, row_group_bytes: int,
                  compression: str, compression_level: int) -> None:
    """One Parquet file, rows sorted by id, row groups of about row_group_bytes."""
    rows.sort(key=lambda r: r["id"])
    with parquet_writer(path, schema, compression, compression_level) as writer:
        group: list[dict] = []
        size = 0
        for row in rows:
            group.append(row)
            size += row_bytes(row)
            if size >= row_group_bytes:
                writer.write_table(pa.Table.from_pylist(group, schema=schema))
                group, size = [], 0
        if group or not rows:
            writer.write_table(pa.Table.from_pylist(group, schema=schema))


class _CountAndSize(beam.CombineFn):
    def create_accumulator(self):
        return (0, 0)

    def add_input(self, acc, row):
        return (acc[0] + 1, acc[1] + row_bytes(row))

    def merge_accumulators(self, accs):
        return (sum(a[0] for a in accs), sum(a[1] for a in accs))

    def extract_output(self, acc):
        return acc


class WriteShards(beam.PTransform):
    """Rows to Parquet shards of about target_shard_bytes; the same rows give the same files anywhere.

    Each row goes to shard hash(id) mod n, with n from the total size, and each shard is
    sorted by id, so the file contents do not depend on the runner or the worker count.
    Outputs a tally: rows and shards written.
    """

    def __init__(self, directory: str, kind: str, schema: pa.Schema, target_shard_bytes: int,
                 row_group_bytes: int, compression: str, compression_level: int):
        super().__init__()
        self._directory = directory.rstrip("/")
        self._kind = kind
        self._schema = schema
        self._target = target_shard_bytes
        self._write = dict(row_group_bytes=row_group_bytes, compression=compression,
                           compression_level=compression_level)

    def expand(self, rows):
        size = rows | "MeasureOutput" >> beam.CombineGlobally(_CountAndSize())
        keyed = rows | "AssignShard" >> beam.Map(
            lambda row, acc: (shard_of(row["id"], self._shard_count(acc)), row), acc=beam.pvalue.AsSingleton(size))
        written = (
            keyed
            | "GroupShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.Map(self._write_shard, acc=beam.pvalue.AsSingleton(size))
        )
        # With no rows at all, still leave one empty shard, so readers of the glob find a schema.
        empty = size | "WriteEmptyShard" >> beam.FlatMap(self._write_empty)
        return (written, empty) | "MergeWriteTallies" >> beam.Flatten()

    def _shard_count(self, acc: tuple[int, int]) -> int:
        return shard_count(acc[1], self._target)

    def _write_shard(self, keyed: tuple[int, Iterable[dict]], acc) -> dict:
        shard, rows = keyed
        count = self._shard_count(acc)
        batch = list(rows)
        write_parquet(f"{self._directory}/{shard_name(shard, count)}", batch, self._schema, **self._write)
        from pipeline.stages import record_worker_memory

        record_worker_memory(f"write.{self._kind}")
        return {f"write.{self._kind}_rows": len(batch), f"write.{self._kind}_shards": 1}

    def _write_empty(self, acc) -> list[dict]:
        if acc[0]:
            return []
        write_parquet(f"{self._directory}/{shard_name(0, 1)}", [], self._schema, **self._write)
        return [{f"write.{self._kind}_shards": 1}]


class MergeCounts(beam.CombineFn):
    def create_accumulator(self):
        return Counter()

    def add_input(self, acc, counts):
        acc.update(counts)
        return acc

    def merge_accumulators(self, accs):
        total = Counter()
        for acc in accs:
            total.update(acc)
        return total

    def extract_output(self, acc):
        return dict(sorted(acc.items()))


def write_text(path: str, text: str, mime_type: str = "text/plain") -> None:
    with FileSystems.create(path, mime_type=mime_type, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(text.encode())


def write_json(path: str, value) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=False, default=str) + "\n", "application/json")


class WriteStats(beam.PTransform):
    """Merge every tally into stats.json in the run directory."""

    def __init__(self, path: str, job_name: str):
        super().__init__()
        self._path = path
        self._job_name = job_name

    def expand(self, tallies):
        return (
            tallies
            | "MergeTallies" >> beam.CombineGlobally(MergeCounts())
            | "WriteStatsJson" >> beam.Map(self._write)
        )

    def _write(self, counts: dict) -> dict:
        stats = build_stats(counts, self._job_name)
        write_json(self._path, stats)
        return stats

"""Outputs: curated and rejected Parquet shards, and stats.json, all written through Beam FileSystems."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from pipeline.accounting import build_stats
from pipeline.harness import release_finished_output_streams
from pipeline.schema import row_bytes

release_finished_output_streams()  # in each process that runs this module's code (see pipeline.harness)


def shard_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.parquet"


def id_hash(doc_id: str) -> int:
    """A row's 64-bit shard hash, from its id."""
    # Ids are hex digests already; re-hash so rejected-file ids that share a prefix still spread.
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big")


def shard_of(doc_id: str, count: int) -> int:
    """The shard (of `count`) a row goes to: shards split the id hash range into equal parts."""
    return (id_hash(doc_id) * count) >> 64


def shard_range(shard: int, count: int) -> tuple[int, int]:
    """The id hashes [low, high) of one shard; high is 2**64 for the last."""
    return -(-(shard << 64) // count), -(-((shard + 1) << 64) // count)


def shard_count(total_bytes: int, target_shard_bytes: int) -> int:
    return max(1, math.ceil(total_bytes / target_shard_bytes))


@contextlib.contextmanager
def parquet_writer(path: str, schema: pa.Schema, compression: str, compression_level: int | None = None):
    """A ParquetWriter on a new file at any Beam filesystem path."""
    codec = None if compression == "none" else compression
    options = {"compression_level": compression_level} if compression == "zstd" and compression_level else {}
    with FileSystems.create(path, mime_type="application/vnd.apache.parquet",
                            compression_type=CompressionTypes.UNCOMPRESSED) as f:
        with pq.ParquetWriter(f, schema, compression=codec, **options) as writer:
            yield writer


def row_sizes(table: pa.Table) -> np.ndarray:
    """Rough in-memory size of each row of a shard table, as `schema.row_bytes` counts it."""
    sizes = np.full(table.num_rows, 256, dtype=np.int64)
    for name in ("text", "payload"):
        if name in table.column_names:
            sizes += pc.fill_null(pc.binary_length(table[name]), 0).to_numpy(zero_copy_only=False)
    return sizes


def write_table(path: str, table: pa.Table, sizes: np.ndarray, row_group_bytes: int, compression: str,
                compression_level: int) -> None:
    """One Parquet file of `table` as it is ordered, row groups of about row_group_bytes by `sizes`."""
    with parquet_writer(path, table.schema, compression, compression_level) as writer:
        start = size = 0
        for end, row_size in enumerate(sizes.tolist(), start=1):
            size += row_size
            if size >= row_group_bytes:
                writer.write_table(table.slice(start, end - start), row_group_size=end - start)
                start, size = end, 0
        if start < table.num_rows or not table.num_rows:
            writer.write_table(table.slice(start), row_group_size=max(1, table.num_rows - start))


SPILL_HASH = "_winnow_shard_hash"
SPILL_BYTES = 8 << 20  # row bytes (as size_of counts them) a worker holds before it writes them to a spill file
SPILL_GROUP_BYTES = 128 << 10  # spill row groups: the unit a shard writer reads


@dataclass(frozen=True)
class Spill:
    """One spill file: rows sorted by id hash, in row groups whose hash ranges are listed."""

    path: str
    rows: int
    bytes: int
    groups: tuple[tuple[int, int], ...]  # (lowest, highest) id hash of each row group


class SpillRows(beam.DoFn):
    """Rows to spill files of about SPILL_BYTES, each sorted by a 64-bit hash (of the id by default)."""

    def __init__(self, temp_dir: str, schema: pa.Schema, size_of: Callable[[dict], int],
                 hash_of: Callable[[dict], int] | None = None):
        self._temp_dir = temp_dir
        self._schema = schema
        self._size_of = size_of
        self._hash_of = hash_of  # a row's 64-bit hash; by default id_hash of its "id"

    def start_bundle(self):
        # Rows are held by column (a list per field), not as dicts: a small row costs about half as much.
        self._columns: dict[str, list] = {name: [] for name in self._schema.names}
        self._hashes: list[int] = []
        self._sizes: list[int] = []
        self._size = 0

    def process(self, row: dict):
        size = self._size_of(row)
        for name, column in self._columns.items():
            column.append(row.get(name))
        self._hashes.append(self._hash_of(row) if self._hash_of else id_hash(row["id"]))
        self._sizes.append(size)
        self._size += size
        if self._size >= SPILL_BYTES:
            yield self._spill()

    def finish_bundle(self):
        if self._sizes:
            yield WindowedValue(self._spill(), MIN_TIMESTAMP, [GlobalWindow()])
        from pipeline.stages import record_worker_memory

        # The spill directory names the grouping or writer: spill.<name>.worker_peak_rss_mib.
        record_worker_memory(f"spill.{self._temp_dir.rstrip('/').rsplit('/', 1)[-1]}")

    def _spill(self) -> Spill:
        columns, hashes, sizes, total = self._columns, self._hashes, self._sizes, self._size
        self._columns = {name: [] for name in self._schema.names}
        self._hashes, self._sizes, self._size = [], [], 0
        hashes = np.asarray(hashes, dtype=np.uint64)
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        table = pa.Table.from_pydict(columns, schema=self._schema)
        del columns
        table = table.take(pa.array(order)).append_column(SPILL_HASH, pa.array(hashes, pa.uint64()))
        path = f"{self._temp_dir}/{uuid.uuid4().hex}.parquet"
        groups = []
        with parquet_writer(path, table.schema, "lz4") as writer:
            start = size = 0
            ordered_sizes = np.asarray(sizes, dtype=np.int64)[order].tolist()
            for end, row_size in enumerate(ordered_sizes, start=1):
                size += row_size
                if size >= SPILL_GROUP_BYTES or end == len(ordered_sizes):
                    writer.write_table(table.slice(start, end - start), row_group_size=end - start)
                    groups.append((int(hashes[start]), int(hashes[end - 1])))
                    start, size = end, 0
        return Spill(path=path, rows=len(ordered_sizes), bytes=total, groups=tuple(groups))


class SumPairs(beam.CombineFn):
    """(rows, bytes) pairs to their sums."""

    def create_accumulator(self):
        return (0, 0)

    def add_input(self, acc, pair: tuple[int, int]):
        return (acc[0] + pair[0], acc[1] + pair[1])

    def merge_accumulators(self, accs):
        return (sum(a[0] for a in accs), sum(a[1] for a in accs))

    def extract_output(self, acc):
        return acc


def spill_partitions(inputs: tuple, temp_dir: str, schema: pa.Schema, size_of: Callable[[dict], int],
                     partition_bytes: int, hash_of: Callable[[dict], int] | None = None):
    """Rows spilled to files where they are made, and references to the files' row groups grouped
    by hash partition, as many partitions as `partition_bytes` fit in the total
    (`shard_count(totals[1], partition_bytes)`). Applied inside a composite's expand; returns
    the (partition, refs) groups and a one-element PCollection of the (rows, bytes) totals.
    """
    spills = tuple(
        rows | f"Spill{i}" >> beam.ParDo(SpillRows(temp_dir, schema, size_of, hash_of))
        for i, rows in enumerate(inputs)
    ) | "MergeSpills" >> beam.Flatten()
    totals = (spills | "SpillSizes" >> beam.Map(lambda spill: (spill.rows, spill.bytes))
              | "MeasureSpills" >> beam.CombineGlobally(SumPairs()))
    grouped = (
        spills
        | "RouteSpills" >> beam.FlatMap(
            lambda spill, totals: spill_refs(spill, shard_count(totals[1], partition_bytes)),
            totals=beam.pvalue.AsSingleton(totals))
        | "GroupByPartition" >> beam.GroupByKey()
    )
    return grouped, totals


def spill_refs(spill: Spill, count: int) -> Iterator[tuple[int, tuple[str, int]]]:
    """(shard, (spill path, row group)) for every shard of `count` that a row group may hold rows of."""
    for group, (low, high) in enumerate(spill.groups):
        for shard in range((low * count) >> 64, ((high * count) >> 64) + 1):
            yield shard, (spill.path, group)


def read_spilled(shard: int, count: int, refs: Iterable[tuple[str, int]], per_group: bool = False) -> Iterator[pa.Table]:
    """The rows of one shard (of `count`) in the spill row groups `refs`, one table per spill file,
    or per row group with per_group (to hold less at a time)."""
    by_path: dict[str, list[int]] = {}
    for path, group in sorted(set(refs)):
        by_path.setdefault(path, []).append(group)
    low, high = shard_range(shard, count)
    for path, groups in by_path.items():
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            reader = pq.ParquetFile(f)
            for chunk in ([[g] for g in groups] if per_group else [groups]):
                part = reader.read_row_groups(chunk)
                hashes = part[SPILL_HASH].to_numpy()
                keep = hashes >= np.uint64(low)
                if high < 1 << 64:
                    keep &= hashes < np.uint64(high)
                yield part.filter(pa.array(keep)).drop_columns([SPILL_HASH])


def _read_shard(shard: int, count: int, refs: Iterable[tuple[str, int]], schema: pa.Schema) -> pa.Table:
    """A shard's rows from the spill row groups that may hold them, sorted by id."""
    parts = list(read_spilled(shard, count, refs))
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    return table.sort_by("id").cast(schema)


class ShardedWrite(beam.PTransform):
    """Rows (dicts with an "id"; one PCollection or a tuple of them) to shards of about
    target_shard_bytes, written by `write`.

    The same rows give the same shards on any runner and worker count: a row goes to the
    shard of its id hash (`shard_of`), the shard count follows from the total size, and each
    shard is sorted by id. Rows reach the worker that writes their shard in one of two ways,
    with the same files as the result:
      - through the runner's shuffle (spill=False): on Dataflow and Flink, whose shuffle keeps
        grouped values on disk and pages them to the worker, so a worker holds one shard;
      - through spill files (spill=True), for winnow's local runner, which holds a grouped
        collection in memory and sends each worker its whole share as one message. Each worker
        writes what it holds to spill files under `temp_dir` (sorted by id hash, at most
        SPILL_BYTES each), and only references to their row groups are grouped by shard. A
        worker then holds at most one spill's rows or one shard's rows, however large the
        output. Every shard reads a piece of every spill file, which suits one machine, not
        a cluster.
    By default (spill=None) spill files are used when the pipeline runs on the local runner.
    `temp_dir` is deleted at the end.

    `write(shard, count, table, **side_inputs)` writes one shard and returns what it wrote (a
    dict); with no rows at all it is called once with shard 0 of 1 and an empty table. Outputs
    one list of those dicts, in shard order, once every shard is written and the spill files
    are gone.
    """

    def __init__(self, temp_dir: str, schema: pa.Schema, target_shard_bytes: int, size_of: Callable[[dict], int],
                 write: Callable[..., dict], *, spill: bool | None = None, **side_inputs):
        super().__init__()
        self._temp_dir = temp_dir.rstrip("/")
        self._schema = schema
        self._target = target_shard_bytes
        self._size_of = size_of
        self._write = write
        self._spill = spill
        self._side_inputs = side_inputs

    def expand(self, inputs):
        schema, target, write, size_of = self._schema, self._target, self._write, self._size_of
        inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        pipeline = inputs[0].pipeline
        spill = runs_locally(pipeline) if self._spill is None else self._spill
        if spill:
            # Each input spills in the stage that makes it; only the spill references are grouped.
            by_shard, sizes = spill_partitions(inputs, self._temp_dir, schema, size_of, target)
        else:
            rows = inputs | "MergeRows" >> beam.Flatten()
            sizes = (rows | "RowSizes" >> beam.Map(lambda row: (1, size_of(row)))
                     | "Measure" >> beam.CombineGlobally(SumPairs()))
        totals = beam.pvalue.AsSingleton(sizes)

        def write_spilled(keyed, totals: tuple[int, int], **side_inputs) -> Iterator[tuple[int, dict]]:
            shard, refs = keyed
            count = shard_count(totals[1], target)
            table = _read_shard(shard, count, refs, schema)
            # A spill row group can span shards that hold none of its rows: no file for those.
            if table.num_rows:
                yield shard, write(shard, count, table, **side_inputs)

        def write_grouped(keyed, totals: tuple[int, int], **side_inputs) -> tuple[int, dict]:
            shard, grouped = keyed
            table = pa.Table.from_pylist(sorted(grouped, key=lambda row: row["id"]), schema=schema)
            return shard, write(shard, shard_count(totals[1], target), table, **side_inputs)

        def write_empty(_, totals: tuple[int, int], **side_inputs) -> list[tuple[int, dict]]:
            # With no rows at all, still leave one empty shard, so readers of the glob find a schema.
            return [] if totals[0] else [(0, write(0, 1, schema.empty_table(), **side_inputs))]

        if spill:
            written = by_shard | "WriteShard" >> beam.FlatMap(write_spilled, totals=totals, **self._side_inputs)
        else:
            written = (
                rows
                | "AssignShard" >> beam.Map(
                    lambda row, totals: (shard_of(row["id"], shard_count(totals[1], target)), row), totals=totals)
                | "GroupByShard" >> beam.GroupByKey()
                | "WriteShard" >> beam.Map(write_grouped, totals=totals, **self._side_inputs)
            )
        empty = (pipeline | "Once" >> beam.Create([None])
                 | "WriteEmptyShard" >> beam.FlatMap(write_empty, totals=totals, **self._side_inputs))
        return (
            (written, empty)
            | "MergeWritten" >> beam.Flatten()
            | "ListShards" >> beam.combiners.ToList()
            | "RemoveSpills" >> beam.Map(_remove_spills, self._temp_dir)
        )


def runs_locally(pipeline: beam.Pipeline) -> bool:
    """Whether a pipeline runs on one of Beam's local runners: FnApiRunner (what winnow runs
    DirectRunner jobs on), or Beam's own DirectRunner, which picks Prism or FnApiRunner itself."""
    return type(pipeline.runner).__name__ in {
        "FnApiRunner", "DirectRunner", "SwitchingDirectRunner", "BundleBasedDirectRunner", "PrismRunner"}


def _remove_spills(written: list[tuple[int, dict]], temp_dir: str) -> list[dict]:
    remove_tree(temp_dir)
    return [result for _, result in sorted(written, key=lambda item: item[0])]


def remove_tree(directory: str) -> None:
    """Delete a directory and everything under it, on any Beam filesystem; no error when absent."""
    try:
        found = [m.path for m in FileSystems.match([f"{directory}/**"])[0].metadata_list]
    except BeamIOError:
        found = []
    if found:
        FileSystems.delete(found)
    if FileSystems.exists(directory):
        with contextlib.suppress(BeamIOError):
            FileSystems.delete([directory])


class WriteShards(beam.PTransform):
    """Row dicts to Parquet shards of `schema` in `directory` (see ShardedWrite).

    Outputs a tally: rows and shards written.
    """

    def __init__(self, directory: str, kind: str, schema: pa.Schema, target_shard_bytes: int,
                 row_group_bytes: int, compression: str, compression_level: int, temp_dir: str,
                 spill: bool | None = None):
        super().__init__()
        self._spill = spill
        self._directory = directory.rstrip("/")
        self._kind = kind
        self._schema = schema
        self._target = target_shard_bytes
        self._temp_dir = temp_dir
        self._write = dict(row_group_bytes=row_group_bytes, compression=compression,
                           compression_level=compression_level)

    def expand(self, rows):
        return (
            rows
            | ShardedWrite(self._temp_dir, self._schema, self._target, row_bytes, self._write_shard, spill=self._spill)
            | "MergeWriteTallies" >> beam.Map(lambda tallies: dict(sum(map(Counter, tallies), Counter())))
        )

    def _write_shard(self, shard: int, count: int, table: pa.Table) -> dict:
        write_table(f"{self._directory}/{shard_name(shard, count)}", table, row_sizes(table), **self._write)
        from pipeline.stages import record_worker_memory

        record_worker_memory(f"write.{self._kind}")
        return {f"write.{self._kind}_rows": table.num_rows, f"write.{self._kind}_shards": 1}


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

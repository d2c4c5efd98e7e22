"""GroupByKey and CoGroupByKey that keep grouped data off the workers' memory on every runner.

On Dataflow and Flink these are Beam's own: the shuffle service keeps grouped data on disk and
pages each key's values to the worker. Beam's local runner (FnApiRunner) instead holds every
grouped collection in memory and sends each worker its whole share as one message, so a
worker's memory would grow with the corpus. There, the pairs are spilled: each worker writes
the pairs it holds to spill files (sorted by a hash of the key, `sinks.SpillRows`), only
references to the files' row groups are grouped, by hash partition of about PARTITION_BYTES,
and each partition is read back and grouped in memory. Keys and values are pickled, so they
must be picklable, and pickling a key must give the same bytes for equal keys (true of the
str, bytes, int and tuple keys used here). As with any GroupByKey, the order of a key's
values is unspecified.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterator

import apache_beam as beam
import pyarrow as pa

from pipeline.sinks import read_spilled, remove_tree, runs_locally, shard_count, spill_partitions

PARTITION_BYTES = 16 << 20  # memory of the pairs grouped at a time on the local runner, as _row_bytes counts it
# What one pair costs in Python objects beyond its pickled key and value, while it waits in a spill
# buffer or is grouped (bytes headers, list and dict slots): about 300 bytes, measured with
# tracemalloc on band-key pairs, whose pickles are only ~80 bytes.
PAIR_OVERHEAD = 300
_SCHEMA = pa.schema([("key", pa.binary()), ("tag", pa.int32()), ("value", pa.binary())])


def _pair_row(pair, tag: int) -> dict:
    key, value = pair
    return {"key": pickle.dumps(key, protocol=pickle.HIGHEST_PROTOCOL), "tag": tag,
            "value": pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)}


def _row_bytes(row: dict) -> int:
    return len(row["key"]) + len(row["value"]) + PAIR_OVERHEAD


def _key_hash(row: dict) -> int:
    return int.from_bytes(hashlib.blake2b(row["key"], digest_size=8).digest(), "big")


def _group_partition(keyed, totals: tuple[int, int], tags: int, name: str,
                     partition_bytes: int) -> Iterator[tuple[object, list[list]]]:
    """One partition's pairs, read back from the spill files and grouped: (key, values per tag)."""
    from pipeline.stages import record_worker_memory

    partition, refs = keyed
    groups: dict[bytes, list[list[bytes]]] = {}
    for table in read_spilled(partition, shard_count(totals[1], partition_bytes), refs, per_group=True):
        for key, tag, value in zip(table["key"].to_pylist(), table["tag"].to_pylist(), table["value"].to_pylist()):
            groups.setdefault(key, [[] for _ in range(tags)])[tag].append(value)
    record_worker_memory(f"group.{name}")
    for key in sorted(groups):
        yield pickle.loads(key), [[pickle.loads(v) for v in values] for values in groups.pop(key)]


def _remove(_, temp_dir: str) -> None:
    remove_tree(temp_dir)


class _SpilledGroup(beam.PTransform):
    """Tagged (key, value) collections to (key, [values of tag 0, values of tag 1, ...])."""

    def __init__(self, temp_dir: str):
        super().__init__()
        self._temp_dir = temp_dir.rstrip("/")

    def expand(self, inputs: tuple):
        tags = len(inputs)
        # Each input spills in the stage that makes it; only spill references are grouped.
        rows = tuple(pairs | f"ToRows{tag}" >> beam.Map(_pair_row, tag) for tag, pairs in enumerate(inputs))
        partitions, totals = spill_partitions(rows, self._temp_dir, _SCHEMA, _row_bytes, PARTITION_BYTES, _key_hash)
        grouped = partitions | "GroupInPartition" >> beam.FlatMap(
            _group_partition, totals=beam.pvalue.AsSingleton(totals), tags=tags,
            name=self._temp_dir.rsplit("/", 1)[-1], partition_bytes=PARTITION_BYTES)
        # The spill files go once every partition is grouped.
        (grouped | "CountKeys" >> beam.combiners.Count.Globally() | "RemoveSpills" >> beam.Map(_remove, self._temp_dir))
        return grouped


class GroupByKey(beam.PTransform):
    """beam.GroupByKey, spilled to files under `temp_dir` on the local runner (see the module)."""

    def __init__(self, temp_dir: str):
        super().__init__()
        self._temp_dir = temp_dir

    def expand(self, pairs):
        if not runs_locally(pairs.pipeline):
            return pairs | "GroupByKey" >> beam.GroupByKey()
        return ((pairs,) | "Spilled" >> _SpilledGroup(self._temp_dir)
                | "Values" >> beam.MapTuple(lambda key, values: (key, values[0])))


class CoGroupByKey(beam.PTransform):
    """beam.CoGroupByKey over a dict of tagged collections, spilled on the local runner (see the module)."""

    def __init__(self, temp_dir: str):
        super().__init__()
        self._temp_dir = temp_dir

    def expand(self, inputs: dict):
        if not runs_locally(next(iter(inputs.values())).pipeline):
            return inputs | "CoGroupByKey" >> beam.CoGroupByKey()
        names = list(inputs)
        return (tuple(inputs[name] for name in names) | "Spilled" >> _SpilledGroup(self._temp_dir)
                | "ByTag" >> beam.MapTuple(lambda key, values: (key, dict(zip(names, values)))))


__all__ = ["CoGroupByKey", "GroupByKey", "PARTITION_BYTES"]

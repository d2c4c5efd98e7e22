"""The spilled GroupByKey and CoGroupByKey group exactly as Beam's own."""

from __future__ import annotations

import hashlib
import os
import random

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from pipeline import grouping, sinks
from pipeline.curate import local_runner


def _pipeline() -> beam.Pipeline:
    options = PipelineOptions([])
    return beam.Pipeline(runner=local_runner(options), options=options)


def _pairs(n: int, keys: int, seed: int) -> list:
    rng = random.Random(seed)
    # Keys of several types, values of several sizes, one key much larger than the rest.
    return [((rng.randrange(keys), f"k{rng.randrange(3)}") if i % 3 else f"key-{rng.randrange(keys)}",
             (i, "x" * rng.randrange(200))) for i in range(n)] + [("hot", (j, "y")) for j in range(500)]


def _expected(pairs: list) -> list:
    grouped: dict = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return [(key, sorted(values)) for key, values in grouped.items()]


def test_spilled_group_by_key_equals_the_in_memory_grouping_and_leaves_no_files(tmp_path, monkeypatch):
    # Small spills and partitions, so keys meet across many files and partitions.
    monkeypatch.setattr(sinks, "SPILL_BYTES", 20_000)
    monkeypatch.setattr(sinks, "SPILL_GROUP_BYTES", 2_000)
    monkeypatch.setattr(grouping, "PARTITION_BYTES", 30_000)
    pairs = _pairs(4000, 700, seed=3)
    temp = tmp_path / "spill"
    with _pipeline() as p:
        out = (p | beam.Create(pairs) | grouping.GroupByKey(str(temp))
               | beam.MapTuple(lambda key, values: (key, sorted(values))))
        assert_that(out, equal_to(_expected(pairs)))
    assert not os.path.exists(temp)


def _four_hashes(row: dict) -> int:
    # Many different keys share each hash: equal hashes must not merge different keys.
    return (hashlib.blake2b(row["key"], digest_size=1).digest()[0] % 4) << 60


def test_keys_that_share_a_hash_are_grouped_apart(tmp_path, monkeypatch):
    monkeypatch.setattr(sinks, "SPILL_BYTES", 20_000)
    monkeypatch.setattr(sinks, "SPILL_GROUP_BYTES", 2_000)
    monkeypatch.setattr(grouping, "PARTITION_BYTES", 30_000)
    monkeypatch.setattr(grouping, "_key_hash", _four_hashes)
    pairs = _pairs(3000, 500, seed=5)
    with _pipeline() as p:
        out = (p | beam.Create(pairs) | grouping.GroupByKey(str(tmp_path / "spill"))
               | beam.MapTuple(lambda key, values: (key, sorted(values))))
        assert_that(out, equal_to(_expected(pairs)))


def test_spilled_co_group_by_key_joins_every_tag(tmp_path, monkeypatch):
    monkeypatch.setattr(grouping, "PARTITION_BYTES", 5_000)
    left = [(f"id{i % 97}", i) for i in range(600)]
    right = [(f"id{i % 131}", -i) for i in range(300)]  # some keys on one side only
    expected = sorted(
        (key, (sorted(v for k, v in left if k == key), sorted(v for k, v in right if k == key)))
        for key in {k for k, _ in left + right})
    with _pipeline() as p:
        joined = {"left": p | "L" >> beam.Create(left), "right": p | "R" >> beam.Create(right)} | grouping.CoGroupByKey(
            str(tmp_path / "spill"))
        out = joined | beam.MapTuple(lambda key, tags: (key, (sorted(tags["left"]), sorted(tags["right"]))))
        assert_that(out, equal_to(expected))


def test_nothing_to_group_gives_nothing(tmp_path):
    with _pipeline() as p:
        out = p | beam.Create([]) | grouping.GroupByKey(str(tmp_path / "spill"))
        assert_that(out, equal_to([]))

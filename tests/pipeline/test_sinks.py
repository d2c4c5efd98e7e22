"""The shard writer: the same rows give the same files however they were spilled, and no spill is left."""

from __future__ import annotations

import hashlib
import os

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import sinks
from pipeline.curate import local_runner
from pipeline.sinks import WriteShards, shard_count, shard_name, shard_of, shard_range

SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string())])


def _rows(n: int) -> list[dict]:
    return [{"id": hashlib.sha1(str(i).encode()).hexdigest(), "text": f"document {i} " * (i % 50 + 1)}
            for i in range(n)]


def _write(tmp_path, rows, target: int, name: str, spill: bool = True) -> tuple[str, str]:
    out = str(tmp_path / name)
    temp = str(tmp_path / f"{name}-temporary")
    options = PipelineOptions([])
    with beam.Pipeline(runner=local_runner(options), options=options) as p:
        tally = (p | beam.Create(rows, reshuffle=False)
                 | WriteShards(out, "test", SCHEMA, target, 4096, "zstd", 3, temp_dir=temp, spill=spill))
        tally | beam.Map(lambda t: open(f"{out}.tally", "w").write(repr(sorted(t.items()))))
    assert not os.path.exists(temp), "spill files must be removed"
    return out, open(f"{out}.tally").read()


def _files(directory: str) -> dict[str, bytes]:
    return {name: open(os.path.join(directory, name), "rb").read() for name in sorted(os.listdir(directory))}


def test_shard_ranges_cover_the_hash_space_and_agree_with_shard_of():
    for count in (1, 2, 3, 7, 1000):
        ranges = [shard_range(s, count) for s in range(count)]
        assert ranges[0][0] == 0 and ranges[-1][1] == 1 << 64
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    for row in _rows(200):
        count = 7
        low, high = shard_range(shard_of(row["id"], count), count)
        assert low <= sinks.id_hash(row["id"]) < high


def test_shards_hold_each_row_once_sorted_by_id_in_their_own_shard(tmp_path):
    rows = _rows(3000)
    target = 40_000
    out, tally = _write(tmp_path, rows, target, "out")
    count = shard_count(sum(sinks.row_bytes(r) for r in rows), target)
    assert count > 5
    seen = []
    for name in _files(out):
        index = int(name.split("-")[1])
        assert name == shard_name(index, count)
        table = pq.read_table(os.path.join(out, name))
        ids = table["id"].to_pylist()
        assert ids == sorted(ids) and ids
        assert {shard_of(i, count) for i in ids} == {index}
        seen += ids
    assert sorted(seen) == sorted(r["id"] for r in rows)
    assert f"('write.test_rows', {len(rows)})" in tally


def test_spill_files_and_the_runner_shuffle_give_the_same_files(tmp_path, monkeypatch):
    rows = _rows(2000)
    reference, reference_tally = _write(tmp_path, rows, 50_000, "shuffled", spill=False)
    one, one_tally = _write(tmp_path, rows, 50_000, "one")
    assert _files(one) == _files(reference)
    assert one_tally == reference_tally
    # Many small spills with small row groups: each shard gathers pieces of many spill files.
    monkeypatch.setattr(sinks, "SPILL_BYTES", 20_000)
    monkeypatch.setattr(sinks, "SPILL_GROUP_BYTES", 3_000)
    spilled, spilled_tally = _write(tmp_path, rows, 50_000, "many")
    assert _files(spilled) == _files(reference)
    assert spilled_tally == reference_tally


@pytest.mark.parametrize("spill", [True, False])
def test_no_rows_leave_one_empty_shard_with_the_schema(tmp_path, spill):
    out, tally = _write(tmp_path, [], 1 << 20, "empty", spill)
    assert list(_files(out)) == [shard_name(0, 1)]
    table = pq.read_table(os.path.join(out, shard_name(0, 1)))
    assert table.num_rows == 0 and table.schema.equals(SCHEMA)
    assert "('write.test_shards', 1)" in tally

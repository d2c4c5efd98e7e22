"""The streaming loader: the split rule, coverage over ranks and workers, exact resume, refusals."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from tests.fixtures.token_shards import END_OF_TEXT_ID, PAD_ID, numbered_documents, write_token_dir
from train.loader import LoaderStateError, PackedSequences, TokenLoader
from train.shards import (
    TokenShardError,
    Unit,
    hold_out,
    read_manifest,
    row_group_sizes,
    split_units,
    whole_shards,
)

VOCAB = 1024


def numbered_dir(tmp_path: Path, count: int, shards: int, row_group_rows: int, dtype: str = "uint16") -> Path:
    return write_token_dir(tmp_path / f"tokens-{count}-{shards}-{row_group_rows}", numbered_documents(count),
                           shards=shards, row_group_rows=row_group_rows, dtype=dtype, vocab_size=VOCAB)


def make_loader(directory: Path, *, rank: int, world_size: int, workers: int, batch_size: int = 3,
                seq_len: int = 15, seed: int = 0, shuffle_buffer: int = 7, epochs: int | None = None) -> TokenLoader:
    manifest = read_manifest(str(directory))
    slots = world_size * max(1, workers)
    units = split_units(whole_shards(manifest), slots, lambda s: row_group_sizes(manifest.shards[s]))
    dataset = PackedSequences(manifest, units, seq_len=seq_len, vocab_size=VOCAB, rank=rank, world_size=world_size,
                              workers=workers, seed=seed, shuffle_buffer=shuffle_buffer, epochs=epochs)
    return TokenLoader(dataset, batch_size)


def covering(units: list[Unit], manifest) -> Counter:
    rows = Counter()
    for unit in units:
        rows.update((unit.shard, row) for row in range(unit.start, unit.stop))
    return rows


# The split rule -------------------------------------------------------------------------------

def test_whole_shards_when_there_are_enough(tmp_path):
    manifest = read_manifest(str(numbered_dir(tmp_path, 100, shards=8, row_group_rows=4)))

    def no_footers(shard):
        raise AssertionError("footers are read only when shards are fewer than slots")

    units = split_units(whole_shards(manifest), 8, no_footers)
    assert units == whole_shards(manifest)


def test_row_groups_when_shards_are_fewer_than_slots(tmp_path):
    manifest = read_manifest(str(numbered_dir(tmp_path, 100, shards=2, row_group_rows=10)))
    units = split_units(whole_shards(manifest), 4, lambda s: row_group_sizes(manifest.shards[s]))
    assert len(units) == 10 and all(u.rows == 10 for u in units)
    assert covering(units, manifest) == Counter({(s, r): 1 for s in range(2) for r in range(50)})


def test_row_slices_when_row_groups_are_fewer_than_slots(tmp_path):
    manifest = read_manifest(str(numbered_dir(tmp_path, 10, shards=1, row_group_rows=100)))
    units = split_units(whole_shards(manifest), 4, lambda s: row_group_sizes(manifest.shards[s]))
    assert len(units) >= 4 and all(u.rows >= 1 for u in units)
    assert covering(units, manifest) == Counter({(0, r): 1 for r in range(10)})


def test_too_few_documents_for_the_slots(tmp_path):
    manifest = read_manifest(str(numbered_dir(tmp_path, 3, shards=1, row_group_rows=100)))
    with pytest.raises(TokenShardError, match="3 documents cannot feed 4 loader slots"):
        split_units(whole_shards(manifest), 4, lambda s: row_group_sizes(manifest.shards[s]))


def test_hold_out_takes_the_last_shard_or_the_last_tenth(tmp_path):
    many = read_manifest(str(numbered_dir(tmp_path, 40, shards=4, row_group_rows=4)))
    train, validation = hold_out(many)
    assert validation == [Unit(3, 0, 10)] and [u.shard for u in train] == [0, 1, 2]
    one = read_manifest(str(numbered_dir(tmp_path, 40, shards=1, row_group_rows=4)))
    assert hold_out(one) == ([Unit(0, 0, 36)], [Unit(0, 36, 40)])


# Coverage -------------------------------------------------------------------------------------

def decode_documents(stream: list[int]) -> list[tuple[int, int]]:
    """(document number, length) for each end-of-text-terminated run of a numbered-document stream."""
    while stream and stream[-1] == PAD_ID:
        stream.pop()
    docs, current = [], []
    for token in stream:
        if token == END_OF_TEXT_ID:
            assert current and len(set(current)) == 1, "a document was cut apart or mixed with another"
            docs.append((current[0] - 2, len(current) + 1))
            current = []
        else:
            current.append(token)
    assert not current, "a stream ended in the middle of a document"
    return docs


@pytest.mark.parametrize("shards", [8, 2, 1], ids=["by-shard", "by-row-group", "by-row-slice"])
def test_two_ranks_two_workers_read_every_document_once(tmp_path, shards):
    documents = numbered_documents(120)
    directory = write_token_dir(tmp_path / "tokens", documents, shards=shards, row_group_rows=12 if shards > 1 else 200,
                                vocab_size=VOCAB)
    streams: dict[tuple[int, int], list[int]] = {}
    for rank in range(2):
        loader = make_loader(directory, rank=rank, world_size=2, workers=2, epochs=1)
        for batch in loader:
            streams.setdefault((rank, loader.last_worker), []).extend(batch.flatten().tolist())
    assert sorted(streams) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    seen = Counter()
    for stream in streams.values():
        seen.update(decode_documents(stream))
    assert seen == Counter((k, len(doc)) for k, doc in enumerate(documents))


def test_sequences_are_seq_len_plus_one_and_carry_documents_across(tmp_path):
    directory = numbered_dir(tmp_path, 30, shards=1, row_group_rows=8)
    batch = next(iter(make_loader(directory, rank=0, world_size=1, workers=0, seq_len=15, batch_size=4)))
    assert batch.shape == (4, 16) and batch.dtype == torch.int64
    # Without padding, no document boundary lines up with every sequence boundary.
    assert PAD_ID not in batch.tolist()


# Resume ---------------------------------------------------------------------------------------

def take(loader: TokenLoader, count: int) -> list[torch.Tensor]:
    return list(itertools.islice(iter(loader), count))


@pytest.mark.parametrize("stop_after", [1, 5, 14])
def test_restored_loader_continues_exactly(tmp_path, stop_after):
    # 60 short documents over 2 ranks x 2 workers run through an epoch in about 12 batches per
    # rank, so 30 batches cross epoch boundaries, and positions fall inside documents and buffers.
    directory = numbered_dir(tmp_path, 60, shards=3, row_group_rows=6)
    total = 30
    for rank in range(2):
        expected = take(make_loader(directory, rank=rank, world_size=2, workers=2), total)
        first = make_loader(directory, rank=rank, world_size=2, workers=2)
        head = take(first, stop_after)
        state = json.loads(json.dumps(first.state_dict()))
        second = make_loader(directory, rank=rank, world_size=2, workers=2)
        second.load_state_dict(state)
        rest = take(second, total - stop_after)
        for i, (got, want) in enumerate(zip(head + rest, expected)):
            assert torch.equal(got, want), f"rank {rank}: batch {i} differs after restoring at {stop_after}"
    if stop_after == 14:
        assert max(p[0] for p in state["positions"]) >= 1, "the restore point should lie past an epoch"


def test_in_process_loader_resumes_too(tmp_path):
    directory = numbered_dir(tmp_path, 40, shards=2, row_group_rows=5)
    expected = take(make_loader(directory, rank=0, world_size=1, workers=0), 12)
    first = make_loader(directory, rank=0, world_size=1, workers=0)
    head = take(first, 7)
    second = make_loader(directory, rank=0, world_size=1, workers=0)
    second.load_state_dict(first.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(head + take(second, 5), expected))


@pytest.mark.parametrize("change, message", [
    (dict(world_size=4), "world_size=2 .* this run has world_size=4"),
    (dict(workers=1), "workers=2 .* this run has workers=1"),
    (dict(seed=1), "seed=0"),
])
def test_refuses_a_differently_shaped_run(tmp_path, change, message):
    directory = numbered_dir(tmp_path, 60, shards=4, row_group_rows=6)
    first = make_loader(directory, rank=0, world_size=2, workers=2)
    take(first, 3)
    shape = dict(rank=0, world_size=2, workers=2, seed=0) | change
    with pytest.raises(LoaderStateError, match=message):
        make_loader(directory, **shape).load_state_dict(first.state_dict())


def test_refuses_another_version(tmp_path):
    directory = numbered_dir(tmp_path, 20, shards=1, row_group_rows=5)
    loader = make_loader(directory, rank=0, world_size=1, workers=0)
    with pytest.raises(LoaderStateError, match="version 99"):
        loader.load_state_dict({**loader.state_dict(), "version": 99})


# Shuffling and reading ------------------------------------------------------------------------

def test_shuffle_is_seeded_and_changes_each_epoch(tmp_path):
    directory = numbered_dir(tmp_path, 200, shards=8, row_group_rows=5)
    same = [take(make_loader(directory, rank=0, world_size=1, workers=0, seed=3), 6) for _ in range(2)]
    other = take(make_loader(directory, rank=0, world_size=1, workers=0, seed=4), 6)
    assert all(torch.equal(a, b) for a, b in zip(*same))
    assert not all(torch.equal(a, b) for a, b in zip(same[0], other))
    dataset = make_loader(directory, rank=0, world_size=1, workers=0).dataset
    assert dataset.slot_units(0, 0) != dataset.slot_units(0, 1)


def test_reads_row_group_by_row_group(tmp_path, monkeypatch):
    directory = numbered_dir(tmp_path, 50, shards=2, row_group_rows=5)

    def whole_file(*args, **kwargs):
        raise AssertionError("the loader must not read a whole shard at once")

    monkeypatch.setattr(pq.ParquetFile, "read", whole_file)
    monkeypatch.setattr(pq, "read_table", whole_file)
    assert len(take(make_loader(directory, rank=0, world_size=1, workers=0), 5)) == 5


def test_uint32_tokens(tmp_path):
    directory = numbered_dir(tmp_path, 30, shards=2, row_group_rows=5, dtype="uint32")
    assert take(make_loader(directory, rank=0, world_size=1, workers=0), 1)[0].shape == (3, 16)


def test_token_outside_the_vocabulary_is_an_error(tmp_path):
    directory = write_token_dir(tmp_path / "tokens", [[5, 2000, 0]] * 4, shards=1, vocab_size=VOCAB)
    with pytest.raises(TokenShardError, match="token id 2000 is outside the model's vocabulary of 1024"):
        take(make_loader(directory, rank=0, world_size=1, workers=0), 1)


def test_manifest_problems_name_the_file(tmp_path):
    with pytest.raises(TokenShardError, match=r"manifest.json: not found"):
        read_manifest(str(tmp_path))
    directory = numbered_dir(tmp_path, 10, shards=1, row_group_rows=5)
    manifest = json.loads((directory / "manifest.json").read_text())
    (directory / "manifest.json").write_text(json.dumps({**manifest, "dtype": "int8"}))
    with pytest.raises(TokenShardError, match="dtype 'int8' is not one of"):
        read_manifest(str(directory))


def test_rows_differing_from_the_manifest_are_an_error(tmp_path):
    directory = numbered_dir(tmp_path, 10, shards=1, row_group_rows=5)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["shards"][0]["documents"] = 12
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TokenShardError, match="holds 10 rows but the manifest says 12"):
        take(make_loader(directory, rank=0, world_size=1, workers=0), 1)


def test_padding_only_in_the_last_sequence_of_a_finite_stream(tmp_path):
    directory = numbered_dir(tmp_path, 20, shards=1, row_group_rows=5)
    batches = list(make_loader(directory, rank=0, world_size=1, workers=0, epochs=1))
    tokens = torch.cat(batches).flatten().numpy()
    pads = np.flatnonzero(tokens == PAD_ID)
    assert len(pads) < 16 and (len(pads) == 0 or pads[-1] == len(tokens) - 1)


def test_empty_documents_do_not_spin_forever(tmp_path):
    directory = write_token_dir(tmp_path / "tokens", [[]] * 4, shards=1, vocab_size=VOCAB)
    with pytest.raises(TokenShardError, match="found no tokens"):
        take(make_loader(directory, rank=0, world_size=1, workers=0), 1)

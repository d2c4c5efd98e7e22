"""The streaming loader: fixed-length packed sequences from token shards, resumable exactly.

Each rank runs `workers` DataLoader worker processes (or reads in the training process when it
is 0); rank r's worker w is slot r * workers + w of S = world_size * workers slots. A slot's
stream runs through epochs without end. In epoch e the read units (`shards.split_units`) are
shuffled with the seed (seed, e) and the slot reads units[slot::S], in that order, one row
group at a time. Documents fill a shuffle buffer of `shuffle_buffer` documents; a full buffer
(or the last one of an epoch) is emitted in an order drawn from the seed (seed, e, shard, first
row) and then refilled, so memory stays bounded. Documents are concatenated (each already ends
with end-of-text) and cut into sequences of seq_len + 1 tokens: inputs are the first seq_len,
targets the last seq_len. A document that does not fit continues in the next sequence.

Resume: a slot's place in its stream is a `Position`: the buffer that starts at `row` of the
slot's `unit`-th unit in `epoch`, the `index`-th document in the buffer's shuffled order, and
the token `offset` within it. Every sequence carries the position after it. The main process
(`TokenLoader`) keeps, per worker, the position of the last batch it handed out, and which
worker the DataLoader asks next, so its state is exact although worker processes keep their
own state out of its sight. Restoring re-reads one buffer. The state carries a version and
refuses a changed world size or worker count, which would reassign units and silently skip or
repeat data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from train.shards import ShardReader, TokenManifest, TokenShardError, Unit

STATE_VERSION = 1


class LoaderStateError(ValueError):
    """A loader state that cannot be restored into this loader, saying why and what to do."""


@dataclass(frozen=True)
class Position:
    """Where a slot's next token comes from (see the module docstring)."""

    epoch: int
    unit: int
    row: int
    index: int
    offset: int


@dataclass
class _Buffer:
    epoch: int
    unit: int
    row: int
    documents: list[np.ndarray]


class PackedSequences(IterableDataset):
    """Sequences of seq_len + 1 token ids for one rank; iterate it through `TokenLoader`.

    `epochs=None` streams forever (training, validation); a number stops after that many
    epochs and pads the last sequence with the pad id, so every token is yielded once.
    """

    def __init__(self, manifest: TokenManifest, units: Sequence[Unit], *, seq_len: int, vocab_size: int,
                 rank: int = 0, world_size: int = 1, workers: int = 0, seed: int = 0,
                 shuffle_buffer: int = 1024, shuffle: bool = True, epochs: int | None = None) -> None:
        if seq_len < 1 or shuffle_buffer < 1 or workers < 0:
            raise ValueError("seq_len and shuffle_buffer must be >= 1 and workers >= 0")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.manifest = manifest
        self.units = list(units)
        self.seq_len = seq_len
        self.rank = rank
        self.world_size = world_size
        self.workers = workers
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.shuffle = shuffle
        self.epochs = epochs
        self.slots = world_size * self.logical_workers
        if len(self.units) < self.slots:
            raise TokenShardError(f"{manifest.root}: {len(self.units)} read units for {self.slots} slots; split "
                                  f"the corpus with shards.split_units(..., slots={self.slots})")
        pad = manifest.tokenizer.pad_id
        self.pad_id = manifest.tokenizer.end_of_text_id if pad is None else pad
        self._reader = ShardReader(manifest, vocab_size)
        self._resume: list[Position | None] = [None] * self.logical_workers
        self._rotation = 0

    @property
    def logical_workers(self) -> int:
        """Streams per rank: one per DataLoader worker, or one read in the training process."""
        return max(1, self.workers)

    def resume_from(self, positions: Sequence[Position | None], rotation: int) -> None:
        """Start logical worker w at positions[w]; DataLoader worker p plays logical worker (p + rotation) % W."""
        self._resume = list(positions)
        self._rotation = rotation

    def slot_units(self, slot: int, epoch: int) -> list[Unit]:
        """The units slot `slot` reads in `epoch`, in reading order."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.units))
        else:
            order = np.arange(len(self.units))
        return [self.units[i] for i in order[slot::self.slots]]

    def _buffers(self, slot: int, start: Position | None) -> Iterator[_Buffer]:
        epoch, first_unit, resume_row = (start.epoch, start.unit, start.row) if start else (0, 0, None)
        while self.epochs is None or epoch < self.epochs:
            units = self.slot_units(slot, epoch)
            buffer: _Buffer | None = None
            read_any = first_unit > 0 or resume_row is not None
            for u in range(first_unit, len(units)):
                begin = units[u].start if resume_row is None else resume_row
                resume_row = None
                for row, tokens in self._reader.documents(units[u], begin):
                    read_any = True
                    if buffer is None:
                        buffer = _Buffer(epoch, u, row, [])
                    buffer.documents.append(tokens)
                    if len(buffer.documents) == self.shuffle_buffer:
                        yield self._shuffled(buffer, units)
                        buffer = None
            if buffer is not None:
                yield self._shuffled(buffer, units)
            if not read_any:
                raise TokenShardError(f"{self.manifest.root}: loader slot {slot} found no tokens in its units "
                                      f"{units}; every document there is empty")
            epoch, first_unit = epoch + 1, 0

    def _shuffled(self, buffer: _Buffer, units: Sequence[Unit]) -> _Buffer:
        if self.shuffle and len(buffer.documents) > 1:
            # Seeded by the buffer's first document, so a restored buffer comes out in the same order.
            shard = units[buffer.unit].shard
            order = np.random.default_rng([self.seed, buffer.epoch, shard, buffer.row]).permutation(
                len(buffer.documents))
            buffer.documents = [buffer.documents[i] for i in order]
        return buffer

    def sequences(self, slot: int, start: Position | None = None) -> Iterator[tuple[np.ndarray, Position]]:
        """(seq_len + 1 token ids, the position after them) for slot `slot`, from `start`."""
        length = self.seq_len + 1
        out = np.empty(length, dtype=np.int64)
        fill = 0
        index, offset = (start.index, start.offset) if start else (0, 0)
        for buffer in self._buffers(slot, start):
            for i in range(index, len(buffer.documents)):
                doc = buffer.documents[i]
                t = offset
                while t < len(doc):
                    take = min(length - fill, len(doc) - t)
                    out[fill:fill + take] = doc[t:t + take]
                    fill, t = fill + take, t + take
                    if fill == length:
                        after = (i, t) if t < len(doc) else (i + 1, 0)
                        yield out.copy(), Position(buffer.epoch, buffer.unit, buffer.row, *after)
                        fill = 0
                offset = 0
            index = 0
        if fill:
            out[fill:] = self.pad_id
            yield out.copy(), Position(self.epochs or 0, 0, -1, 0, 0)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        if info is None:
            if self.workers:
                raise RuntimeError("this dataset expects DataLoader workers; iterate it through TokenLoader")
            physical = 0
        else:
            if info.num_workers != self.workers:
                raise RuntimeError(f"the DataLoader runs {info.num_workers} workers, the dataset was made for "
                                   f"{self.workers}")
            physical = info.id
        logical = (physical + self._rotation) % self.logical_workers
        slot = self.rank * self.logical_workers + logical
        for tokens, position in self.sequences(slot, self._resume[logical]):
            yield {"tokens": torch.from_numpy(tokens), "worker": logical,
                   "position": torch.tensor(dataclasses.astuple(position))}


class TokenLoader:
    """Batches (batch_size, seq_len + 1) of one rank's sequences, with a state_dict that resumes exactly.

    A restored state takes effect at the next `iter()`.
    """

    def __init__(self, dataset: PackedSequences, batch_size: int, *, pin_memory: bool = False,
                 prefetch_factor: int = 4) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self._positions: list[Position | None] = [None] * dataset.logical_workers
        self._next_worker = 0
        self.last_worker = -1  # the worker that made the batch yielded last

    def __iter__(self) -> Iterator[torch.Tensor]:
        dataset = self.dataset
        dataset.resume_from(self._positions, self._next_worker)
        loader = DataLoader(dataset, batch_size=self.batch_size, num_workers=dataset.workers,
                            pin_memory=self.pin_memory,
                            prefetch_factor=self.prefetch_factor if dataset.workers else None)
        for batch in loader:
            worker = int(batch["worker"][0])
            # Endless streams never run dry, so the DataLoader visits workers strictly in turn;
            # with a fixed number of epochs it skips workers that have finished.
            if worker != self._next_worker and dataset.epochs is None:
                raise RuntimeError(f"batch from loader worker {worker} where worker {self._next_worker} was due; "
                                   f"the DataLoader no longer visits workers in turn")
            self._positions[worker] = Position(*batch["position"][-1].tolist())
            self._next_worker = (worker + 1) % dataset.logical_workers
            self.last_worker = worker
            yield batch["tokens"]

    def _identity(self) -> dict[str, Any]:
        d = self.dataset
        return {"world_size": d.world_size, "workers": d.workers, "rank": d.rank, "seq_len": d.seq_len,
                "seed": d.seed, "shuffle_buffer": d.shuffle_buffer, "shuffle": d.shuffle,
                "corpus": d.manifest.fingerprint, "units": len(d.units)}

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: the version, what the positions depend on, and the positions."""
        return {"version": STATE_VERSION, **self._identity(), "next_worker": self._next_worker,
                "positions": [None if p is None else dataclasses.astuple(p) for p in self._positions]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from `state_dict`; refuses one saved by a differently shaped run."""
        version = state.get("version")
        if version != STATE_VERSION:
            raise LoaderStateError(f"loader state version {version!r} is not supported (this loader reads "
                                   f"version {STATE_VERSION}); start a new run in a new output_dir")
        mine = self._identity()
        for key in ("world_size", "workers"):
            if state.get(key) != mine[key]:
                raise LoaderStateError(
                    f"the loader state was saved with {key}={state.get(key)} (world_size={state.get('world_size')}, "
                    f"workers={state.get('workers')}) but this run has {key}={mine[key]}; units are dealt to "
                    f"ranks x workers, so resuming would skip or repeat data. Resume with the same number of "
                    f"processes and data.workers, or start a new run in a new output_dir")
        for key in ("rank", "seq_len", "seed", "shuffle_buffer", "shuffle", "corpus", "units"):
            if state.get(key) != mine[key]:
                raise LoaderStateError(f"the loader state was saved with {key}={state.get(key)!r}, this run has "
                                       f"{mine[key]!r}; positions only hold for the same data and settings. "
                                       f"Restore the original setting or start a new run in a new output_dir")
        positions = state.get("positions")
        next_worker = state.get("next_worker")
        if (not isinstance(positions, list) or len(positions) != self.dataset.logical_workers
                or not isinstance(next_worker, int) or not 0 <= next_worker < self.dataset.logical_workers):
            raise LoaderStateError("the loader state is malformed: 'positions' must list one entry per worker "
                                   "and 'next_worker' name one of them")
        self._positions = [None if p is None else Position(*p) for p in positions]
        self._next_worker = next_worker

"""Connected components of an edge list, as bounded rounds of distributed label propagation in Beam.

`ConnectedComponents` labels every node that appears in an edge with the smallest id of
its connected component. Ids are strings, compared in Python's str order (code-point
order), which is the same on every machine, so the same edges give the same labels on
any runner with any number of workers.

The rounds alternate large-star and small-star (Kiveris et al., "Connected Components in
MapReduce and Beyond", SoCC 2014) over edges held as (larger id, smaller id):

- large-star: each node points every larger neighbour at the smallest of itself and its
  neighbours;
- small-star: each node points itself and every smaller neighbour at the smallest of them.

Neither step joins or splits components, and together they reach a fixed point where each
component is a star around its smallest id. A Beam graph is fixed before it runs, so the
rounds are unrolled up to `max_rounds`; a round after convergence changes nothing. A round
is two shuffles: group by node, then group by larger end. Input edges are made distinct
once; after that duplicates are left alone, as they cannot pile up: large-star emits one
edge per edge it reads and small-star at most one, folding repeats of a node's smallest
neighbour, so no round carries more edges than the distinct input edges, and a
deduplicating shuffle per round would cost more than it saves. No step holds more than
one node's neighbourhood, and that only as Beam's re-iterable grouped values, read twice
rather than copied into memory.

Rounds needed, counted with the same steps in memory: a path of n nodes whose ids are in
random order along it takes about 0.8 * log2(n) rounds (1,000 nodes: 8-9; 100,000: 13-14;
1,000,000: 16); a path whose ids increase along it is the slow case, about log2(n) rounds
(1,000: 10; 100,000: 17; 1,000,000: 20). A random graph of a million nodes and a million
edges takes 6. Near-duplicate clusters have small diameter and settle in a handful.

A node's label is the smallest of itself and its neighbours after the last round. The
labels are released only after a distributed check; otherwise the pipeline fails with
`ComponentsNotConverged` and no label at all comes out. The check:

1. both ends of every input edge carry the same label, and
2. every label is a node whose own label is itself.

Check 1 alone proves the answer right: the rounds never join components, so every label
lies in its node's component; the component's smallest id labels itself; and labels
equal along every input edge are constant on the component. Check 2 guards that reasoning
(a label that is no node of the graph, say, fails it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.pvalue import AsSingleton

from pipeline.harness import release_finished_output_streams

release_finished_output_streams()  # in each process that runs this module's code (see pipeline.harness)

Edge = tuple[str, str]

# A path of a million nodes in the slowest (increasing) id order needs 20 rounds.
DEFAULT_MAX_ROUNDS = 24

# Tags of the values meeting in the convergence check's groups.
_LABEL = "label"
_EDGE = "edge"  # an input edge seen from its larger end: the smaller end
_CLAIM = "claim"  # some other node carries this node as its label
_SEEN = "seen"  # an input edge seen from its smaller end: the larger end's label


class ComponentsNotConverged(RuntimeError):
    """Label propagation did not finish within max_rounds; no labels were released."""


class ConnectedComponents(beam.PTransform):
    """Edges (u, v) of string ids -> (node, smallest id in the node's component) for every node."""

    def __init__(self, max_rounds: int = DEFAULT_MAX_ROUNDS) -> None:
        super().__init__()
        if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
            raise ValueError(f"max_rounds must be a positive integer, got {max_rounds!r}")
        self._max_rounds = max_rounds

    def expand(self, edges):
        checked = edges | "CheckEdges" >> beam.Map(_checked_edge).with_output_types(Edge)
        graph = (
            checked
            | "Orient" >> beam.FlatMap(_oriented).with_output_types(Edge)
            | "DistinctEdges" >> beam.Distinct()
        )
        settled = graph
        for number in range(1, self._max_rounds + 1):
            settled = settled | f"Round{number:02d}" >> _StarRound()
        labels = (
            (
                checked | "Ends" >> beam.FlatMap(_ends).with_output_types(Edge),
                settled,  # (larger, smaller): the smaller end is a candidate label of the larger
            )
            | "LabelCandidates" >> beam.Flatten()
            | "SmallestCandidate" >> beam.CombinePerKey(min).with_output_types(Edge)
        )
        summary = (labels, graph) | "CheckConvergence" >> _ConvergenceCheck()
        return labels | "ReleaseIfConverged" >> beam.ParDo(
            _ReleaseIfConverged(self._max_rounds), AsSingleton(summary)
        ).with_output_types(Edge)


class _StarRound(beam.PTransform):
    """One large-star step, then one small-star step."""

    def expand(self, graph):
        large = (
            graph
            | "BothDirections" >> beam.FlatMap(_both_directions).with_output_types(Edge)
            | "GroupByNode" >> beam.GroupByKey()
            | "LargeStar" >> beam.FlatMapTuple(_large_star).with_output_types(Edge)
        )
        return (
            large
            | "GroupByLargerEnd" >> beam.GroupByKey()
            | "SmallStar" >> beam.FlatMapTuple(_small_star).with_output_types(Edge)
        )


def _checked_edge(edge) -> Edge:
    if not (isinstance(edge, (tuple, list)) and len(edge) == 2 and all(isinstance(end, str) for end in edge)):
        raise TypeError(f"ConnectedComponents takes edges as (str, str) pairs of node ids, got {edge!r}")
    return edge[0], edge[1]


def _oriented(edge: Edge) -> Iterator[Edge]:
    """(larger, smaller); a self-loop carries no connection and is dropped here."""
    u, v = edge
    if u != v:
        yield (u, v) if u > v else (v, u)


def _ends(edge: Edge) -> Iterator[Edge]:
    """Each end as its own first label candidate, so isolated self-loops are labelled too."""
    u, v = edge
    yield u, u
    if v != u:
        yield v, v


def _both_directions(edge: Edge) -> Iterator[Edge]:
    larger, smaller = edge
    yield larger, smaller
    yield smaller, larger


def _large_star(node: str, neighbours: Iterable[str]) -> Iterator[Edge]:
    """Point every larger neighbour at the smallest of the node and its neighbours."""
    # Two passes over the grouped values (Beam's are re-iterable) instead of a set: a
    # component's smallest id ends up with the whole component as neighbours.
    smallest = min(node, min(neighbours))
    for neighbour in neighbours:
        if neighbour > node:
            yield neighbour, smallest


def _small_star(node: str, smaller: Iterable[str]) -> Iterator[Edge]:
    """Point the node and every smaller neighbour at the smallest of them."""
    smallest = min(smaller)  # every edge is grouped under its larger end, so none is empty
    for neighbour in smaller:
        if neighbour != smallest:
            yield neighbour, smallest
    yield node, smallest


class _ConvergenceCheck(beam.PTransform):
    """(labels, input graph) -> (number of failed checks, the smallest failure) as one element."""

    def expand(self, inputs):
        labels, graph = inputs
        tagged_labels = labels | "TagLabels" >> beam.MapTuple(lambda node, label: (node, (_LABEL, label)))
        edges_at_larger = (
            (
                tagged_labels,
                graph | "TagEdges" >> beam.MapTuple(lambda larger, smaller: (larger, (_EDGE, smaller))),
                labels | "TagClaims" >> beam.FlatMapTuple(_claim),
            )
            | "FlattenAtLarger" >> beam.Flatten()
            | "GroupAtLarger" >> beam.GroupByKey()
            | "CheckAtLarger" >> beam.FlatMapTuple(_check_at_larger).with_outputs(_SEEN, main="failures")
        )
        failures_at_smaller = (
            (tagged_labels, edges_at_larger[_SEEN])
            | "FlattenAtSmaller" >> beam.Flatten()
            | "GroupAtSmaller" >> beam.GroupByKey()
            | "CheckAtSmaller" >> beam.FlatMapTuple(_check_at_smaller)
        )
        return (
            (edges_at_larger["failures"], failures_at_smaller)
            | "AllFailures" >> beam.Flatten()
            | "Summarise" >> beam.CombineGlobally(_FailureSummary())
        )


def _claim(node: str, label: str) -> Iterator[tuple[str, tuple[str, None]]]:
    if label != node:
        yield label, (_CLAIM, None)


def _own_label(node: str, values: Iterable[tuple[str, str | None]]) -> str | None:
    return next((value for tag, value in values if tag == _LABEL), None)


def _check_at_larger(node: str, values: Iterable[tuple[str, str | None]]) -> Iterator:
    """Send this node's label along its input edges; fail claims on a node that is no root."""
    label = _own_label(node, values)
    if label is None:
        yield f"{node!r} is the label of some node, or an edge end, but has no label itself"
        return
    claimed = False
    for tag, value in values:
        if tag == _EDGE:
            yield beam.pvalue.TaggedOutput(_SEEN, (value, (_SEEN, label)))
        elif tag == _CLAIM:
            claimed = True
    if claimed and label != node:
        yield f"{node!r} is the label of other nodes, but its own label is {label!r}"


def _check_at_smaller(node: str, values: Iterable[tuple[str, str | None]]) -> Iterator[str]:
    """Fail every input edge whose larger end's label differs from this node's."""
    label = _own_label(node, values)
    for tag, value in values:
        if tag == _SEEN and value != label:
            yield f"{node!r} has label {label!r}, but a neighbour of it has label {value!r}"


class _FailureSummary(beam.CombineFn):
    """How many checks failed, and the smallest failure message as an example (deterministic)."""

    def create_accumulator(self) -> tuple[int, str | None]:
        return 0, None

    def add_input(self, accumulator: tuple[int, str | None], failure: str) -> tuple[int, str | None]:
        count, example = accumulator
        return count + 1, failure if example is None else min(example, failure)

    def merge_accumulators(self, accumulators: Iterable[tuple[int, str | None]]) -> tuple[int, str | None]:
        count, examples = 0, []
        for part_count, part_example in accumulators:
            count += part_count
            if part_example is not None:
                examples.append(part_example)
        return count, min(examples, default=None)

    def extract_output(self, accumulator: tuple[int, str | None]) -> tuple[int, str | None]:
        return accumulator


class _ReleaseIfConverged(beam.DoFn):
    """Passes the labels through only when the convergence check found nothing wrong."""

    def __init__(self, max_rounds: int) -> None:
        self._max_rounds = max_rounds

    def process(self, labelled: Edge, summary: tuple[int, str | None]) -> Iterator[Edge]:
        failures, example = summary
        if failures:
            raise ComponentsNotConverged(
                f"ConnectedComponents did not converge within max_rounds={self._max_rounds}: "
                f"{failures} label check(s) failed, e.g. {example}. No labels were released. "
                f"Raise max_rounds, e.g. ConnectedComponents(max_rounds={2 * self._max_rounds}); "
                "a path of n nodes needs up to about log2(n) rounds."
            )
        yield labelled

    def finish_bundle(self):
        from pipeline.stages import record_worker_memory

        record_worker_memory("components")

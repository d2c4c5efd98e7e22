"""Tests for pipeline.components: connected components by large-star / small-star rounds in Beam."""

import random
from collections import defaultdict

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # pytest would collect Test*
from apache_beam.testing.util import assert_that, equal_to

from pipeline import components as cc
from pipeline.components import ComponentsNotConverged, ConnectedComponents

# --- references -------------------------------------------------------------------------


def union_find_labels(edges):
    """node -> smallest id of its component, by an in-memory union-find."""
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)  # the smaller root wins, so roots are minima
    return {node: find(node) for node in list(parent)}


def rounds_in_memory(edges, max_rounds=100):
    """The module's own steps, grouped in memory as Beam would: (rounds to converge, edge counts)."""
    graph = sorted({e for edge in edges for e in cc._oriented(edge)})
    expected = union_find_labels(edges)
    counts = [len(graph)]
    for number in range(max_rounds + 1):
        labels = {node: node for node in expected}
        for larger, smaller in graph:
            labels[larger] = min(labels[larger], smaller)
        if labels == expected:
            return number, counts
        groups = defaultdict(list)
        for edge in graph:
            for node, neighbour in cc._both_directions(edge):
                groups[node].append(neighbour)
        large = [e for node, ns in groups.items() for e in cc._large_star(node, ns)]
        groups = defaultdict(list)
        for larger, smaller in large:
            groups[larger].append(smaller)
        graph = [e for node, ns in groups.items() for e in cc._small_star(node, ns)]
        counts.append(len(graph))
    raise AssertionError(f"no convergence in {max_rounds} rounds")


def random_graph(rng, nodes, edges, prefix=""):
    ids = [f"{prefix}{rng.getrandbits(48):012x}" for _ in range(nodes)]
    return [(rng.choice(ids), rng.choice(ids)) for _ in range(edges)]


def path(ids):
    return list(zip(ids, ids[1:]))


def run_components(edges, max_rounds, options=None):
    """Runs ConnectedComponents on the DirectRunner and asserts the union-find answer."""
    expected = sorted(union_find_labels(edges).items())
    with BeamTestPipeline(options=options) as p:
        labels = p | beam.Create(edges, reshuffle=False) | ConnectedComponents(max_rounds=max_rounds)
        assert_that(labels, equal_to(expected))


# --- the algorithm, in memory -------------------------------------------------------------


def test_steps_converge_to_union_find_labels_on_many_random_graphs():
    rng = random.Random(7)
    for trial in range(300):
        nodes = rng.randint(1, 60)
        edges = random_graph(rng, nodes, rng.randint(1, 2 * nodes))
        rounds, counts = rounds_in_memory(edges)
        assert rounds <= 8, (trial, rounds)
        # Duplicates are not dropped between rounds; they must never pile up.
        assert max(counts) == counts[0], (trial, counts)


def test_rounds_chains_need():
    rng = random.Random(3)
    increasing = [f"{i:05d}" for i in range(1000)]
    shuffled = [f"{rng.getrandbits(48):012x}" for _ in range(1000)]
    assert rounds_in_memory(path(increasing))[0] == 10
    assert rounds_in_memory(path(list(reversed(increasing))))[0] == 10
    assert rounds_in_memory(path(shuffled))[0] <= 9


# --- the Beam transform -------------------------------------------------------------------


def test_matches_union_find_on_seeded_random_graphs_with_two_workers():
    rng = random.Random(11)
    edges = (
        random_graph(rng, 400, 200, "sparse-")  # mostly pairs and small trees
        + random_graph(rng, 300, 330, "middle-")  # near the giant-component threshold
        + random_graph(rng, 100, 600, "dense-")  # one component, many cycles
    )
    rng.shuffle(edges)
    assert rounds_in_memory(edges)[0] <= 7
    options = PipelineOptions(direct_num_workers=2, direct_running_mode="multi_threading")
    run_components(edges, max_rounds=7, options=options)


def test_long_chains_in_shuffled_and_increasing_id_order():
    rng = random.Random(5)
    shuffled = [f"s{rng.getrandbits(48):012x}" for _ in range(1500)]
    increasing = [f"i{k:05d}" for k in range(1000)]
    edges = path(shuffled) + [(v, u) for u, v in path(increasing)]  # one chain written backwards
    rng.shuffle(edges)
    assert rounds_in_memory(edges)[0] <= 11
    run_components(edges, max_rounds=11)


def test_stars_small_components_duplicate_edges_and_self_loops():
    edges = []
    edges += [("m-hub", f"m-leaf{k:03d}") for k in range(300)]  # hub is the largest id
    edges += [("a-hub", f"a-leaf{k:03d}") for k in range(300)]  # hub is the smallest id
    edges += [(f"a-leaf{k:03d}", "a-hub") for k in range(0, 300, 3)]  # the same edges reversed
    edges += [(f"pair{k:03d}a", f"pair{k:03d}b") for k in range(200)]
    edges += [(f"tri{k:03d}{x}", f"tri{k:03d}{y}") for k in range(100) for x, y in ("ab", "bc", "ca")]
    edges += [("pair000a", "pair000b")] * 5  # repeated
    edges += [("alone", "alone"), ("loop-x", "loop-x"), ("loop-x", "loop-y"), ("m-hub", "m-hub")]
    random.Random(2).shuffle(edges)
    assert rounds_in_memory(edges)[0] <= 3
    run_components(edges, max_rounds=3)


def test_empty_input_gives_no_labels():
    with BeamTestPipeline() as p:
        labels = p | beam.Create([], reshuffle=False) | ConnectedComponents(max_rounds=1)
        assert_that(labels, equal_to([]))


RELEASED = []  # what got past the transform; the in-process runner shares this module


def test_too_few_rounds_fails_loudly_and_releases_nothing():
    ids = [f"{k:04d}" for k in range(200)]
    assert rounds_in_memory(path(ids))[0] > 3
    RELEASED.clear()
    with pytest.raises(Exception, match=r"did not converge within max_rounds=3.*ConnectedComponents\(max_rounds=6\)"):
        with BeamTestPipeline() as p:
            labels = p | beam.Create(path(ids), reshuffle=False) | ConnectedComponents(max_rounds=3)
            labels | beam.Map(RELEASED.append)
    assert RELEASED == []


def test_not_converged_error_names_the_failure():
    with pytest.raises(ComponentsNotConverged, match="max_rounds=7"):
        next(cc._ReleaseIfConverged(7).process(("b", "a"), (2, "'b' has label 'b', but ...")))
    assert list(cc._ReleaseIfConverged(7).process(("b", "a"), (0, None))) == [("b", "a")]


def test_bad_arguments_and_edges_are_rejected():
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="max_rounds must be a positive integer"):
            ConnectedComponents(max_rounds=bad)
    for edge in (("a", 1), ("a",), "ab", ("a", "b", "c")):
        with pytest.raises(TypeError, match=r"\(str, str\) pairs"):
            cc._checked_edge(edge)
    assert cc._checked_edge(["b", "a"]) == ("b", "a")

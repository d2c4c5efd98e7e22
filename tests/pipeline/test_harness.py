"""A finished stage leaves no output buffer behind in the worker (pipeline.harness)."""

from __future__ import annotations

import gc

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.worker.bundle_processor import DataOutputOperation
from apache_beam.testing.util import assert_that, equal_to

from pipeline.curate import local_runner
from pipeline.harness import release_finished_output_streams


_HELD: list[list[int]] = []


def _note_held_output_streams(_) -> None:
    """The sizes of the streams that output operations in this process still hold."""
    _HELD.append([op.output_stream.size() for op in gc.get_objects()
                  if isinstance(op, DataOutputOperation) and getattr(op, "output_stream", None) is not None])


def test_a_finished_stage_keeps_no_output_stream():
    assert release_finished_output_streams()  # installed, and installing again is harmless
    options = PipelineOptions([])  # the in-process runner: the worker's objects are in this process
    p = beam.Pipeline(runner=local_runner(options), options=options)
    # The first stages send 2 MB to the runner's shuffle. The last stage sends nothing back, so
    # every output operation it finds belongs to a stage that has finished.
    grouped = (p | beam.Create(range(200)) | beam.Map(lambda i: (i % 4, "x" * 10_000))
               | beam.GroupByKey() | beam.MapTuple(lambda key, values: (key, sum(map(len, values)))))
    assert_that(grouped, equal_to([(k, 500_000) for k in range(4)]))
    grouped | beam.combiners.ToList() | beam.Map(_note_held_output_streams)
    _HELD.clear()
    p.run().wait_until_finish()
    assert _HELD == [[]]

"""A memory fix for Beam's Python SDK harness, installed in every worker that runs winnow's code.

The harness keeps each stage's bundle processor after the stage's bundle, to reuse it. When a
bundle finishes, the processor's DataOutputOperation closes the stream that carried its output
to the runner but keeps a reference to it, and the stream keeps its buffer: malloc'd by
apache_beam.coders.stream, doubled as output is written, cleared on each flush but never
shrunk. So every finished stage that sent anything keeps a buffer as large as its largest
output between two flushes (the flush threshold is 10 MB, so up to 16 MiB of capacity), for
the life of the worker. A batch pipeline runs most stages once, so a worker's memory grows
with the data, stage after stage, until each buffer reaches the threshold. In winnow's dedup
of 100,000 documents (2 workers), each of the 48 stages of connected components kept about
0.7 MiB this way (its share of the edges); with the fix the per-worker peak fell from 454 to
409 MiB, level with a 10,000-document run (405 MiB).

The fix drops the reference when the operation finishes, which frees the buffer. Nothing
reads the stream after finish: the harness gives the operation a new one
(`set_output_stream`) before the stage's next bundle writes anything. If a Beam release
changes these internals, the fix stands aside and Beam's behaviour is unchanged.
"""

from __future__ import annotations

_MARK = "_winnow_releases_output_stream"


def release_finished_output_streams() -> bool:
    """Install the fix in this process (idempotent). Returns whether it is installed."""
    try:
        from apache_beam.runners.worker.bundle_processor import DataOutputOperation
    except ImportError:
        return False
    finish = DataOutputOperation.finish
    if getattr(finish, _MARK, False):
        return True
    if not callable(getattr(DataOutputOperation, "set_output_stream", None)):
        return False  # not the harness this was written against

    def finish_and_release(self):
        result = finish(self)
        self.output_stream = None  # frees the closed stream's buffer
        return result

    setattr(finish_and_release, _MARK, True)
    finish_and_release.__doc__ = finish.__doc__
    DataOutputOperation.finish = finish_and_release
    return True


__all__ = ["release_finished_output_streams"]

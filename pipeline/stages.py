"""The pipeline's stages as Beam composite transforms over the pure functions of each stage module.

Every stage returns three outputs: kept documents, rejections (dropped or failed, with the
reason) and a tally, one small dict per bundle with the stage's counts. The tallies are
what `stats.json` is built from, so the accounting is data in the pipeline and comes out
the same on every runner. The same counts go to Beam counters for live monitoring.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from pipeline import readers
from pipeline.decode import DecodeError, decode_html, is_textual
from pipeline.document import Document, Drop, Outcome, Rejection, Stage, document_id
from pipeline.extract import (
    ExtractionTimeout, ExtractReason, IsolatedExtractor, extract_main_text, is_html,
)
from pipeline.harness import release_finished_output_streams
from pipeline.language import LanguageIdentifier, LanguageReason, language_verdict, model_path
from pipeline.quality import filter_quality
from pipeline.repair import RepairNote, RepairReason, repair_text

release_finished_output_streams()  # in each process that runs this module's code (see pipeline.harness)

KEPT = "kept"
REJECTED = "rejected"
TALLY = "tally"
NAMESPACE = "winnow"

Count = Callable[[str, int], None]


def tally_key(stage: str, outcome: str, reason: str = "") -> str:
    """Counter name: stage.outcome[.reason]; notes use stage 'note'."""
    return f"{stage}.{outcome}.{reason}" if reason else f"{stage}.{outcome}"


def record_worker_memory(stage: str) -> None:
    """The worker process's peak resident memory so far, as a Beam distribution named `<stage>.worker_peak_rss_mib`.

    Recorded when a bundle finishes, so the distribution's maximum is the largest any worker
    reached by the end of that stage's work, on any runner.
    """
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    Metrics.distribution(NAMESPACE, f"{stage}.worker_peak_rss_mib").update(int(peak_kib // 1024))


def _global(value) -> WindowedValue:
    return WindowedValue(value, MIN_TIMESTAMP, [GlobalWindow()])


def timed(items: Iterable, add: Callable[[float], None]) -> Iterator:
    """The items of an iterator, adding the seconds spent producing them (not those spent by
    the consumer between items) to `add`."""
    iterator = iter(items)
    while True:
        start = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            add(time.perf_counter() - start)
            return
        add(time.perf_counter() - start)
        yield item


class AccountedFn(beam.DoFn):
    """Base DoFn: counts every element in, and every outcome, per bundle.

    It also adds the seconds its own work took (`busy`) to the Beam counter `<stage>.busy_ms`:
    what a stage costs per document, for metrics.json and the capacity model. Timing is not
    deterministic, so it never goes into stats.json.
    """

    stage: Stage

    def busy(self, seconds: float) -> None:
        self._busy += seconds

    def start_bundle(self):
        self._busy = 0.0
        self._tally: Counter = Counter()
        self._in_key = tally_key(self.stage, "in")
        self._kept_key = tally_key(self.stage, Outcome.KEPT)

    def note(self, name: str, count: int = 1) -> None:
        self._tally[tally_key("note", name)] += count

    def kept(self, doc: Document) -> Document:
        self._tally[self._kept_key] += 1
        return doc

    def rejected(self, doc: Document, outcome: Outcome, reason: str, detail: str = "") -> TaggedOutput:
        self._tally[tally_key(self.stage, outcome, reason)] += 1
        return TaggedOutput(REJECTED, Rejection(document=doc, stage=self.stage, outcome=outcome, reason=reason, detail=detail))

    def finish_bundle(self):
        if self._busy:
            Metrics.counter(NAMESPACE, f"{self.stage}.busy_ms").inc(round(self._busy * 1000))
            self._busy = 0.0
        if not self._tally:
            return
        record_worker_memory(self.stage)
        for name, value in self._tally.items():
            Metrics.counter(NAMESPACE, name).inc(value)
        yield TaggedOutput(TALLY, _global(dict(self._tally)))
        self._tally = Counter()


class DocumentFn(AccountedFn):
    """One document in, kept or rejected out; an exception fails just that document.

    Documents are taken in small batches: a batch goes through one stage before the next
    stage sees any of it, so each stage's code and tables (the fastText model, ftfy's and the
    quality rules' regexes) stay hot in the CPU caches instead of being evicted by the stage
    before. A batch ends at batch_size documents or batch_bytes of payload, and a bundle's
    last, partial batch is flushed when the bundle finishes.
    """

    batch_size = 64
    batch_bytes = 16 << 20

    def __init__(self, config):
        self._config = config  # the stage's own section of the job

    def start_bundle(self):
        super().start_bundle()
        self._pending: list[Document] = []
        self._pending_bytes = 0

    def apply(self, doc: Document) -> Document | Drop:
        raise NotImplementedError

    def process(self, doc: Document) -> Iterator:
        self._pending.append(doc)
        self._pending_bytes += doc.payload_size
        if len(self._pending) >= self.batch_size or self._pending_bytes >= self.batch_bytes:
            yield from self._flush()

    def finish_bundle(self):
        for output in self._flush():
            if isinstance(output, TaggedOutput):
                yield TaggedOutput(output.tag, _global(output.value))
            else:
                yield _global(output)
        yield from super().finish_bundle()

    def _flush(self) -> Iterator:
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        for doc in pending:
            yield from self._one(doc)

    def _one(self, doc: Document) -> Iterator:
        self._tally[self._in_key] += 1
        start = time.perf_counter()
        try:
            result = self.apply(doc)
        except Exception as error:  # a record boundary: count it, dead-letter it, go on
            self._busy += time.perf_counter() - start
            yield self.rejected(doc, Outcome.FAILED, type(error).__name__, str(error)[:2000])
            return
        self._busy += time.perf_counter() - start
        if isinstance(result, Drop):
            yield self.rejected(doc, Outcome.DROPPED, result.reason, result.detail)
        else:
            yield self.kept(result)


def _stage_outputs(pcoll, label: str, fn: beam.DoFn) -> dict:
    results = pcoll | label >> beam.ParDo(fn).with_outputs(REJECTED, TALLY, main=KEPT)
    return {KEPT: results[KEPT], REJECTED: results[REJECTED], TALLY: results[TALLY]}


class DocumentStage(beam.PTransform):
    """A stage: its DocumentFn, built from the stage's own config, with kept/rejected/tally outputs."""

    step: str
    fn_class: type[DocumentFn]

    def __init__(self, config):
        super().__init__()
        self._fn = self.fn_class(config)

    def expand(self, docs):
        return _stage_outputs(docs, self.step, self._fn)


@dataclass(frozen=True)
class InputFile:
    path: str  # as matched
    key: str  # the path below the glob's fixed prefix: the part of the id that survives a move
    format: str


class _ReadFn(AccountedFn):
    stage = Stage.READ

    def __init__(self, text_field: str, html_field: str, url_field: str, date_field: str):
        self._fields = dict(text_field=text_field, html_field=html_field, url_field=url_field, date_field=date_field)

    def process(self, item: InputFile) -> Iterator:
        try:
            with FileSystems.open(item.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                for record in timed(self._records(f, item), self.busy):
                    self._tally[self._in_key] += 1
                    if isinstance(record, Rejection):
                        yield self.rejected(record.document, record.outcome, record.reason, record.detail)
                    else:
                        yield self.kept(record)
        except Exception as error:  # a whole file that cannot be read is one failed record
            problem = Document(id=document_id(f"{item.key}@unreadable", -1), source=item.path, record=-1, offset=-1)
            self._tally[self._in_key] += 1
            yield self.rejected(problem, Outcome.FAILED, readers.ReadReason.UNREADABLE_FILE,
                                f"{type(error).__name__}: {error}")

    def _records(self, f, item: InputFile):
        if item.format in ("warc", "wet"):
            return readers.iter_warc(f, item.path, item.key, self.note, wet=item.format == "wet")
        if item.format == "jsonl":
            return readers.iter_jsonl(f, item.path, item.key, self.note, gzipped=item.path.endswith(".gz"), **self._fields)
        return readers.iter_parquet(f, item.path, item.key, **self._fields)


class ReadDocuments(beam.PTransform):
    """Input files to documents, with file-level problems as read-stage rejections."""

    def __init__(self, text_field: str, html_field: str, url_field: str, date_field: str, reshuffle: bool):
        super().__init__()
        self._fn = _ReadFn(text_field, html_field, url_field, date_field)
        self._reshuffle = reshuffle

    def expand(self, files):
        # Files go out one per worker; with reshuffle, so do the records of one big file.
        outputs = _stage_outputs(files | "SpreadFiles" >> beam.Reshuffle(), "ReadRecords", self._fn)
        if self._reshuffle:
            outputs[KEPT] = outputs[KEPT] | "SpreadRecords" >> beam.Reshuffle()
        return outputs


class _DecodeFn(DocumentFn):
    stage = Stage.DECODE

    def apply(self, doc: Document) -> Document | Drop:
        if doc.payload is None or not is_textual(doc.content_type, doc.payload):
            return doc  # already text, or binary that extraction will turn away
        try:
            decoded = decode_html(doc.payload, doc.http_charset, self._config)
        except DecodeError as error:
            return Drop(error.reason, str(error))
        for name in decoded.notes:
            self.note(name)
        return doc.replace(html=decoded.text, charset=decoded.charset)


class Decode(DocumentStage):
    step = "DecodeBytes"
    fn_class = _DecodeFn


class _ExtractFn(DocumentFn):
    stage = Stage.EXTRACT

    _extractor: IsolatedExtractor | None = None

    def setup(self):
        if self._config.timeout_s > 0:
            self._extractor = IsolatedExtractor(self._config)
            self._extractor.start()

    def teardown(self):
        if self._extractor is not None:
            self._extractor.close()

    def _flush(self) -> Iterator:
        # Each document is screened once here; the batch's pages then go to the extractor child
        # together, so that it goes from one page to the next without waiting for this process
        # (tested to give the same texts).
        start = time.perf_counter()
        self._screened = {id(doc): self._screen(doc) for doc in self._pending}
        pages = [doc for doc in self._pending if self._screened[id(doc)] is None]
        if self._extractor is not None and pages:
            try:
                texts = self._extractor.extract_many([(doc.html, doc.url) for doc in pages])
            except Exception as error:  # the child could not even start: each page fails
                texts = [error] * len(pages)
            self._texts = {id(doc): text for doc, text in zip(pages, texts)}
        self.busy(time.perf_counter() - start)
        yield from super()._flush()

    def _screen(self, doc: Document) -> Document | Drop | None:
        """What becomes of a document without extraction, or None when it goes to trafilatura."""
        config = self._config
        if doc.html is None:
            if doc.text is not None:
                return doc  # plain-text input (WET, JSONL text)
            return Drop(ExtractReason.NOT_HTML, f"payload is {doc.content_type or 'of unknown type'}")
        if doc.payload is not None and not is_html(doc.content_type, doc.payload, config):
            return Drop(ExtractReason.NOT_HTML, f"payload is {doc.content_type or 'of unknown type'}")
        if doc.payload_size > config.max_bytes:
            return Drop(ExtractReason.TOO_LARGE, f"{doc.payload_size} bytes > max_bytes {config.max_bytes}")
        return None

    def apply(self, doc: Document) -> Document | Drop:
        config = self._config
        screened = self._screened.pop(id(doc))
        if screened is not None:
            return screened
        if self._extractor is not None:
            text = self._texts.pop(id(doc))
            if isinstance(text, ExtractionTimeout):
                return Drop(ExtractReason.TIMEOUT, str(text))
            if isinstance(text, Exception):
                raise text
        else:
            text = extract_main_text(doc.html, doc.url, config)
        if not text:
            return Drop(ExtractReason.NO_TEXT, "trafilatura found no main text")
        if len(text) < config.min_chars:
            return Drop(ExtractReason.TOO_SHORT, f"{len(text)} characters < min_chars {config.min_chars}")
        return doc.replace(text=text, html=None, payload=None)


class Extract(DocumentStage):
    step = "ExtractMainText"
    fn_class = _ExtractFn


class _RepairFn(DocumentFn):
    stage = Stage.REPAIR

    def apply(self, doc: Document) -> Document | Drop:
        text = repair_text(doc.text, self._config)
        if not text.strip():
            return Drop(RepairReason.EMPTY_AFTER_REPAIR)
        if text != doc.text:
            self.note(RepairNote.CHANGED)
        return doc.replace(text=text, html=None, payload=None)


class Repair(DocumentStage):
    step = "RepairText"
    fn_class = _RepairFn


class _LanguageFn(DocumentFn):
    stage = Stage.LANGUAGE

    _identifier: LanguageIdentifier | None = None

    def setup(self):
        path = model_path(self._config)
        if "://" in path:
            # fastText reads local files only: stage a remote model into the worker's temp dir.
            local = os.path.join(tempfile.mkdtemp(prefix="winnow-lid-"), os.path.basename(path))
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as src, open(local, "wb") as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
            path = local
        self._identifier = LanguageIdentifier(path)

    def apply(self, doc: Document) -> Document | Drop:
        language, score = self._identifier.identify(doc.text, self._config.max_chars)
        doc = doc.replace(language=language, language_score=score)
        reason = language_verdict(language, score, self._config)
        if reason is not None:
            return Drop(reason, f"{language} at {score:.3f}")
        return doc


class IdentifyLanguage(DocumentStage):
    step = "IdentifyLanguage"
    fn_class = _LanguageFn


class _QualityFn(DocumentFn):
    stage = Stage.QUALITY

    def apply(self, doc: Document) -> Document | Drop:
        result = filter_quality(doc.text, doc.language, self._config, self.note)
        if result.reason is not None:
            return Drop(result.reason)
        return doc.replace(text=result.text)


class FilterQuality(DocumentStage):
    step = "ApplyQualityRules"
    fn_class = _QualityFn


__all__ = [
    "KEPT", "REJECTED", "TALLY", "InputFile", "ReadDocuments", "Decode", "Extract", "Repair",
    "IdentifyLanguage", "FilterQuality", "LanguageReason", "tally_key",
]

"""Main-text extraction with trafilatura, under a size limit and a time limit per page.

The time limit is real: extraction runs in a child process that is killed and restarted
when a page takes too long. Threads cannot be interrupted inside lxml, and signals only
work on the main thread, which Beam's workers do not run user code on.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import select
import struct
import subprocess
import sys
from dataclasses import dataclass

import trafilatura

from pipeline.decode import has_binary_signature


class ExtractReason:
    NOT_HTML = "not_html"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    NO_TEXT = "no_text"
    TOO_SHORT = "too_short"


@dataclass(frozen=True, kw_only=True)
class ExtractConfig:
    max_bytes: int = 2_000_000  # pages above this payload size are dropped before parsing
    timeout_s: float = 10.0  # wall-clock limit per page; 0 runs trafilatura in-process with no limit
    min_chars: int = 1  # extracted text shorter than this is dropped as too short
    favor_precision: bool = True  # trafilatura: leave out uncertain blocks (FineWeb's choice)
    favor_recall: bool = False  # trafilatura: keep uncertain blocks
    fast: bool = False  # trafilatura: skip the readability/jusText fallbacks
    include_comments: bool = False  # trafilatura: keep user comments under articles
    include_tables: bool = True  # trafilatura: keep text in <table>
    html_types: tuple[str, ...] = ("text/html", "application/xhtml+xml")  # media types treated as HTML

    def __post_init__(self):
        if self.max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if self.timeout_s < 0:
            raise ValueError("timeout_s must be >= 0 (0 turns the limit off)")
        if self.favor_precision and self.favor_recall:
            raise ValueError("favor_precision and favor_recall cannot both be true")


def is_html(content_type: str | None, payload: bytes | None, config: ExtractConfig) -> bool:
    """Whether a payload is HTML: a known binary signature says no, then the media type decides."""
    if has_binary_signature(payload):
        return False
    if content_type is None:
        return (payload or b"").lstrip()[:1] == b"<"
    return content_type in config.html_types


def extract_main_text(html: str, url: str | None, config: ExtractConfig) -> str | None:
    """trafilatura's main text of a page, or None when it finds none."""
    return trafilatura.extract(
        html,
        url=url,
        favor_precision=config.favor_precision,
        favor_recall=config.favor_recall,
        fast=config.fast,
        include_comments=config.include_comments,
        include_tables=config.include_tables,
        include_images=False,
        include_links=False,
        with_metadata=False,
        deduplicate=False,
        output_format="txt",
    )


class ExtractionTimeout(TimeoutError):
    pass


class ExtractorCrashed(RuntimeError):
    pass


_HEADER = struct.Struct("<Q")


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    for part in (_HEADER.pack(len(data)), data):
        view = memoryview(part)
        while view:  # a raw pipe may take part of a large write
            view = view[stream.write(view):]
    stream.flush()


def _read_exact(stream, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(stream):
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    return pickle.loads(_read_exact(stream, size))


class IsolatedExtractor:
    """Runs `extract_main_text` in a child process, killing it when a page overruns the limit."""

    def __init__(self, config: ExtractConfig):
        self._config = config
        self._process: subprocess.Popen | None = None
        self.restarts = 0

    def _start(self) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.extract"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # Unbuffered: the parent waits on the pipe with select, which cannot see answers
            # that a buffered reader has already taken in.
            bufsize=0,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        _send(process.stdin, dataclasses.asdict(self._config))
        return process

    def start(self) -> None:
        """Start the child now (it imports trafilatura while the caller goes on); `extract` restarts it as needed."""
        if self._process is None or self._process.poll() is not None:
            self._process = self._start()

    def extract(self, html: str, url: str | None) -> str | None:
        result = self.extract_many([(html, url)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def extract_many(self, pages: list[tuple[str, str | None]]) -> list[str | None | Exception]:
        """The main text of each (html, url) page, in order; a page that overran the limit or
        crashed the child gets an ExtractionTimeout or ExtractorCrashed in its place.

        The pages go to the child in one message and it answers each as it finishes, so it
        never waits for the parent between pages. The limit still holds per page: a page's
        clock starts when the answer before it arrives. After a timeout or a crash the child
        is restarted and the pages after the one that failed are sent again.
        """
        results: list[str | None | Exception] = []
        todo = list(pages)
        while todo:
            self.start()
            process = self._process
            try:
                _send(process.stdin, todo)
            except (BrokenPipeError, OSError) as error:
                self.close()
                results.append(ExtractorCrashed(f"extractor process died before the page was sent: {error}"))
                todo = todo[1:]
                continue
            for index in range(len(todo)):
                failure = self._answer(process)
                if isinstance(failure, tuple):
                    status, value = failure
                    results.append(value if status == "ok" else ExtractorCrashed(value))
                    continue
                results.append(failure)
                todo = todo[index + 1:]
                break
            else:
                todo = []
        return results

    def _answer(self, process: subprocess.Popen) -> tuple[str, str | None] | Exception:
        """The child's next answer, or the failure that ended it (the child is then stopped)."""
        ready, _, _ = select.select([process.stdout], [], [], self._config.timeout_s)
        if not ready:
            self.close()
            self.restarts += 1
            return ExtractionTimeout(f"extraction took longer than {self._config.timeout_s:g} s")
        try:
            return _receive(process.stdout)
        except EOFError:
            code = process.poll()
            self.close()
            self.restarts += 1
            return ExtractorCrashed(f"extractor process exited with code {code}")

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for stream in (self._process.stdin, self._process.stdout):
                stream.close()
            self._process = None


def _serve() -> None:
    """Child side: read a config, then answer each page of each list of (html, url) pages, one
    message per page, until stdin closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    # Anything a library prints must not corrupt the reply stream.
    sys.stdout = sys.stderr
    config = ExtractConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in _receive(stdin).items()})
    while True:
        try:
            pages = _receive(stdin)
        except EOFError:
            return
        for html, url in pages:
            try:
                reply = ("ok", extract_main_text(html, url, config))
            except Exception as error:  # reported to the parent, which fails just this record
                reply = ("error", f"{type(error).__name__}: {error}")
            _send(stdout, reply)


if __name__ == "__main__":
    _serve()

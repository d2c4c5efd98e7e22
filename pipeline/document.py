"""The one document record that flows through every stage, and what a rejection looks like."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime


class Stage(str, enum.Enum):
    """Pipeline stages in the order a document meets them."""

    READ = "read"
    DECODE = "decode"
    EXTRACT = "extract"
    REPAIR = "repair"
    LANGUAGE = "language"
    QUALITY = "quality"
    DEDUP = "dedup"

    def __str__(self) -> str:
        return self.value


STAGE_ORDER: tuple[Stage, ...] = tuple(Stage)


class Outcome(str, enum.Enum):
    KEPT = "kept"
    DROPPED = "dropped"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


def document_id(source_key: str, record: int) -> str:
    """Stable id: the same file name under the input root and record index give the same id anywhere."""
    digest = hashlib.blake2b(f"{source_key}\x00{record}".encode(), digest_size=16)
    return digest.hexdigest()


@dataclass(slots=True, kw_only=True)
class Document:
    """One input record on its way through the stages; later stages fill in later fields."""

    id: str
    source: str  # the input file, as matched
    record: int  # index of the record within its file (documents only, from 0)
    offset: int  # byte offset of the record in the file as stored; -1 when the format has none
    url: str | None = None
    crawl_date: datetime | None = None
    content_type: str | None = None  # media type from the HTTP header, lower case, no parameters
    http_charset: str | None = None  # charset parameter of the HTTP Content-Type
    payload: bytes | None = None  # raw body; dropped once decoded
    payload_size: int = 0
    html: str | None = None  # decoded HTML; dropped once extracted
    text: str | None = None
    charset: str | None = None  # how the payload was decoded
    language: str | None = None
    language_score: float | None = None
    notes: tuple[tuple[str, int], ...] = ()  # events worth counting that are not outcomes

    def replace(self, **changes) -> "Document":
        return dataclasses.replace(self, **changes)

    def noted(self, name: str, count: int = 1) -> "Document":
        return dataclasses.replace(self, notes=self.notes + ((name, count),))


@dataclass(slots=True, frozen=True, kw_only=True)
class Rejection:
    """A document that did not make it: where, and why."""

    document: Document
    stage: Stage
    outcome: Outcome  # DROPPED or FAILED
    reason: str  # a named reason for drops; the error type for failures
    detail: str = ""  # for failures, the error message


@dataclass(slots=True, frozen=True)
class Drop:
    """What a stage function returns to drop a document for a named reason."""

    reason: str
    detail: str = ""

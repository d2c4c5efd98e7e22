"""Record readers for WARC, WET, JSONL and Parquet files; pure iterators over an open binary file.

Each reader yields `Document`s and, for problems found in the file itself (truncation, a
malformed record, an unparseable line), `Rejection`s of the read stage. A record is never
silently skipped: WARC records that are not documents (requests, metadata) are counted
through the `count` callback.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import BinaryIO

import pyarrow.parquet as pq
from fastwarc.warc import ArchiveIterator, WarcRecordType

from pipeline.document import Document, Outcome, Rejection, Stage, document_id


class ReadReason:
    EMPTY_FILE = "empty_file"
    TRUNCATED_GZIP = "truncated_gzip"
    MALFORMED_WARC = "malformed_warc"
    MALFORMED_JSON = "malformed_json"
    NO_CONTENT_FIELD = "no_content_field"
    WRONG_FIELD_TYPE = "wrong_field_type"
    NULL_CONTENT = "null_content"
    HTTP_STATUS = "http_status_not_ok"
    UNREADABLE_FILE = "unreadable_file"


FORMATS = ("warc", "wet", "jsonl", "parquet")
GZIP_MAGIC = b"\x1f\x8b\x08"

Item = Document | Rejection
Count = Callable[[str, int], None]


def detect_format(path: str) -> str:
    """Infer the format from the file name; WET files are named *.wet or *.wet.gz."""
    name = path.rsplit("/", 1)[-1].lower()
    for suffix in (".gz", ".zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(".wet"):
        return "wet"
    if name.endswith((".warc", ".arc")):
        return "warc"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ValueError(f"cannot tell the format of {path!r} from its name; set input.format")


def _problem(source: str, source_key: str, offset: int, outcome: Outcome, reason: str, detail: str) -> Rejection:
    # A file-level problem is a record of its own, with an id of its own, so the books balance.
    doc = Document(id=document_id(f"{source_key}@{offset}", -1), source=source, record=-1, offset=offset)
    return Rejection(document=doc, stage=Stage.READ, outcome=outcome, reason=reason, detail=detail)


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _split_content_type(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    media, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip():
            charset = val.strip().strip("\"'").lower()
    return media.strip().lower() or None, charset


def _next_gzip_member(f: BinaryIO, after: int) -> int | None:
    """Offset of the first valid gzip member that starts at or after `after`, or None."""
    pos = max(after, 0)
    while True:
        f.seek(pos)
        chunk = f.read(1 << 20)
        if len(chunk) < len(GZIP_MAGIC):
            return None
        hit = chunk.find(GZIP_MAGIC)
        if hit < 0:
            pos += len(chunk) - len(GZIP_MAGIC) + 1
            continue
        if _gzip_member_starts_at(f, pos + hit):
            return pos + hit
        pos += hit + 1


def _gzip_member_starts_at(f: BinaryIO, pos: int) -> bool:
    f.seek(pos)
    head = f.read(4096)
    try:
        zlib.decompressobj(31).decompress(head, 16)
    except zlib.error:
        return False
    return True


def _gzip_tail_complete(f: BinaryIO, start: int) -> bool:
    """Whether every gzip member from `start` to the end of the file is complete."""
    f.seek(start)
    decompressor = zlib.decompressobj(31)
    fed = False
    buf = f.read(1 << 20)
    while buf:
        try:
            decompressor.decompress(buf)
        except zlib.error:
            return False
        fed = True
        if decompressor.eof:
            rest = decompressor.unused_data
            decompressor = zlib.decompressobj(31)
            fed = False
            if rest.strip(b"\x00"):
                buf = rest
                continue
        buf = f.read(1 << 20)
    return not fed


def iter_warc(f: BinaryIO, source: str, source_key: str, count: Count, *, wet: bool = False) -> Iterator[Item]:
    """Documents from a WARC (response records) or WET (conversion records) file, gzipped or not."""
    head = f.read(3)
    if not head:
        yield _problem(source, source_key, 0, Outcome.DROPPED, ReadReason.EMPTY_FILE, "the file is empty")
        return
    gzipped = head == GZIP_MAGIC
    wanted = WarcRecordType.conversion if wet else WarcRecordType.response | WarcRecordType.resource
    record_index = 0
    start = 0
    # Each document is held back until the next record header parses or the gzip tail checks
    # out: a record cut off by truncation must fail, not pass as a short page.
    pending: Document | None = None
    while True:
        f.seek(start)
        last_pos = None
        try:
            iterator = ArchiveIterator(f, parse_http=not wet, auto_decode="all", fsspec_args=False)
            for record in iterator:
                last_pos = record.stream_pos
                if pending is not None:
                    yield pending
                    pending = None
                if not record.record_type & wanted:
                    count(f"read.skipped_{record.record_type}_records", 1)
                    continue
                pending = _warc_document(record, source, source_key, record_index, last_pos, wet)
                record_index += 1
        except OSError as error:
            if pending is not None:
                yield pending
                pending = None
            where = last_pos if last_pos is not None else start
            yield _problem(
                source, source_key, where + 1, Outcome.FAILED, ReadReason.MALFORMED_WARC,
                f"unparseable WARC record after offset {where}: {error}",
            )
            resume = _resume_after(f, where if last_pos is not None else start - 1, gzipped, skip_one=last_pos is not None)
            if resume is None:
                break
            start = resume
            continue
        where = last_pos if last_pos is not None else start
        if gzipped and not _gzip_tail_complete(f, where):
            detail = f"gzip data ends mid-record at offset {where}; the record and anything after it are lost"
            if pending is not None and pending.offset == where:
                yield Rejection(document=pending, stage=Stage.READ, outcome=Outcome.FAILED,
                                reason=ReadReason.TRUNCATED_GZIP, detail=detail)
                pending = None
            else:
                yield _problem(source, source_key, where + 1, Outcome.FAILED, ReadReason.TRUNCATED_GZIP, detail)
        if pending is not None:
            yield pending
        break


def _resume_after(f: BinaryIO, position: int, gzipped: bool, skip_one: bool) -> int | None:
    """Where to go on after a malformed record: the start of the record after the bad one."""
    if gzipped:
        bad = _next_gzip_member(f, position + 1) if skip_one else max(position + 1, 0)
        if bad is None:
            return None
        return _next_gzip_member(f, bad + 1)
    f.seek(max(position + 1, 0))
    data = f.read()
    base = max(position + 1, 0)
    first = data.find(b"\nWARC/1.") if skip_one else 0
    if first < 0:
        return None
    second = data.find(b"\nWARC/1.", first + 1)
    return None if second < 0 else base + second + 1


def _warc_document(record, source: str, source_key: str, index: int, offset: int, wet: bool) -> Document:
    headers = record.headers
    url = headers.get("WARC-Target-URI")
    date = _parse_date(headers.get("WARC-Date"))
    if wet:
        body = record.reader.read()
        return Document(
            id=document_id(source_key, index), source=source, record=index, offset=offset, url=url,
            crawl_date=date, content_type="text/plain", payload_size=len(body),
            text=body.decode("utf-8", errors="replace"), charset="utf-8",
        )
    content_type, charset = None, None
    status = None
    if record.is_http:
        http = record.http_headers
        status = http.status_code
        content_type, charset = _split_content_type(http.get("Content-Type"))
    else:
        content_type, charset = _split_content_type(headers.get("Content-Type"))
    body = record.reader.read()
    doc = Document(
        id=document_id(source_key, index), source=source, record=index, offset=offset, url=url,
        crawl_date=date, content_type=content_type, http_charset=charset, payload=body,
        payload_size=len(body),
    )
    if status is not None and status != 200:
        doc = doc.noted(f"read.http_status_{status}", 1)
    return doc


def iter_jsonl(
    f: BinaryIO, source: str, source_key: str, count: Count, *, text_field: str, html_field: str,
    url_field: str, date_field: str, gzipped: bool,
) -> Iterator[Item]:
    """Documents from JSON lines; each line holds a text or an html field."""
    stream: BinaryIO = gzip.GzipFile(fileobj=f) if gzipped else f
    offset = 0
    index = 0
    seen_any = False
    try:
        for line in stream:
            line_offset = offset if not gzipped else -1
            offset += len(line)
            if not line.strip():
                count("read.blank_lines", 1)
                continue
            seen_any = True
            record_index = index
            index += 1
            doc = Document(id=document_id(source_key, record_index), source=source, record=record_index, offset=line_offset)
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                yield Rejection(document=doc.replace(payload=line, payload_size=len(line)), stage=Stage.READ,
                                outcome=Outcome.FAILED, reason=ReadReason.MALFORMED_JSON, detail=str(error))
                continue
            yield _row_document(doc, row, text_field, html_field, url_field, date_field, len(line))
    except (EOFError, OSError, zlib.error) as error:
        yield _problem(source, source_key, offset, Outcome.FAILED, ReadReason.TRUNCATED_GZIP,
                       f"compressed stream ends early after line {index}: {error}")
        return
    if not seen_any:
        yield _problem(source, source_key, 0, Outcome.DROPPED, ReadReason.EMPTY_FILE, "the file holds no records")


def _row_document(doc: Document, row, text_field: str, html_field: str, url_field: str,
                  date_field: str, size: int) -> Item:
    if not isinstance(row, dict):
        return Rejection(document=doc, stage=Stage.READ, outcome=Outcome.FAILED,
                         reason=ReadReason.MALFORMED_JSON, detail="a line is not a JSON object")
    url = row.get(url_field)
    date = row.get(date_field)
    doc = doc.replace(url=url if isinstance(url, str) else None,
                      crawl_date=_parse_date(date) if isinstance(date, str) else None,
                      payload_size=size)
    if text_field in row:
        value = row[text_field]
        kind = "text"
    elif html_field in row:
        value = row[html_field]
        kind = "html"
    else:
        return Rejection(document=doc, stage=Stage.READ, outcome=Outcome.DROPPED,
                         reason=ReadReason.NO_CONTENT_FIELD,
                         detail=f"neither {text_field!r} nor {html_field!r} is present")
    if value is None:
        return Rejection(document=doc, stage=Stage.READ, outcome=Outcome.DROPPED,
                         reason=ReadReason.NULL_CONTENT, detail=f"{kind} field is null")
    if not isinstance(value, str):
        return Rejection(document=doc, stage=Stage.READ, outcome=Outcome.FAILED,
                         reason=ReadReason.WRONG_FIELD_TYPE,
                         detail=f"{kind} field holds {type(value).__name__}, expected a string")
    if kind == "text":
        return doc.replace(text=value, content_type="text/plain", charset="utf-8")
    return doc.replace(html=value, content_type="text/html", charset="utf-8")


def iter_parquet(
    f: BinaryIO, source: str, source_key: str, *, text_field: str, html_field: str,
    url_field: str, date_field: str,
) -> Iterator[Item]:
    """Documents from a Parquet file, read one row group at a time."""
    parquet = pq.ParquetFile(f)
    names = set(parquet.schema_arrow.names)
    columns = [c for c in (text_field, html_field, url_field, date_field) if c in names]
    if text_field not in names and html_field not in names:
        raise ValueError(f"{source}: Parquet file has neither a {text_field!r} nor a {html_field!r} column")
    index = 0
    for batch in parquet.iter_batches(columns=columns, batch_size=1024):
        for row in batch.to_pylist():
            doc = Document(id=document_id(source_key, index), source=source, record=index, offset=-1)
            index += 1
            date = row.get(date_field)
            if isinstance(date, datetime):
                row[date_field] = date.isoformat()
            size = len(row.get(text_field) or row.get(html_field) or "")
            yield _row_document(doc, row, text_field, html_field, url_field, date_field, size)
    if index == 0:
        yield _problem(source, source_key, 0, Outcome.DROPPED, ReadReason.EMPTY_FILE, "the file holds no rows")

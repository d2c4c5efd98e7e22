"""The Arrow schemas of curated and rejected shards, and the rows that fill them."""

from __future__ import annotations

import pyarrow as pa

from pipeline.document import Document, Rejection


def _field(name: str, kind: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, kind, nullable=nullable, metadata={"description": doc})


CURATED_SCHEMA = pa.schema(
    [
        _field("id", pa.string(), "stable document id: blake2b-128 of input file name and record index, hex", False),
        _field("text", pa.string(), "extracted, repaired, filtered main text (UTF-8, NFC by default)", False),
        _field("url", pa.string(), "URL of the page, when the input has one"),
        _field("crawl_date", pa.timestamp("us", tz="UTC"), "crawl time (WARC-Date or the date field), when known"),
        _field("language", pa.string(), "language label from the language-ID model", False),
        _field("language_score", pa.float32(), "probability of that label", False),
        _field("source", pa.string(), "input file the document came from", False),
        _field("record", pa.int64(), "index of the document's record within that file, from 0", False),
        _field("offset", pa.int64(), "byte offset of the record in the stored file (compressed for .warc.gz); -1 if none", False),
        _field("content_type", pa.string(), "media type the server declared"),
        _field("charset", pa.string(), "charset the payload was decoded with"),
    ],
    metadata={"winnow.schema": "curated/1"},
)

REJECTED_SCHEMA = pa.schema(
    [
        _field("id", pa.string(), "document id (file-level problems get an id of their own)", False),
        _field("stage", pa.string(), "stage that rejected the document", False),
        _field("outcome", pa.string(), "'dropped' (a rule said no) or 'failed' (an error)", False),
        _field("reason", pa.string(), "named drop reason, or the error type for failures", False),
        _field("detail", pa.string(), "error message or extra context", False),
        _field("url", pa.string(), "URL of the page, when known"),
        _field("crawl_date", pa.timestamp("us", tz="UTC"), "crawl time, when known"),
        _field("source", pa.string(), "input file", False),
        _field("record", pa.int64(), "record index within the file; -1 for file-level problems", False),
        _field("offset", pa.int64(), "byte offset in the stored file; -1 if none", False),
        _field("content_type", pa.string(), "media type the server declared"),
        _field("payload", pa.binary(), "raw payload as read, cut at dead_letter.max_payload_bytes"),
        _field("payload_size", pa.int64(), "size of the full payload in bytes", False),
        _field("payload_truncated", pa.bool_(), "whether payload was cut", False),
        _field("text", pa.string(), "text at the point of rejection: plain text after extraction, or HTML given as text"),
    ],
    metadata={"winnow.schema": "rejected/1"},
)


CLUSTERS_SCHEMA = pa.schema(
    [
        _field("id", pa.string(), "document id", False),
        _field("cluster", pa.string(), "duplicate group: the smallest id among its members", False),
        _field("kind", pa.string(), "'url' (same URL), 'exact' (same normalised text) or 'near' (MinHash-LSH)", False),
        _field("kept", pa.bool_(), "whether this document is the one its group keeps", False),
        _field("kept_id", pa.string(), "id of the document the group keeps", False),
        _field("similarity", pa.float32(), "Jaccard similarity to the kept document, estimated from signatures (1 for url and exact)", False),
    ],
    metadata={"winnow.schema": "clusters/1"},
)


def curated_row(doc: Document) -> dict:
    return {
        "id": doc.id,
        "text": doc.text,
        "url": doc.url,
        "crawl_date": doc.crawl_date,
        "language": doc.language,
        "language_score": doc.language_score,
        "source": doc.source,
        "record": doc.record,
        "offset": doc.offset,
        "content_type": doc.content_type,
        "charset": doc.charset,
    }


def rejected_row(rejection: Rejection, max_payload_bytes: int) -> dict:
    doc = rejection.document
    payload = doc.payload
    truncated = payload is not None and len(payload) > max_payload_bytes
    # Before extraction the payload already holds the page; the decoded HTML would double it.
    text = doc.text if doc.text is not None else (doc.html if payload is None else None)
    return {
        "id": doc.id,
        "stage": str(rejection.stage),
        "outcome": str(rejection.outcome),
        "reason": rejection.reason,
        "detail": rejection.detail,
        "url": doc.url,
        "crawl_date": doc.crawl_date,
        "source": doc.source,
        "record": doc.record,
        "offset": doc.offset,
        "content_type": doc.content_type,
        "payload": payload[:max_payload_bytes] if payload is not None else None,
        "payload_size": doc.payload_size,
        "payload_truncated": truncated,
        "text": text[:max_payload_bytes] if text is not None else None,
    }


def row_bytes(row: dict) -> int:
    """Rough in-memory size of a row, for shard and row-group sizing."""
    return sum(len(v) for v in (row.get("text"), row.get("payload")) if v) + 256

"""Readers as plain iterators: what each format yields, and how damaged files are reported."""

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.document import Document, Outcome, Rejection
from pipeline.readers import ReadReason, detect_format, iter_jsonl, iter_parquet, iter_warc
from tests.fixtures.bad_corpus import build_bad_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("readers")
    build_bad_corpus(directory)
    return directory


def _read_warc(path, wet=False):
    notes = {}
    with open(path, "rb") as f:
        items = list(iter_warc(f, str(path), path.name, lambda k, v: notes.__setitem__(k, notes.get(k, 0) + v), wet=wet))
    return items, notes


def test_warc_documents_carry_provenance(corpus):
    items, notes = _read_warc(corpus / "good.warc.gz")
    assert all(isinstance(i, Document) for i in items) and len(items) == 3
    first = items[0]
    assert first.record == 0 and first.url.startswith("https://")
    assert first.crawl_date is not None and first.crawl_date.tzinfo is not None
    assert first.content_type == "text/html" and first.payload.lstrip().startswith(b"<")
    # the offset points at the record's own gzip member
    with open(corpus / "good.warc.gz", "rb") as f:
        f.seek(items[1].offset)
        assert gzip.GzipFile(fileobj=f).read(8).startswith(b"WARC/1.")
    assert len({i.id for i in items}) == 3


def test_truncated_gzip_fails_the_cut_record_only(corpus):
    items, _ = _read_warc(corpus / "truncated.warc.gz")
    assert [type(i).__name__ for i in items] == ["Document"] * 3 + ["Rejection"]
    assert items[-1].reason == ReadReason.TRUNCATED_GZIP and items[-1].document.record == 3


def test_malformed_header_is_one_failure_and_reading_resumes(corpus):
    items, _ = _read_warc(corpus / "malformed.warc.gz")
    kinds = [(type(i).__name__, getattr(i, "reason", None)) for i in items]
    assert kinds == [("Document", None), ("Rejection", ReadReason.MALFORMED_WARC), ("Document", None), ("Document", None)]
    assert [i.record for i in items if isinstance(i, Document)] == [0, 1, 2]


def test_empty_file_is_one_dropped_record(corpus):
    items, _ = _read_warc(corpus / "empty.warc.gz")
    assert len(items) == 1 and items[0].outcome == Outcome.DROPPED and items[0].reason == ReadReason.EMPTY_FILE


def test_wet_conversion_records_are_text_documents(corpus):
    items, notes = _read_warc(corpus / "sample.wet.gz", wet=True)
    assert len(items) == 4 and all(i.text and i.html is None for i in items)
    assert notes == {"read.skipped_warcinfo_records": 1}


def test_jsonl_lines_become_text_or_html_documents():
    lines = [
        {"text": "plain words", "url": "https://a.test/1", "date": "2024-05-01T10:00:00Z"},
        {"html": "<p>markup</p>"},
        {"neither": 1},
        {"text": 5},
    ]
    data = ("\n".join(json.dumps(x) for x in lines) + "\n\n{broken\n").encode()
    notes = {}
    items = list(iter_jsonl(io.BytesIO(gzip.compress(data)), "x.jsonl.gz", "x.jsonl.gz",
                            lambda k, v: notes.__setitem__(k, v), text_field="text", html_field="html",
                            url_field="url", date_field="date", gzipped=True))
    assert items[0].text == "plain words" and items[0].crawl_date.year == 2024
    assert items[1].html == "<p>markup</p>" and items[1].content_type == "text/html"
    assert [i.reason for i in items[2:]] == [ReadReason.NO_CONTENT_FIELD, ReadReason.WRONG_FIELD_TYPE,
                                             ReadReason.MALFORMED_JSON]
    assert [i.document.record for i in items[2:]] == [2, 3, 4]
    assert notes == {"read.blank_lines": 1}


def test_truncated_jsonl_gzip_is_reported():
    data = gzip.compress(b'{"text": "a"}\n' * 1000)[:-40]
    items = list(iter_jsonl(io.BytesIO(data), "t.jsonl.gz", "t", lambda k, v: None, text_field="text",
                            html_field="html", url_field="url", date_field="date", gzipped=True))
    assert isinstance(items[-1], Rejection) and items[-1].reason == ReadReason.TRUNCATED_GZIP
    assert all(isinstance(i, Document) for i in items[:-1])


def test_parquet_rows_are_read_by_row_group(tmp_path):
    table = pa.table({"text": ["a", None, "c"] * 700, "url": ["u"] * 2100})
    pq.write_table(table, tmp_path / "x.parquet", row_group_size=500)
    with open(tmp_path / "x.parquet", "rb") as f:
        items = list(iter_parquet(f, "x.parquet", "x.parquet", text_field="text", html_field="html",
                                  url_field="url", date_field="date"))
    assert len(items) == 2100
    assert sum(isinstance(i, Rejection) for i in items) == 700
    assert [i.record for i in items[:3] if isinstance(i, Document)] == [0, 2]


def test_format_detection_from_names():
    assert detect_format("gs://b/CC-MAIN-x.warc.gz") == "warc"
    assert detect_format("/d/x.warc.wet.gz") == "wet"
    assert detect_format("s3://b/part.jsonl.gz") == "jsonl"
    assert detect_format("x.parquet") == "parquet"
    with pytest.raises(ValueError, match="set input.format"):
        detect_format("x.bin")

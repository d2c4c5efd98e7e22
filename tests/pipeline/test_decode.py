import random

import pytest

from pipeline.decode import DecodeConfig, DecodeError, DecodeNote, DecodeReason, decode_html, is_textual, meta_charset

CONFIG = DecodeConfig()
FRENCH = "<html><body><p>Le café était très fermé à l'été, où déjà les élèves préféraient la forêt.</p></body></html>"


def test_http_charset_is_used_first():
    decoded = decode_html(FRENCH.encode("cp1252"), "windows-1252", CONFIG)
    assert decoded.text == FRENCH and decoded.charset == "cp1252" and decoded.notes == ()


def test_meta_charset_when_no_http_charset():
    page = "<html><head><meta charset='shift_jis'></head><body><p>日本語のテキストです。</p></body></html>"
    assert meta_charset(page.encode("shift_jis")) == "shift_jis"
    decoded = decode_html(page.encode("shift_jis"), None, CONFIG)
    assert "日本語のテキストです。" in decoded.text and decoded.charset == "shift_jis"


def test_latin1_label_decodes_as_windows_1252_like_browsers():
    page = "<p>“quoted” – dash</p>".encode("cp1252")
    assert decode_html(page, "iso-8859-1", CONFIG).text == "<p>“quoted” – dash</p>"


def test_wrong_declared_charset_falls_back_to_detection():
    decoded = decode_html(FRENCH.encode("cp1252"), "utf-8", CONFIG)
    assert decoded.text == FRENCH
    assert DecodeNote.DECLARED_CHARSET_WRONG in decoded.notes and DecodeNote.DETECTED in decoded.notes


def test_unknown_charset_name_is_noted_and_detected():
    page = "<p>日本語のテキストです。これは長い文章です。</p>"
    decoded = decode_html(page.encode("euc-jp"), "x-unknown-123", CONFIG)
    assert decoded.text == page and DecodeNote.UNKNOWN_CHARSET_NAME in decoded.notes


def test_a_few_invalid_bytes_in_utf8_are_replaced_not_misdetected():
    body = bytearray(("<p>" + "naïve café text " * 200 + "</p>").encode())
    rng = random.Random(1)
    for _ in range(5):
        body[rng.randrange(10, len(body) - 10)] = 0xFF
    decoded = decode_html(bytes(body), "utf-8", CONFIG)
    assert decoded.charset == "utf-8" and 5 <= decoded.text.count("\ufffd") <= 10
    assert "naïve café" in decoded.text and DecodeNote.REPLACED_BYTES in decoded.notes


def test_binary_garbage_and_empty_bodies_are_refused_with_reasons():
    rng = random.Random(0)
    garbage = bytes(rng.randrange(256) for _ in range(5000))
    with pytest.raises(DecodeError) as error:
        decode_html(garbage, "utf-8", CONFIG)
    assert error.value.reason in (DecodeReason.UNDECODABLE, DecodeReason.BINARY_CONTENT)
    with pytest.raises(DecodeError) as error:
        decode_html(b"  \r\n", "utf-8", CONFIG)
    assert error.value.reason == DecodeReason.EMPTY_BODY


def test_binary_signatures_are_not_textual_whatever_the_label():
    assert not is_textual("text/html", b"%PDF-1.4 ...")
    assert not is_textual("text/html", b"\x89PNG\r\n\x1a\n")
    assert is_textual("text/html", b"<html>")
    assert is_textual(None, b"<html>")
    assert not is_textual("image/png", b"<html>")

import time

import pytest

from pipeline.extract import ExtractConfig, ExtractionTimeout, IsolatedExtractor, extract_main_text, is_html

ARTICLE = """<html><head><title>Rivers</title></head><body>
<nav><a href="/">Home</a> | <a href="/about">About</a> | <a href="/contact">Contact</a></nav>
<article><h1>How rivers shape valleys</h1>
<p>Rivers carve valleys over thousands of years, moving sediment from mountains to the sea and
changing the land they cross in ways that geologists can read in the rocks left behind.</p>
<p>Where the current slows, sand and gravel settle, building bars and floodplains that farmers
have used for as long as there has been farming, because the soil there is rich and easy to work.</p>
<p>During floods the river spreads over this plain, leaving a fresh layer of silt that renews the
land each season and explains why so many early towns grew up beside large rivers.</p>
</article><footer>Privacy policy | Terms of use | Copyright 2024</footer></body></html>"""


def test_extracts_article_and_leaves_boilerplate():
    text = extract_main_text(ARTICLE, "https://example.org/rivers", ExtractConfig())
    assert "Rivers carve valleys" in text and "renews the" in text
    assert "Privacy policy" not in text and "Contact" not in text


def test_isolated_extractor_gives_the_same_text_as_in_process():
    config = ExtractConfig(timeout_s=30)
    extractor = IsolatedExtractor(config)
    try:
        assert extractor.extract(ARTICLE, None) == extract_main_text(ARTICLE, None, config)
        assert extractor.extract("<html><body></body></html>", None) is None
    finally:
        extractor.close()


def test_time_limit_kills_and_recovers(monkeypatch):
    # A limit far below the child's start-up plus one extraction trips the limit for real.
    extractor = IsolatedExtractor(ExtractConfig(timeout_s=0.001))
    try:
        with pytest.raises(ExtractionTimeout):
            extractor.extract(ARTICLE * 50, None)
        assert extractor.restarts == 1
    finally:
        extractor.close()
    recovered = IsolatedExtractor(ExtractConfig(timeout_s=30))
    try:
        assert "Rivers carve valleys" in recovered.extract(ARTICLE, None)
    finally:
        recovered.close()


def _slow_page(paragraphs: int = 20_000) -> str:
    # About 2 MB in 20,000 blocks: trafilatura takes seconds over it.
    return "<html><body>" + "".join(
        f"<div><p>Paragraph {i} says that rivers carve valleys over thousands of years.</p></div>"
        for i in range(paragraphs)) + "</body></html>"


def test_a_batch_gives_each_page_the_text_it_gets_alone():
    config = ExtractConfig(timeout_s=30)
    pages = [(ARTICLE, None), ("<html><body></body></html>", None),
             (ARTICLE.replace("Rivers carve", "Glaciers carve"), "https://example.org/ice"), (ARTICLE, None)]
    extractor = IsolatedExtractor(config)
    try:
        assert extractor.extract_many(pages) == [extract_main_text(html, url, config) for html, url in pages]
        assert extractor.extract_many([]) == []
    finally:
        extractor.close()


def test_a_page_over_the_limit_fails_alone_and_the_rest_of_its_batch_is_extracted():
    config = ExtractConfig(timeout_s=1.5)
    extractor = IsolatedExtractor(config)
    try:
        extractor.extract(ARTICLE, None)  # the child is up, so the limit times extraction only
        before, slow, after = extractor.extract_many([(ARTICLE, None), (_slow_page(), None), (ARTICLE, None)])
        assert isinstance(slow, ExtractionTimeout)
        assert before == after == extract_main_text(ARTICLE, None, config)
        assert extractor.restarts == 1
    finally:
        extractor.close()


def test_pathological_nesting_finishes_quickly():
    nested = "<html><body>" + "<div>" * 100_000 + "<p>deep</p>" + "</div>" * 100_000 + "</body></html>"
    start = time.monotonic()
    extract_main_text(nested, None, ExtractConfig())
    assert time.monotonic() - start < 10


def test_is_html_uses_signature_then_media_type():
    config = ExtractConfig()
    assert is_html("text/html", b"<html>", config)
    assert is_html("application/xhtml+xml", b"<?xml", config)
    assert not is_html("text/html", b"%PDF-1.7", config)
    assert not is_html("application/pdf", b"<html>", config)
    assert not is_html("text/plain", b"hello", config)


def test_config_rejects_contradictions():
    with pytest.raises(ValueError, match="cannot both be true"):
        ExtractConfig(favor_precision=True, favor_recall=True)

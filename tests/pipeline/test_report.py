"""The dedup report: self-contained, escaped HTML that loads cleanly in Chromium, and the command around it."""

import base64
import copy
import fcntl
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from pipeline.report import (
    EXIT_NO_REPORT,
    Change,
    candidate_probability,
    diff_words,
    effective_threshold,
    render_html,
    run_report,
)
from tests.conftest import REPO

CHROMIUM_INSTALL = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends " \
                   "chromium fonts-dejavu-core"
SCRIPT_IN_DOCUMENT = "<script>alert(1)</script>"

GARDEN = ("The Riverside Community Garden opens for the season on Saturday, 12 April. Volunteers meet at "
          "the north gate at nine o'clock to turn the compost, repair the raised beds and plant the first "
          "rows of peas and broad beans. Tools, gloves and tea are provided; bring sturdy shoes.\n\n"
          "Plots are still available for the season. Families, schools and first-time growers are welcome, "
          "and the fee can be waived on request. Contact the garden committee to reserve a plot.")


def _garden(*edits: tuple[str, str]) -> str:
    text = GARDEN
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    return text


def _member(doc_id: str, url: str, text: str, similarity: float, kept: bool = False) -> dict:
    return {"id": doc_id, "url": url, "kept": kept, "similarity": similarity, "text": text}


def sample_report() -> dict:
    """A realistic report: a cluster of four garden notices, and a pair of pages carrying markup."""
    garden = [
        _member("cc-2024-10/0001", "https://riverside-garden.example.org/news/opening-day", GARDEN, 1.0, kept=True),
        _member("cc-2024-18/0442", "https://riverside-garden.example.org/news/opening-day?ref=feed&utm=1",
                _garden(("12 April", "13 April")), 0.93),
        _member("cc-2024-22/1893", "http://mirror.example.net/garden/opening.html",
                _garden(("bring sturdy shoes.", "bring sturdy shoes and a hat."), ("schools and ", "")), 0.86),
        _member("cc-2024-26/0077", "javascript:alert(2)",
                _garden(("Volunteers meet", "All volunteers meet"), ("Contact the garden committee",
                                                                     "Email the committee")), 0.81),
    ]
    menu = ("Harbour Café menu: Fish &amp; Chips £9.50, mushy peas £2. " + SCRIPT_IN_DOCUMENT
            + " Open daily from noon; card payments only.")
    markup = [
        _member("cc-2024-10/0310", 'https://harbour.example.com/menu?a=1&b="2"', menu, 1.0, kept=True),
        _member("cc-2024-18/0911", "https://harbour.example.com/menu.php",
                menu.replace("£9.50", "£9.95"), 0.84),
    ]
    return {
        "version": 1,
        "job": "sample",
        "parameters": {"ngram": 5, "num_perm": 112, "bands": 14, "rows": 8, "threshold": 0.8, "seed": 1,
                       "verify": True, "url_dedup": False, "keep_order": "earliest crawl date, then smallest id"},
        "counts": {"in": 293, "url_duplicates": 0, "exact_duplicates": 12, "candidate_edges": 40,
                   "edges_removed_by_verification": 3, "near_duplicate_clusters": 9,
                   "near_duplicates_removed": 14, "removed": 26, "kept": 267},
        "cluster_sizes": {"2": 6, "3": 2, "4": 1},
        "largest_clusters": [
            {"cluster": "cc-2024-10/0001", "size": 4, "members": garden},
            {"cluster": "cc-2024-10/0310", "size": 2, "members": markup},
        ],
        "domains": [
            {"domain": "riverside-garden.example.org", "documents": 40, "duplicates": 9, "rate": 0.225},
            {"domain": "harbour.example.com", "documents": 12, "duplicates": 1, "rate": 1 / 12},
        ],
        "pairs": [
            {"a": "cc-2024-10/0001", "b": "cc-2024-18/0442", "url_a": garden[0]["url"], "url_b": garden[1]["url"],
             "estimated": 0.93, "exact": 0.91},
            {"a": "cc-2024-10/0001", "b": "cc-2024-26/0077", "url_a": garden[0]["url"], "url_b": garden[3]["url"],
             "estimated": 0.81, "exact": 0.77},
        ],
        "similarity_histogram": {"edges": [round(i * 0.05, 2) for i in range(21)],
                                 "counts": [0] * 16 + [5, 4, 3, 2]},
    }


def empty_report() -> dict:
    """A corpus without duplicates, banded directly (no threshold)."""
    return {
        "version": 1, "job": "clean",
        "parameters": {"ngram": 5, "num_perm": 112, "bands": 14, "rows": 8, "threshold": None, "seed": 1,
                       "verify": False, "url_dedup": True, "keep_order": "earliest crawl date, then smallest id"},
        "counts": {"in": 50, "url_duplicates": 0, "exact_duplicates": 0, "candidate_edges": 0,
                   "edges_removed_by_verification": 0, "near_duplicate_clusters": 0,
                   "near_duplicates_removed": 0, "removed": 0, "kept": 50},
        "cluster_sizes": {}, "largest_clusters": [], "domains": [], "pairs": [],
        "similarity_histogram": {"edges": [], "counts": []},
    }


class ResourceReferences(HTMLParser):
    """Everything in a page that a browser would fetch by itself (links a person clicks are not)."""

    FETCHED = {"src", "href", "xlink:href", "srcset", "data", "poster", "background", "action", "formaction"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.references: list[tuple[str, str, str]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        for name, value in attrs:
            if tag != "a" and name in self.FETCHED and value:
                self.references.append((tag, name, value))
            if name == "style" and value:
                self.styles.append(value)

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def _visible_panel_texts(page: str) -> list[str]:
    return re.findall(r'<div class="text">(.*?)</div>', page, re.DOTALL)


# ---------------------------------------------------------------- the page itself


@pytest.mark.parametrize("build", [sample_report, empty_report])
def test_page_fetches_nothing(build):
    page = render_html(build())
    parser = ResourceReferences()
    parser.feed(page)
    external = [(tag, name, value) for tag, name, value in parser.references
                if re.match(r"\s*(https?:)?//", value, re.IGNORECASE)]
    assert external == []
    assert [ref for ref in parser.references if ref[0] in ("script", "link", "img", "iframe")] == []
    assert not any(re.search(r"url\(|@import", css, re.IGNORECASE) for css in parser.styles)
    assert "default-src 'none'" in page  # the browser refuses any fetch a later change might add


def test_document_text_and_urls_are_escaped():
    page = render_html(sample_report())
    assert SCRIPT_IN_DOCUMENT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # the page's own
    assert "Fish &amp;amp; Chips" in page  # the document's literal "&amp;", shown as written
    assert 'href="https://harbour.example.com/menu?a=1&amp;b=&quot;2&quot;"' in page
    assert 'href="javascript:' not in page
    assert "javascript:alert(2)" in page  # shown, as text


def test_page_has_plots_tables_and_cluster_browser():
    report = sample_report()
    page = render_html(report)
    s_curve = page[page.index('id="s-curve"'):page.index('id="similarity-histogram"')]
    assert "<polyline" in s_curve and "threshold 0.80" in s_curve
    histogram = page[page.index('id="similarity-histogram"'):page.index('id="cluster-sizes"')]
    assert histogram.count('class="bar"') == 4  # the four non-empty bins
    sizes = page[page.index('id="cluster-sizes"'):page.index('id="domains"')]
    assert sizes.count('class="bar"') == 3
    assert "riverside-garden.example.org" in page and "22.5%" in page
    assert "0.910" in page and "+0.040" in page  # a sampled pair: exact, and estimated minus exact
    assert page.count('class="cluster-panel"') == 2
    assert page.count(" hidden>") == 1  # the first cluster shows, the second waits for a click
    first = page[page.index('id="cluster-0"'):page.index('id="cluster-1"')]
    assert first.index("badge kept") < first.index("badge removed")
    texts = _visible_panel_texts(first)
    assert len(texts) == 4 and "<ins>" not in texts[0]
    assert "<del>12 </del><ins>13</ins>" in texts[1]
    assert "<del>shoes. </del><ins>shoes and a hat.</ins>\n\nPlots" in texts[2]
    assert "<del>schools and </del>first-time" in texts[2]


def test_extra_fields_from_the_pipeline_are_shown():
    report = sample_report()
    report["parameters"]["scheme"] = "affine64"
    report["pairs"][0]["passed"] = True
    report["pairs"][1]["passed"] = False
    page = render_html(report)
    assert "<code>scheme</code></td><td>affine64" in page
    assert "<th>verification</th>" in page and ">passed<" in page and ">rejected<" in page


def test_kept_member_comes_first_whatever_the_order():
    report = sample_report()
    report["largest_clusters"][0]["members"].reverse()
    first = render_html(report).split('id="cluster-1"')[0]
    assert first.index("badge kept") < first.index("badge removed")
    assert "<ins>" not in _visible_panel_texts(first)[0]


def test_empty_corpus_renders():
    page = render_html(empty_report())
    assert "no near-duplicate clusters" in page
    assert "no near duplicates removed" in page
    assert "No near-duplicate clusters." in page and 'id="cluster-browser"' not in page
    effective = effective_threshold(14, 8)
    assert f"effective threshold {effective:.2f}" in page


def test_word_diff_rebuilds_the_member_and_names_what_changed():
    kept = "one two three\n\nfour five six"
    member = "  one two 3\n\nfour five six seven"
    runs = diff_words(kept, member)
    assert "".join(text for change, text in runs if change is not Change.MISSING) == member
    assert [(c, t.strip()) for c, t in runs if c is not Change.SAME] == [
        (Change.MISSING, "three"), (Change.ADDED, "3"), (Change.ADDED, "seven")]
    assert diff_words("same words", "same words") == [(Change.SAME, "same words")]


def test_s_curve_maths():
    assert candidate_probability(0.0, 14, 8) == 0.0
    assert candidate_probability(1.0, 14, 8) == 1.0
    assert abs(effective_threshold(14, 8) - (1 / 14) ** (1 / 8)) < 1e-12
    assert candidate_probability(0.9, 14, 8) > 0.9 > 0.1 > candidate_probability(0.5, 14, 8)


def test_module_does_not_import_beam():
    code = "import sys, pipeline.report; print('apache_beam' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- run_report


def _run_dir(tmp_path: Path, report: dict) -> Path:
    run = tmp_path / "run"
    (run / "dedup").mkdir(parents=True)
    (run / "dedup" / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return run


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, color_system=None), out


def test_run_report_writes_html_and_prints_summary(tmp_path, capsys):
    report = sample_report()
    run = _run_dir(tmp_path, report)
    (run / "dedup" / "report.html").write_text("stale")
    console, out = _console()
    assert run_report(str(run), console) == 0
    html_path = run / "dedup" / "report.html"
    assert html_path.read_text(encoding="utf-8") == render_html(report)
    assert not list((run / "dedup").glob("*.partial"))
    text = out.getvalue()
    assert "largest clusters" in text and "https://riverside-garden.example.org/news/opening-day" in text
    assert "top domains" in text and "22.5%" in text
    assert text.rstrip().endswith(str(html_path))
    assert capsys.readouterr().err == ""


def test_run_report_on_an_empty_corpus(tmp_path):
    run = _run_dir(tmp_path, empty_report())
    console, out = _console()
    assert run_report(str(run), console) == 0
    assert "no near-duplicate clusters" in out.getvalue()
    assert (run / "dedup" / "report.html").is_file()


@pytest.mark.parametrize("setup", ["no run dir", "no report", "bad version", "not json"])
def test_run_report_without_a_usable_report_says_so_in_one_line(tmp_path, capsys, setup):
    run = tmp_path / "run"
    if setup != "no run dir":
        (run / "dedup").mkdir(parents=True)
    if setup == "bad version":
        (run / "dedup" / "report.json").write_text(json.dumps({**empty_report(), "version": 2}))
    if setup == "not json":
        (run / "dedup" / "report.json").write_text("{")
    console, out = _console()
    assert run_report(str(run), console) == EXIT_NO_REPORT
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("winnow: error: ") and str(run) in err and "winnow run" in err
    assert out.getvalue() == ""
    assert not (run / "dedup" / "report.html").exists()


# ---------------------------------------------------------------- in a real browser


class DevToolsPipe:
    """Chromium's DevTools protocol over --remote-debugging-pipe: NUL-terminated JSON on fds 3 and 4."""

    def __init__(self, binary: str, profile: Path, log: Path):
        to_chromium, self._commands = os.pipe()
        self._replies, from_chromium = os.pipe()
        # Park both ends above fd 9 so that placing them on 3 and 4 cannot overwrite one with the other.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_chromium, from_chromium)]
        os.close(to_chromium)
        os.close(from_chromium)

        def on_fds_3_and_4():
            os.dup2(high[0], 3)  # dup2 leaves the copies inheritable, so they survive exec
            os.dup2(high[1], 4)

        self._log = open(log, "wb")
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--hide-scrollbars", "--window-size=1280,900", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, close_fds=False,
            preexec_fn=on_fds_3_and_4)
        for fd in high:
            os.close(fd)
        self.log = log
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict] = []

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise TimeoutError(f"chromium did not answer; its log: {self.log}")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise ConnectionError(f"chromium closed the pipe; its log: {self.log}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 15.0) -> dict:
        self._next_id += 1
        command = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        os.write(self._commands, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") != self._next_id:
                self.events.append(message)
            elif "error" in message:
                raise RuntimeError(f"{method}: {message['error']}")
            else:
                return message["result"]

    def wait_for(self, method: str, session: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return
            seen = len(self.events)
            self.events.append(self._receive(deadline))

    def open(self, url: str) -> str:
        """A new tab with console capture on, navigated to `url` and loaded; returns its session."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=session)
        self.call("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        self.evaluate(session, "0")  # a round trip through the renderer, so load-time errors have arrived
        return session

    def evaluate(self, session: str, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self, session: str) -> list[str]:
        """Uncaught exceptions, console.error/assert calls, and browser errors (CSP, failed loads)."""
        errors = []
        for event in self.events:
            if event.get("sessionId") != session:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description") or details["text"])
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                errors.append(" ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(params["entry"]["text"])
        return errors

    def screenshot(self, session: str, path: Path) -> None:
        size = self.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 8000), "scale": 1}
        shot = self.call("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True},
                         session=session)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (TimeoutError, ConnectionError, RuntimeError, OSError):
            pass  # it is going away either way
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)
        self._log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = shutil.which("chromium")
    if binary is None:
        message = f"chromium is not installed; install it with: {CHROMIUM_INSTALL}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {message}")
        pytest.skip(message)
    home = tmp_path_factory.mktemp("chromium")
    pipe = DevToolsPipe(binary, home / "profile", home / "chromium.log")
    try:
        pipe.call("Browser.getVersion")
        yield pipe
    finally:
        pipe.close()


def _page(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path.as_uri()


@pytest.mark.slow
def test_report_loads_in_chromium_without_console_errors(browser, tmp_path):
    session = browser.open(_page(tmp_path, "report.html", render_html(sample_report())))
    assert browser.console_errors(session) == []
    assert browser.evaluate(session, "document.scripts.length") == 1
    assert browser.evaluate(session, "document.body.textContent.includes('<script>alert(1)</script>')")
    # The cluster browser: a click shows the second cluster, the checkbox hides missing words.
    visible = ("Array.from(document.querySelectorAll('.cluster-panel'))"
               ".filter(p => p.offsetParent !== null).map(p => p.id).join()")
    assert browser.evaluate(session, visible) == "cluster-0"
    browser.evaluate(session, "document.querySelector('button[data-cluster=\"1\"]').click()")
    assert browser.evaluate(session, visible) == "cluster-1"
    missing_word = "getComputedStyle(document.querySelector('#cluster-1 .text del')).display"
    assert browser.evaluate(session, missing_word) == "inline"
    browser.evaluate(session, "document.getElementById('show-missing').click()")
    assert browser.evaluate(session, missing_word) == "none"
    browser.evaluate(session, "document.querySelector('button[data-cluster=\"0\"]').click()")
    assert browser.console_errors(session) == []
    shot = tmp_path / "report.png"
    browser.screenshot(session, shot)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 1000 and height > 900  # the whole page, not only the first screen


@pytest.mark.slow
def test_empty_report_loads_in_chromium_without_console_errors(browser, tmp_path):
    session = browser.open(_page(tmp_path, "empty.html", render_html(empty_report())))
    assert browser.console_errors(session) == []
    shot = tmp_path / "empty.png"
    browser.screenshot(session, shot)
    assert shot.stat().st_size > 5_000


@pytest.mark.slow
@pytest.mark.parametrize("broken, expected", [
    ("<script>notDefinedAnywhere();</script>", "notDefinedAnywhere"),
    ("<script>console.error('deliberate failure')</script>", "deliberate failure"),
])
def test_console_error_check_catches_script_errors(browser, tmp_path, broken, expected):
    page = f"<!DOCTYPE html><html><head><title>broken</title></head><body><p>hi</p>{broken}</body></html>"
    session = browser.open(_page(tmp_path, "broken.html", page))
    errors = browser.console_errors(session)
    assert len(errors) == 1 and expected in errors[0]


@pytest.mark.slow
def test_console_error_check_catches_an_external_fetch_in_the_report(browser, tmp_path):
    page = render_html(sample_report()).replace("</body>", '<img src="https://cdn.example.com/logo.png"></body>')
    session = browser.open(_page(tmp_path, "fetching.html", page))
    errors = browser.console_errors(session)
    assert errors and "cdn.example.com" in errors[0] and "Content Security Policy" in errors[0]


@pytest.mark.slow
def test_report_html_from_run_report_loads_cleanly(browser, tmp_path):
    report = copy.deepcopy(sample_report())
    report["parameters"]["threshold"] = None
    run = _run_dir(tmp_path, report)
    assert run_report(str(run), _console()[0]) == 0
    session = browser.open((run / "dedup" / "report.html").as_uri())
    assert browser.console_errors(session) == []
    assert browser.evaluate(session, "document.title") == "winnow dedup report: sample"

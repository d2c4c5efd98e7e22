"""The near-duplicate removal report for people: one offline HTML file and a terminal summary.

Reads `RUN_DIR/dedup/report.json` (schema version 1) and writes `RUN_DIR/dedup/report.html`
next to it. The HTML carries everything inline (CSS, SVG plots, a few lines of JavaScript
under a hash-pinned Content-Security-Policy), so it opens from a laptop, an archive or an
email attachment without a network. Document text is untrusted web text and is always
escaped; word-level diffs are computed here, so the page's script only shows and hides.
"""

from __future__ import annotations

import base64
import difflib
import enum
import hashlib
import html
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

REPORT_VERSION = 1
DEDUP_DIR = "dedup"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
EXIT_NO_REPORT = 2  # same code as the CLI's config errors: nothing was reported on

REQUIRED_KEYS = ("version", "job", "parameters", "counts")
SUMMARY_CLUSTERS = 5
SUMMARY_DOMAINS = 10

# Known counts, in the order documents flow through the stage, with their labels.
COUNT_LABELS = {
    "in": "documents in",
    "url_duplicates": "URL duplicates",
    "exact_duplicates": "exact duplicates",
    "candidate_edges": "candidate pairs (LSH)",
    "edges_removed_by_verification": "pairs rejected by verification",
    "near_duplicate_clusters": "near-duplicate clusters",
    "near_duplicates_removed": "near duplicates removed",
    "removed": "removed in all",
    "kept": "kept",
}


class ReportError(ValueError):
    """A missing or unreadable report, phrased as one line a person can act on."""


class Change(enum.Enum):
    """How a run of words in a member relates to the cluster's kept document."""

    SAME = "same"
    ADDED = "added"  # in the member, not in the kept document
    MISSING = "missing"  # in the kept document, not in the member


_WORD = re.compile(r"\S+\s*")


def _split_words(text: str) -> tuple[str, list[str]]:
    """Leading whitespace, then words each carrying the whitespace after it."""
    body = text.lstrip()
    return text[: len(text) - len(body)], _WORD.findall(body)


def diff_words(kept: str, member: str) -> list[tuple[Change, str]]:
    """Word-level diff of `member` against `kept`; SAME and ADDED runs rebuild `member` exactly."""
    lead, member_words = _split_words(member)
    _, kept_words = _split_words(kept)
    # autojunk would treat common words as junk in long texts and give ragged diffs.
    matcher = difflib.SequenceMatcher(
        None, [w.rstrip() for w in kept_words], [w.rstrip() for w in member_words], autojunk=False)
    runs: list[tuple[Change, str]] = [(Change.SAME, lead)] if lead else []
    for op, k0, k1, m0, m1 in matcher.get_opcodes():
        if op == "equal":
            runs.append((Change.SAME, "".join(member_words[m0:m1])))
            continue
        if k1 > k0:
            runs.append((Change.MISSING, "".join(kept_words[k0:k1])))
        if m1 > m0:
            runs.append((Change.ADDED, "".join(member_words[m0:m1])))
    return runs


def effective_threshold(bands: int, rows: int) -> float:
    """The usual approximation of the S-curve's threshold; there P(candidate) is about 1 - 1/e."""
    return (1.0 / bands) ** (1.0 / rows)


def candidate_probability(s: float, bands: int, rows: int) -> float:
    """P(two documents of Jaccard similarity s share at least one LSH band)."""
    return 1.0 - (1.0 - s**rows) ** bands


# ---------------------------------------------------------------- formatting


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else _esc(value)


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _int(value) if value is not None else "&mdash;"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _url(url: str | None) -> str:
    """A link for http(s) URLs; anything else (javascript:, data:, garbage) stays text."""
    if not url:
        return '<span class="muted">no URL</span>'
    if re.match(r"https?://", url, re.IGNORECASE):
        return f'<a href="{_esc(url)}" rel="noopener noreferrer nofollow">{_esc(url)}</a>'
    return f'<span class="url">{_esc(url)}</span>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = (),
           row_classes: Iterable[str] | None = None) -> str:
    """An HTML table; cells arrive already escaped."""
    def cell(tag: str, i: int, content: str) -> str:
        return f'<{tag} class="num">{content}</{tag}>' if i in numeric else f"<{tag}>{content}</{tag}>"

    head = "".join(cell("th", i, _esc(h)) for i, h in enumerate(headers))
    classes = iter(row_classes) if row_classes is not None else None
    body = []
    for row in rows:
        css = next(classes) if classes is not None else ""
        opening = f'<tr class="{css}">' if css else "<tr>"
        body.append(opening + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# ---------------------------------------------------------------- SVG plots

_W, _H = 560, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 16, 14, 44


def _nice_step(maximum: float, ticks: int = 5) -> float:
    raw = max(maximum, 1e-12) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _svg(label: str, body: str) -> str:
    return (f'<svg class="plot" viewBox="0 0 {_W} {_H}" role="img" aria-label="{_esc(label)}" '
            f'xmlns="http://www.w3.org/2000/svg">{body}</svg>')


def _axes(x_label: str, y_label: str, y_max: float, integer_y: bool) -> tuple[str, Any]:
    """Axes, horizontal grid lines and labels; returns the SVG and the y-to-pixel map."""
    plot_h = _H - _TOP - _BOTTOM
    step = max(1.0, _nice_step(y_max)) if integer_y else _nice_step(y_max)
    top = step * max(1, math.ceil(y_max / step))

    def y_px(v: float) -> float:
        return _TOP + plot_h * (1 - v / top)

    parts = []
    for i in range(int(round(top / step)) + 1):
        v = i * step
        label = f"{int(v):,}" if integer_y else f"{v:.1f}"
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y_px(v):.1f}" y2="{y_px(v):.1f}"/>'
                     f'<text class="tick" x="{_LEFT - 6}" y="{y_px(v) + 4:.1f}" text-anchor="end">{label}</text>')
    parts.append(f'<line class="axis" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_H - _BOTTOM}" y2="{_H - _BOTTOM}"/>'
                 f'<line class="axis" x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{_H - _BOTTOM}"/>'
                 f'<text class="label" x="{(_LEFT + _W - _RIGHT) / 2}" y="{_H - 6}" text-anchor="middle">'
                 f'{_esc(x_label)}</text>'
                 f'<text class="label" transform="translate(14 {(_TOP + _H - _BOTTOM) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{_esc(y_label)}</text>')
    return "".join(parts), y_px


def _x_map(lo: float, hi: float):
    width = _W - _LEFT - _RIGHT
    return lambda v: _LEFT + width * (v - lo) / ((hi - lo) or 1.0)


def _threshold_line(x: float, label: str, css: str = "threshold") -> str:
    return (f'<line class="{css}" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{_H - _BOTTOM}"/>'
            f'<text class="{css}-label" x="{x - 4:.1f}" y="{_TOP + 12}" text-anchor="end">{_esc(label)}</text>')


def _empty_plot(label: str, message: str) -> str:
    return _svg(label, f'<rect class="frame" x="{_LEFT}" y="{_TOP}" width="{_W - _LEFT - _RIGHT}" '
                       f'height="{_H - _TOP - _BOTTOM}"/><text class="empty" x="{(_LEFT + _W - _RIGHT) / 2}" '
                       f'y="{_H / 2}" text-anchor="middle">{_esc(message)}</text>')


def cluster_size_svg(cluster_sizes: dict[str, int]) -> str:
    """Bars: how many clusters have each size."""
    sizes = sorted((int(size), count) for size, count in cluster_sizes.items())
    label = "number of near-duplicate clusters by cluster size"
    if not sizes:
        return _empty_plot(label, "no near-duplicate clusters")
    axes, y_px = _axes("cluster size (documents)", "clusters", max(c for _, c in sizes), integer_y=True)
    slot = (_W - _LEFT - _RIGHT) / len(sizes)
    every = math.ceil(len(sizes) / 16)
    bars = []
    for i, (size, count) in enumerate(sizes):
        x = _LEFT + i * slot
        bars.append(f'<rect class="bar" x="{x + slot * 0.12:.1f}" y="{y_px(count):.1f}" width="{slot * 0.76:.1f}" '
                    f'height="{y_px(0) - y_px(count):.1f}"><title>size {size}: {count:,} clusters</title></rect>')
        if i % every == 0:
            bars.append(f'<text class="tick" x="{x + slot / 2:.1f}" y="{_H - _BOTTOM + 16}" '
                        f'text-anchor="middle">{size}</text>')
    return _svg(label, axes + "".join(bars))


def s_curve_svg(bands: int, rows: int, threshold: float | None) -> str:
    """P(candidate | s) for the run's banding, with the threshold marked."""
    x_px = _x_map(0.0, 1.0)
    axes, y_px = _axes("Jaccard similarity s", "P(candidate)", 1.0, integer_y=False)
    points = " ".join(f"{x_px(i / 200):.1f},{y_px(candidate_probability(i / 200, bands, rows)):.1f}"
                      for i in range(201))
    ticks = "".join(f'<text class="tick" x="{x_px(i / 5):.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle">'
                    f'{i / 5:.1f}</text>' for i in range(6))
    effective = effective_threshold(bands, rows)
    marked = threshold if threshold is not None else effective
    name = "threshold" if threshold is not None else "effective threshold"
    marks = _threshold_line(x_px(marked), f"{name} {marked:.2f}")
    marks += (f'<circle class="threshold-point" cx="{x_px(marked):.1f}" '
              f'cy="{y_px(candidate_probability(marked, bands, rows)):.1f}" r="4"/>')
    if threshold is not None and abs(threshold - effective) >= 0.01:
        marks += (f'<line class="effective" x1="{x_px(effective):.1f}" x2="{x_px(effective):.1f}" '
                  f'y1="{_TOP}" y2="{_H - _BOTTOM}"><title>(1/bands)^(1/rows) = {effective:.3f}</title></line>')
    curve = f'<polyline class="curve" points="{points}"/>'
    return _svg(f"LSH S-curve for {bands} bands of {rows} rows", axes + ticks + curve + marks)


def similarity_histogram_svg(histogram: dict[str, list], threshold: float | None) -> str:
    """Bars over similarity bins: removed near duplicates against their kept document."""
    edges, counts = histogram.get("edges") or [], histogram.get("counts") or []
    label = "similarity of removed near duplicates to their kept document"
    if len(edges) != len(counts) + 1 or not any(counts):
        return _empty_plot(label, "no near duplicates removed")
    x_px = _x_map(edges[0], edges[-1])
    axes, y_px = _axes("estimated Jaccard similarity to kept document", "documents", max(counts), integer_y=True)
    bars = []
    for lo, hi, count in zip(edges, edges[1:], counts):
        if count:
            bars.append(f'<rect class="bar" x="{x_px(lo) + 0.5:.1f}" y="{y_px(count):.1f}" '
                        f'width="{max(x_px(hi) - x_px(lo) - 1, 1):.1f}" height="{y_px(0) - y_px(count):.1f}">'
                        f'<title>{lo:.2f} to {hi:.2f}: {count:,} documents</title></rect>')
    every = math.ceil((len(edges) - 1) / 5)
    bars += [f'<text class="tick" x="{x_px(edge):.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle">{edge:.2f}</text>'
             for edge in edges[::every]]
    if threshold is not None and edges[0] <= threshold <= edges[-1]:
        bars.append(_threshold_line(x_px(threshold), f"threshold {threshold:.2f}"))
    return _svg(label, axes + "".join(bars))


# ---------------------------------------------------------------- sections


def _parameters_section(parameters: dict[str, Any]) -> str:
    rows = []
    for key, value in parameters.items():
        if key == "threshold" and value is None:
            shown = (f"none (bands and rows given; effective "
                     f"{effective_threshold(parameters['bands'], parameters['rows']):.3f})")
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        else:
            shown = _num(value)
        rows.append((f"<code>{_esc(key)}</code>", shown))
    return _table(("parameter", "value"), rows)


def _counts_section(counts: dict[str, Any]) -> str:
    keys = [k for k in COUNT_LABELS if k in counts] + [k for k in counts if k not in COUNT_LABELS]
    rows = [(_esc(COUNT_LABELS.get(k, k)), _int(counts[k])) for k in keys]
    return _table(("count", "value"), rows, numeric=(1,),
                  row_classes=("total" if k in ("removed", "kept") else "" for k in keys))


def _headline(counts: dict[str, Any]) -> str:
    total = counts.get("in") or 0
    removed = counts.get("removed") or 0
    share = f" ({_percent(removed / total)})" if total else ""
    cards = (("documents in", _int(total)), ("kept", _int(counts.get("kept", 0))),
             ("removed", _int(removed) + share), ("clusters", _int(counts.get("near_duplicate_clusters", 0))))
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="card-value">{v}</div><div class="card-label">{_esc(k)}</div></div>'
        for k, v in cards) + "</div>"


def _domains_section(domains: list[dict[str, Any]]) -> str:
    if not domains:
        return '<p class="muted">No domains to show.</p>'
    rows = [(_esc(d["domain"]), _int(d["documents"]), _int(d["duplicates"]),
             f'<span class="rate"><span class="rate-bar" style="width:{100 * min(max(d["rate"], 0), 1):.1f}%">'
             f'</span></span>{_percent(d["rate"])}') for d in domains]
    return _table(("domain", "documents", "duplicates", "duplicate rate"), rows, numeric=(1, 2, 3))


def _pairs_section(pairs: list[dict[str, Any]], threshold: float) -> str:
    if not pairs:
        return '<p class="muted">No candidate pairs were sampled.</p>'
    verified = any("passed" in p for p in pairs)  # written when verification ran on the pairs
    headers = ["document a", "document b", "estimated", "exact", "estimated − exact"]
    headers += ["verification"] if verified else []
    rows, classes = [], []
    for p in pairs:
        estimated, exact = p.get("estimated"), p.get("exact")
        both = isinstance(estimated, (int, float)) and isinstance(exact, (int, float))
        row = [f'<code>{_esc(p["a"])}</code><div class="small">{_url(p.get("url_a"))}</div>',
               f'<code>{_esc(p["b"])}</code><div class="small">{_url(p.get("url_b"))}</div>',
               _num(estimated), _num(exact), f"{estimated - exact:+.3f}" if both else "&mdash;"]
        if verified:
            row.append({True: "passed", False: "rejected"}.get(p.get("passed"), "&mdash;"))
        rows.append(row)
        classes.append("below" if isinstance(exact, (int, float)) and exact < threshold else "")
    return (_table(headers, rows, numeric=(2, 3, 4), row_classes=classes)
            + f'<p class="note">Rows marked <span class="below-key">like this</span> have an exact Jaccard '
              f'similarity below the threshold ({threshold:.2f}).</p>')


def _member_text(kept_text: str, member: dict[str, Any]) -> tuple[str, int, int]:
    """The member's text as HTML with its differences from the kept text marked, and word counts."""
    if member.get("kept"):
        return _esc(member.get("text", "")), 0, 0
    parts, added, missing = [], 0, 0
    for change, run in diff_words(kept_text, member.get("text", "")):
        if change is Change.SAME:
            parts.append(_esc(run))
        elif change is Change.ADDED:
            added += len(run.split())
            body = run.rstrip()
            parts.append(f"<ins>{_esc(body)}</ins>{_esc(run[len(body):])}")
        else:
            missing += len(run.split())
            # One space, not the kept text's own line breaks, so hiding these leaves the member intact.
            body = run.rstrip()
            parts.append(f"<del>{_esc(body)}{' ' if body != run else ''}</del>")
    return "".join(parts), added, missing


def _cluster_panel(index: int, cluster: dict[str, Any]) -> str:
    members = sorted(cluster.get("members") or [], key=lambda m: not m.get("kept"))
    kept_text = members[0].get("text", "") if members else ""
    columns = []
    for member in members:
        text, added, missing = _member_text(kept_text, member)
        if member.get("kept"):
            badge, stats = '<span class="badge kept">kept</span>', "the document this cluster keeps"
        else:
            badge = '<span class="badge removed">removed</span>'
            stats = f'<ins>+{added:,}</ins> <del>−{missing:,}</del> words vs kept'
        columns.append(
            f'<article class="member{" is-kept" if member.get("kept") else ""}">'
            f'<header>{badge} <code>{_esc(member.get("id", ""))}</code>'
            f'<div class="small">{_url(member.get("url"))}</div>'
            f'<div class="small">similarity {_num(member.get("similarity"))} · {stats}</div></header>'
            f'<div class="text">{text}</div></article>')
    shown = len(members)
    size = cluster.get("size", shown)
    more = f" (showing {shown:,})" if shown < size else ""
    return (f'<section class="cluster-panel" id="cluster-{index}" data-panel="{index}"'
            f'{"" if index == 0 else " hidden"}>'
            f'<h3>Cluster <code>{_esc(cluster.get("cluster", ""))}</code>: {size:,} documents{more}</h3>'
            f'<div class="members">{"".join(columns)}</div></section>')


def _cluster_browser(clusters: list[dict[str, Any]]) -> str:
    if not clusters:
        return '<p class="muted">No near-duplicate clusters.</p>'
    buttons = []
    for i, cluster in enumerate(clusters):
        kept = next((m for m in cluster.get("members") or [] if m.get("kept")), {})
        name = kept.get("url") or kept.get("id") or cluster.get("cluster")
        buttons.append(f'<li><button type="button" data-cluster="{i}" aria-controls="cluster-{i}" '
                       f'aria-pressed="{"true" if i == 0 else "false"}">'
                       f'<span class="size">{cluster.get("size", 0):,} documents</span> '
                       f'<span class="small">{_esc(name)}</span></button></li>')
    panels = "".join(_cluster_panel(i, c) for i, c in enumerate(clusters))
    return (f'<div id="cluster-browser" class="browser">'
            f'<nav class="cluster-list" aria-label="largest clusters"><ol>{"".join(buttons)}</ol></nav>'
            f'<div class="cluster-view"><label class="toggle"><input type="checkbox" id="show-missing" checked> '
            f'show words of the kept document that a member lacks (<del>struck through</del>)</label>'
            f'<p class="note">Words a member adds are <ins>highlighted</ins>. Texts are the start of each '
            f'document, so differences at the very end can come from the cut.</p>{panels}</div></div>')


_SCRIPT = """
(function () {
  var browser = document.getElementById("cluster-browser");
  if (!browser) { return; }
  var buttons = browser.querySelectorAll("button[data-cluster]");
  var panels = browser.querySelectorAll(".cluster-panel");
  function show(index) {
    panels.forEach(function (panel) { panel.hidden = panel.getAttribute("data-panel") !== index; });
    buttons.forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.getAttribute("data-cluster") === index));
    });
  }
  buttons.forEach(function (button) {
    button.addEventListener("click", function () { show(button.getAttribute("data-cluster")); });
  });
  var missing = document.getElementById("show-missing");
  missing.addEventListener("change", function () {
    browser.classList.toggle("hide-missing", !missing.checked);
  });
})();
"""

_STYLE = """
:root { --ink: #1d2430; --muted: #667085; --line: #d0d5dd; --soft: #f4f6f8; --accent: #2f6fb0;
        --kept: #1f7a3f; --ins: #fff0a8; --del: #b42318; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 24px; color: var(--ink); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
h1 { font-size: 1.6em; margin: 0 0 4px; } h2 { margin: 36px 0 8px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05em; margin: 8px 0; }
nav.toc a { margin-right: 14px; color: var(--accent); }
.muted, .note, .small { color: var(--muted); } .small { font-size: 0.85em; overflow-wrap: anywhere; }
.note { font-size: 0.9em; }
code { font: 0.9em ui-monospace, "DejaVu Sans Mono", monospace; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 8px 0; min-width: 50%; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); font-weight: 600; } td.num, th.num { text-align: right; }
tr.total td { font-weight: 600; } tr.below td { background: #fdecea; } .below-key { background: #fdecea; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 24px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 16px; min-width: 150px; }
.card-value { font-size: 1.5em; font-weight: 600; } .card-label { color: var(--muted); }
figure { margin: 0; } figcaption { color: var(--muted); font-size: 0.9em; }
svg.plot { width: 100%; max-width: 560px; height: auto; display: block; }
svg text { font: 11px system-ui, "DejaVu Sans", sans-serif; fill: var(--ink); }
svg .label { font-size: 12px; fill: var(--muted); } svg .empty { font-size: 14px; fill: var(--muted); }
svg .grid { stroke: #eaecf0; } svg .axis { stroke: #98a2b3; }
svg .frame { fill: var(--soft); stroke: var(--line); stroke-dasharray: 4 4; }
svg .bar { fill: var(--accent); } svg .bar:hover { fill: #1b4f85; }
svg .curve { fill: none; stroke: var(--accent); stroke-width: 2.5; }
svg .threshold { stroke: var(--del); stroke-dasharray: 5 4; stroke-width: 1.5; }
svg .threshold-label { fill: var(--del); } svg .threshold-point { fill: var(--del); }
svg .effective { stroke: var(--muted); stroke-dasharray: 2 3; }
.rate { display: inline-block; width: 80px; height: 8px; background: var(--soft); margin-right: 8px;
        vertical-align: middle; } .rate-bar { display: block; height: 100%; background: var(--accent); }
a { color: var(--accent); }
.browser { display: grid; grid-template-columns: 260px 1fr; gap: 16px; align-items: start; }
.cluster-view { min-width: 0; }  /* let wide clusters scroll instead of widening the page */
.cluster-list ol { list-style: none; margin: 0; padding: 0; max-height: 80vh; overflow-y: auto; }
.cluster-list button { width: 100%; text-align: left; padding: 6px 8px; margin: 0 0 4px; cursor: pointer;
                       border: 1px solid var(--line); border-radius: 4px; background: #fff; font: inherit; }
.cluster-list button[aria-pressed="true"] { border-color: var(--accent); background: #eaf2fb; }
.cluster-list .size { font-weight: 600; }
.members { display: grid; grid-auto-flow: column; grid-auto-columns: minmax(300px, 1fr); gap: 12px;
           overflow-x: auto; padding-bottom: 8px; }
.member { border: 1px solid var(--line); border-radius: 6px; padding: 10px; min-width: 0; }
.member.is-kept { border: 2px solid var(--kept); }
.member header { border-bottom: 1px solid var(--line); padding-bottom: 6px; margin-bottom: 8px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 0.8em; font-weight: 600;
         color: #fff; } .badge.kept { background: var(--kept); } .badge.removed { background: var(--muted); }
.text { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.92em; }
ins { background: var(--ins); text-decoration: none; }
del { color: var(--del); text-decoration: line-through; }
.hide-missing .text del { display: none; }
.toggle { display: block; margin-bottom: 4px; }
@media (max-width: 800px) { .browser { grid-template-columns: 1fr; } }
"""


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one self-contained HTML page."""
    parameters, counts = report["parameters"], report["counts"]
    bands, rows = parameters["bands"], parameters["rows"]
    threshold = parameters.get("threshold")
    marked = threshold if threshold is not None else effective_threshold(bands, rows)
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    # Only the script above may run, and nothing may be fetched: an offline page by construction.
    policy = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'; "
              "img-src data:; base-uri 'none'; form-action 'none'")
    effective = effective_threshold(bands, rows)
    effective_note = (f" The dotted line is the approximation (1/bands)<sup>1/rows</sup> = {effective:.2f}."
                      if threshold is not None and abs(threshold - effective) >= 0.01 else "")
    job = _esc(report["job"])
    sections = [
        f'<h1>Near-duplicate removal: {job}</h1>',
        '<nav class="toc"><a href="#overview">overview</a><a href="#plots">plots</a>'
        '<a href="#domains">domains</a><a href="#pairs">pairs</a><a href="#clusters">clusters</a></nav>',
        f'<section id="overview"><h2>Overview</h2>{_headline(counts)}<div class="grid2">'
        f'<div><h3>Counts</h3>{_counts_section(counts)}</div>'
        f'<div><h3>Parameters</h3>{_parameters_section(parameters)}</div></div></section>',
        '<section id="plots"><h2>Plots</h2><div class="grid2">'
        f'<figure id="s-curve">{s_curve_svg(bands, rows, threshold)}<figcaption>LSH S-curve: '
        f'P(candidate | s) = 1 − (1 − s<sup>{rows}</sup>)<sup>{bands}</sup> for {bands} bands of {rows} rows; '
        f'at s = {marked:.2f} it is {candidate_probability(marked, bands, rows):.2f}.{effective_note}'
        '</figcaption></figure>'
        '<figure id="similarity-histogram">'
        f'{similarity_histogram_svg(report.get("similarity_histogram") or {}, threshold)}'
        '<figcaption>Estimated Jaccard similarity of each removed near duplicate to the document its '
        'cluster keeps.</figcaption></figure>'
        f'<figure id="cluster-sizes">{cluster_size_svg(report.get("cluster_sizes") or {})}'
        '<figcaption>Near-duplicate clusters by size (documents per cluster, kept one included).'
        '</figcaption></figure></div></section>',
        f'<section id="domains"><h2>Domains</h2>{_domains_section(report.get("domains") or [])}</section>',
        '<section id="pairs"><h2>Sampled candidate pairs</h2><p class="note">MinHash estimate against the '
        'exact Jaccard similarity of the shingle sets.</p>'
        f'{_pairs_section(report.get("pairs") or [], marked)}</section>',
        f'<section id="clusters"><h2>Cluster browser</h2>{_cluster_browser(report.get("largest_clusters") or [])}'
        '</section>',
    ]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>winnow dedup report: {job}</title><style>{_STYLE}</style></head>\n'
            f'<body>{"".join(sections)}<script>{_SCRIPT}</script></body></html>\n')


# ---------------------------------------------------------------- terminal and command


def print_summary(report: dict[str, Any], html_path: str, console: Console) -> None:
    """Counts, the largest clusters and the top domains as rich tables, then where the HTML is."""
    counts = report["counts"]
    table = Table(title=Text(f"near-duplicate removal: {report['job']}"))
    table.add_column("count")
    table.add_column("documents", justify="right")
    for key in [k for k in COUNT_LABELS if k in counts] + [k for k in counts if k not in COUNT_LABELS]:
        style = "bold green" if key == "kept" else None
        table.add_row(Text(COUNT_LABELS.get(key, key)), f"{counts[key]:,}", style=style)
    console.print(table)

    clusters = report.get("largest_clusters") or []
    if clusters:
        table = Table(title="largest clusters")
        table.add_column("size", justify="right")
        table.add_column("kept document")
        table.add_column("URL", overflow="fold")
        for cluster in clusters[:SUMMARY_CLUSTERS]:
            kept = next((m for m in cluster.get("members") or [] if m.get("kept")), {})
            table.add_row(f"{cluster['size']:,}", Text(str(cluster["cluster"])), Text(kept.get("url") or ""))
        console.print(table)
    else:
        console.print("no near-duplicate clusters")

    domains = report.get("domains") or []
    if domains:
        table = Table(title="top domains by duplicates")
        table.add_column("domain")
        table.add_column("documents", justify="right")
        table.add_column("duplicates", justify="right")
        table.add_column("rate", justify="right")
        for d in domains[:SUMMARY_DOMAINS]:
            table.add_row(Text(d["domain"]), f"{d['documents']:,}", f"{d['duplicates']:,}", _percent(d["rate"]))
        console.print(table)
    console.print(Text(f"report:   {html_path}"), soft_wrap=True)


def load_report(run_dir: str | os.PathLike) -> dict[str, Any]:
    """RUN_DIR/dedup/report.json, checked for its version and required keys."""
    run = Path(run_dir)
    path = run / DEDUP_DIR / REPORT_JSON
    rerun = "run the job with `winnow run JOB.toml` first"
    if not run.is_dir():
        raise ReportError(f"{run}: no such run directory; {rerun}")
    if not path.is_file():
        raise ReportError(f"{path}: not found; the run has no near-duplicate report, {rerun} with dedup enabled")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: unreadable ({error}); {rerun} again") from error
    if not isinstance(report, dict):
        raise ReportError(f"{path}: expected a JSON object; {rerun} again")
    if report.get("version") != REPORT_VERSION:
        raise ReportError(f"{path}: report version {report.get('version')!r}, this winnow reads version "
                          f"{REPORT_VERSION}; {rerun} again with this version")
    missing = [key for key in REQUIRED_KEYS if key not in report]
    if missing:
        raise ReportError(f"{path}: missing keys {', '.join(missing)}; {rerun} again")
    return report


def run_report(run_dir: str, console: Console) -> int:
    """(Re)write RUN_DIR/dedup/report.html from report.json and print the summary; 0, or 2 with one line."""
    try:
        report = load_report(run_dir)
    except ReportError as error:
        Console(stderr=True).print(f"winnow: error: {error}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_NO_REPORT
    html_path = Path(run_dir) / DEDUP_DIR / REPORT_HTML
    partial = html_path.with_name(REPORT_HTML + ".partial")
    partial.write_text(render_html(report), encoding="utf-8")
    os.replace(partial, html_path)  # a reader never sees half a page
    print_summary(report, str(html_path), console)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m pipeline.report RUN_DIR", file=sys.stderr)
        sys.exit(EXIT_NO_REPORT)
    sys.exit(run_report(sys.argv[1], Console()))

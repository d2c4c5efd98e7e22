#!/usr/bin/env python3
"""Build winnow's bundled sample crawl: a small, realistic, multilingual web
crawl stored as Common-Crawl-like WARC.gz files, plus a ground-truth manifest.

Usage::

    python jobs/sample/build.py [--out-dir jobs/sample] [--pages N] [--seed S]
                                [--files K] [--cache-dir DIR] [--no-download]

Article text comes from DFSG-free Debian documentation packages (see
SOURCE_PACKAGES) that are fetched once with ``apt-get download`` into a cache
directory and unpacked with ``dpkg-deb -x``.  Everything else -- page
templates, spam, binary files, the phenomena applied to pages -- is generated
here.  Output is byte-for-byte deterministic for the same arguments and the
same source package versions (recorded in SOURCES.md and manifest.json).

See jobs/sample/README.md for the layout of the output and the manifest.
"""

import argparse
import dataclasses
import datetime as dt
import gzip
import hashlib
import html
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path
from urllib.parse import quote

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

HERE = Path(__file__).resolve().parent
DEFAULT_OUT_DIR = HERE
DEFAULT_PAGES = 400
DEFAULT_SEED = 1234
DEFAULT_FILES = 2
DEFAULT_CACHE_DIR = Path(os.environ.get("WINNOW_SAMPLE_CACHE",
                                        "~/.cache/winnow-sample-sources")).expanduser()

GENERATOR = "winnow-sample-build/1.0"
#: Bump when article extraction changes, so cached parses are not reused.
PARSER_VERSION = 4
#: Namespace for the uuid5 WARC-Record-IDs.
RECORD_NS = uuid.UUID("6f0b7c55-2a55-4e0c-9d1e-77e1f3a0c0de")
#: Crawl start; WARC-Date values count up from here.
CRAWL_START = dt.datetime(2024, 5, 6, 9, 0, 0, tzinfo=dt.timezone.utc)

MIN_ARTICLE_BYTES = 2000      # UTF-8 bytes of article text
MAX_ARTICLE_BYTES = 15000
TARGET_ARTICLE_BYTES = 5000  # short sections are packed up to about this

#: Kind -> share of pages.  "article" takes the remainder.
KIND_SHARES = {
    "exact_duplicate": 0.05,
    "near_duplicate": 0.05,
    "mojibake": 0.03,
    "legacy_charset": 0.05,
    "wrong_charset": 0.02,
    "spam": 0.05,
    "non_html": 0.03,
    "boilerplate_only": 0.02,
}
KINDS = ["article"] + list(KIND_SHARES)

#: Relative weight of each language among plain article pages.
LANG_WEIGHTS = {"en": 4, "de": 2, "fr": 2, "es": 2, "ja": 2, "zh": 2,
                "it": 1, "pt": 1, "ru": 1, "nl": 1, "ko": 1}
LANGS = list(LANG_WEIGHTS)


@dataclasses.dataclass(frozen=True)
class SourcePackage:
    name: str      # Debian binary package
    lang: str      # ISO 639-1 code used in the manifest
    tag: str       # language tag in the HTML file names (foo.<tag>.html)

    @property
    def family(self) -> str:
        """The document the package is a translation of."""
        return "debian-faq" if self.name.startswith("debian-faq") else "debian-reference"


SOURCE_PACKAGES = [
    SourcePackage("debian-reference-en", "en", "en"),
    SourcePackage("debian-reference-de", "de", "de"),
    SourcePackage("debian-reference-fr", "fr", "fr"),
    SourcePackage("debian-reference-es", "es", "es"),
    SourcePackage("debian-reference-it", "it", "it"),
    SourcePackage("debian-reference-pt", "pt", "pt"),
    SourcePackage("debian-reference-ja", "ja", "ja"),
    SourcePackage("debian-reference-zh-cn", "zh", "zh-cn"),
    SourcePackage("debian-faq", "en", "en"),
    SourcePackage("debian-faq-de", "de", "de"),
    SourcePackage("debian-faq-fr", "fr", "fr"),
    SourcePackage("debian-faq-it", "it", "it"),
    SourcePackage("debian-faq-nl", "nl", "nl"),
    SourcePackage("debian-faq-ru", "ru", "ru"),
    SourcePackage("debian-faq-ja", "ja", "ja"),
    SourcePackage("debian-faq-zh-cn", "zh", "zh-cn"),
    SourcePackage("debian-faq-ko", "ko", "ko"),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Fetching and unpacking the Debian packages
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class FetchedPackage:
    spec: SourcePackage
    deb: Path
    version: str
    root: Path              # unpacked tree
    license: str            # short license name
    copyright_text: str     # full usr/share/doc/<pkg>/copyright


def _deb_version(deb: Path) -> str:
    out = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def _find_deb(debs_dir: Path, name: str) -> Path | None:
    found = sorted(p for p in debs_dir.glob(f"{name}_*.deb")
                   if p.name.split("_", 1)[0] == name)
    return found[-1] if found else None


def fetch_packages(cache_dir: Path, packages=SOURCE_PACKAGES,
                   download: bool = True) -> list[FetchedPackage]:
    """Make sure every package's .deb is in ``cache_dir/debs`` and unpacked in
    ``cache_dir/tree``.  apt-get is only run for packages that are missing."""
    debs_dir = cache_dir / "debs"
    tree_dir = cache_dir / "tree"
    debs_dir.mkdir(parents=True, exist_ok=True)
    tree_dir.mkdir(parents=True, exist_ok=True)
    missing = [p.name for p in packages if _find_deb(debs_dir, p.name) is None]
    if missing:
        if not download:
            raise SystemExit(f"missing source packages in {debs_dir}: {missing} "
                             "(run without --no-download, or fill the cache)")
        if shutil.which("apt-get") is None:
            raise SystemExit("apt-get not found; put the .deb files for "
                             f"{missing} into {debs_dir} by hand")
        log(f"apt-get download {' '.join(missing)}  (into {debs_dir})")
        res = subprocess.run(["apt-get", "download", *missing], cwd=debs_dir,
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit("apt-get download failed (is 'apt-get update' done?):\n"
                             + res.stderr)
    fetched = []
    for spec in packages:
        deb = _find_deb(debs_dir, spec.name)
        if deb is None:
            raise SystemExit(f"{spec.name}: .deb not found after download")
        root = tree_dir / deb.stem
        marker = root / ".unpacked"
        if not marker.exists():
            if root.exists():
                shutil.rmtree(root)
            root.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            marker.write_text(deb.name + "\n")
        version = deb.stem.split("_")[1] if deb.stem.count("_") >= 2 else _deb_version(deb)
        copyright_path = root / "usr/share/doc" / spec.name / "copyright"
        text = copyright_path.read_text(encoding="utf-8", errors="replace")
        fetched.append(FetchedPackage(spec, deb, version, root,
                                      license_name(text), text))
    return fetched


def license_name(copyright_text: str) -> str:
    """Short license name from a Debian copyright file.  Machine-readable
    (DEP-5) files give the License field of the ``Files: *`` stanza; the
    older free-form files are classified by their wording."""
    if copyright_text.startswith("Format:"):
        for stanza in re.split(r"\n\s*\n", copyright_text):
            if re.search(r"^Files:\s*\*\s*$", stanza, re.M):
                m = re.search(r"^License:\s*(\S.*)$", stanza, re.M)
                if m:
                    return m.group(1).strip()
    if "Permission is granted to make and distribute verbatim copies" in copyright_text:
        return "permission notice: verbatim and modified copies allowed under the same notice"
    if "GNU General Public License" in copyright_text:
        return "GPL (see copyright file)"
    return "see copyright file"


# ---------------------------------------------------------------------------
# Cutting the DocBook HTML into articles
# ---------------------------------------------------------------------------

ADMONITIONS = {"note", "warning", "tip", "caution", "important"}
SKIP_DIV_CLASSES = {"toc", "navheader", "navfooter", "footnotes", "list-of-tables",
                    "list-of-figures", "list-of-examples", "list-of-procedures"}
HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5}
_WS = re.compile(r"\s+")
_NUMBERING = re.compile(r"^\s*(?:[A-Z]\.|\d+\.)(?:\d+\.)*\s*|^\s*第\s*\d+\s*章\s*|"
                        r"^\s*(?:Chapter|Kapitel|Chapitre|Capítulo|Capitolo|Глава|Hoofdstuk)\s+\d+\.\s*")


@dataclasses.dataclass
class Block:
    kind: str      # "p", "ul", "ol", "pre", "table", "dl", "h2", "h3"
    html: str      # rendered HTML of the block
    text: str      # plain text (for sizes, language checks and edits)


@dataclasses.dataclass
class Article:
    lang: str
    title: str
    blocks: list
    package: str
    source_file: str
    anchor: str
    section: str = ""          # enclosing section title (for breadcrumbs)
    remix: bool = False

    @property
    def text_bytes(self) -> int:
        return sum(len(b.text.encode("utf-8")) + 1 for b in self.blocks) + len(self.title.encode())

    def to_json(self):
        d = dataclasses.asdict(self)
        d["blocks"] = [[b.kind, b.html, b.text] for b in self.blocks]
        return d

    @classmethod
    def from_json(cls, d):
        d = dict(d)
        d["blocks"] = [Block(*b) for b in d["blocks"]]
        return cls(**d)


def _esc(s: str | None) -> str:
    return html.escape(s or "", quote=False)


def _tag(el) -> str | None:
    t = el.tag
    return t.lower() if isinstance(t, str) else None


def _clean(s: str) -> str:
    return _WS.sub(" ", s or "").strip()


def _inline(el, lang: str) -> str:
    """Render an element's inline content as simple HTML."""
    parts = [_esc(el.text)]
    for c in el:
        t = _tag(c)
        if t is None:
            parts.append(_esc(c.tail))
            continue
        inner = _inline(c, lang)
        if t in ("code", "tt", "kbd", "samp", "var"):
            parts.append(f"<code>{inner}</code>")
        elif t in ("em", "i", "cite"):
            parts.append(f"<em>{inner}</em>")
        elif t in ("strong", "b"):
            parts.append(f"<strong>{inner}</strong>")
        elif t == "a" and c.get("href") and inner.strip():
            href = c.get("href")
            anchor = href.rsplit("#", 1)[-1] if "#" in href else href.rsplit("/", 1)[-1]
            anchor = re.sub(r"[^A-Za-z0-9_-]+", "-", anchor).strip("-")[:60] or "ref"
            parts.append(f'<a href="/{lang}/ref/{anchor}">{inner}</a>')
        elif t in ("br", "img", "script", "style"):
            parts.append(" ")
        elif t == "sup" and c.get("class", "") == "footnote":
            pass
        else:
            parts.append(inner)
        parts.append(_esc(c.tail))
    return "".join(parts)


def _block_p(el, lang):
    h = _clean(_inline(el, lang))
    t = _clean(el.text_content())
    return Block("p", f"<p>{h}</p>", t) if t else None


def _block_list(el, lang):
    kind = "ol" if _tag(el) == "ol" else "ul"
    items, texts = [], []
    for li in el:
        if _tag(li) != "li":
            continue
        t = _clean(li.text_content())
        if not t or block_is_foreign(lang, t):
            continue
        # list items usually wrap a <p>; flatten to inline content
        ps = [c for c in li if _tag(c) == "p"]
        if ps and len(ps) == len([c for c in li if _tag(c)]):
            h = " ".join(_clean(_inline(p, lang)) for p in ps)
        else:
            h = _esc(t)
        items.append(f"<li>{h}</li>")
        texts.append(t)
    if not items:
        return None
    return Block(kind, f"<{kind}>" + "".join(items) + f"</{kind}>", "\n".join(texts))


def _block_pre(el):
    t = (el.text_content() or "").strip("\n")
    if not t.strip():
        return None
    lines = t.splitlines()[:40]
    t = "\n".join(line.rstrip() for line in lines)
    return Block("pre", f"<pre>{_esc(t)}</pre>", t)


def _block_table(el, lang):
    rows = []
    for tr in el.iter("tr"):
        cells = [_clean(c.text_content()) for c in tr if _tag(c) in ("td", "th")]
        if any(cells) and not block_is_foreign(lang, " ".join(cells)):
            rows.append(cells)
    if not rows:
        return None
    rows = rows[:30]
    out = ["<table>"]
    for i, r in enumerate(rows):
        cell = "th" if i == 0 else "td"
        out.append("<tr>" + "".join(f"<{cell}>{_esc(c)}</{cell}>" for c in r) + "</tr>")
    out.append("</table>")
    return Block("table", "".join(out), "\n".join(" | ".join(r) for r in rows))


def _block_dl(el, lang):
    parts, texts = ["<dl>"], []
    for c in el:
        t = _tag(c)
        if t in ("dt", "dd"):
            txt = _clean(c.text_content())
            if txt:
                parts.append(f"<{t}>{_esc(txt)}</{t}>")
                texts.append(txt)
    parts.append("</dl>")
    if not texts:
        return None
    return Block("dl", "".join(parts), "\n".join(texts))


def _walk(el, lang, out, in_admonition=False):
    """Emit ("h", level, title, anchor) and ("b", Block) events in order."""
    for c in el:
        t = _tag(c)
        if t is None:
            continue
        cls = set((c.get("class") or "").split())
        if t in ("script", "style", "img", "hr"):
            continue
        if t == "div" and cls & SKIP_DIV_CLASSES:
            continue
        if t == "div" and "titlepage" in cls:
            if not in_admonition:
                for h in c.iter():
                    if _tag(h) in HEADING_TAGS:
                        anchor = ""
                        for a in h.iter("a"):
                            anchor = a.get("id") or a.get("name") or ""
                            if anchor:
                                break
                        out.append(("h", HEADING_TAGS[_tag(h)], _clean(h.text_content()), anchor))
                        break
            continue
        if t in HEADING_TAGS:
            if not in_admonition:
                out.append(("h", HEADING_TAGS[t], _clean(c.text_content()), c.get("id") or ""))
            continue
        if t == "div" and cls & ADMONITIONS:
            _walk(c, lang, out, True)
            continue
        block = None
        if t == "p":
            block = _block_p(c, lang)
        elif t in ("ul", "ol"):
            block = _block_list(c, lang)
        elif t == "pre":
            block = _block_pre(c)
        elif t == "dl":
            block = _block_dl(c, lang)
        elif t == "table":
            if in_admonition or (c.get("summary") or "").lower() in ADMONITIONS:
                for td in c.iter("td"):
                    _walk(td, lang, out, True)
                continue
            block = _block_table(c, lang)
        elif t == "th" and in_admonition:
            continue
        else:
            _walk(c, lang, out, in_admonition)
            continue
        if block is not None:
            out.append(("b", block))


# Script / stopword checks: translations are sometimes partial, and an
# untranslated English section must not be labelled as German, say.
_SCRIPT_RANGES = {
    "ja": [(0x3040, 0x30FF), (0x4E00, 0x9FFF)],
    "zh": [(0x4E00, 0x9FFF)],
    "ko": [(0xAC00, 0xD7AF), (0x1100, 0x11FF)],
    "ru": [(0x0400, 0x04FF)],
}
_STOPWORDS = {
    "en": "the of and to is in that for are with this you be it not as by on or can".split(),
    "de": ("der die das und ist nicht mit ein eine für den von zu auf sie werden sich "
           "auch im in an es").split(),
    "fr": ("le la les des et est une pour dans que qui sur pas par du avec sont au vous "
           "ce on en il ne se un de").split(),
    "es": "el la los las de que y en es una para por con del se como su al puede un".split(),
    "it": ("il la le di che è per una con del della sono non gli un si da come nel in "
           "a è").split(),
    "pt": "o a os as de que e é um uma para com do da em não por se são no na".split(),
    "nl": "de het een van en is dat in op te voor met niet zijn die wordt kan u".split(),
}


def language_ok(lang: str, text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) < 200:
        return False
    if lang in _SCRIPT_RANGES:
        ranges = _SCRIPT_RANGES[lang]
        hits = sum(1 for ch in letters if any(a <= ord(ch) <= b for a, b in ranges))
        if lang == "zh":  # no kana in Chinese
            if sum(1 for ch in letters if 0x3040 <= ord(ch) <= 0x30FF) > 5:
                return False
        return hits / len(letters) >= 0.35
    words = re.findall(r"[^\W\d_]+", text.lower())
    if len(words) < 80:
        return False
    own = set(_STOPWORDS[lang])
    counts = {code: sum(1 for w in words if w in set(sw)) for code, sw in _STOPWORDS.items()}
    if lang != "en" and counts["en"] >= counts[lang]:
        return False
    return sum(1 for w in words if w in own) / len(words) >= 0.12


#: Texts (paragraphs, list items, table rows, headings) of the English
#: original of the document being parsed; a translation that contains one
#: verbatim left it untranslated.  Set by articles_from_html().
_ENGLISH_TEXTS: frozenset = frozenset()


def block_is_foreign(lang: str, text: str) -> bool:
    """True for an untranslated (English) paragraph inside a translation."""
    if lang == "en":
        return False
    if len(text) >= 12 and _clean(text) in _ENGLISH_TEXTS:
        return True
    letters = [ch for ch in text if ch.isalpha()]
    if lang in _SCRIPT_RANGES:
        if len(letters) < 25:
            return False
        ranges = _SCRIPT_RANGES[lang]
        hits = sum(1 for ch in letters if any(a <= ord(ch) <= b for a, b in ranges))
        return hits / len(letters) < 0.1
    words = re.findall(r"[^\W\d_]+", text.lower())
    if len(words) < 4:
        return False
    en = sum(1 for w in words if w in _EN_STOP)
    own = sum(1 for w in words if w in _STOPSETS[lang])
    if own == 0 and en >= 1:
        return True
    return len(words) >= 6 and en >= 2 and en > own


def heading_is_foreign(lang: str, text: str) -> bool:
    """Untranslated English heading in a translation (headings are short, so
    this is stricter than block_is_foreign)."""
    if lang == "en":
        return False
    if len(text) >= 8 and _clean(text) in _ENGLISH_TEXTS:
        return True
    letters = [ch for ch in text if ch.isalpha()]
    if lang in _SCRIPT_RANGES:
        ranges = _SCRIPT_RANGES[lang]
        return len(letters) >= 8 and not any(
            a <= ord(ch) <= b for ch in letters for a, b in ranges)
    words = re.findall(r"[^\W\d_]+", text.lower())
    en = sum(1 for w in words if w in _EN_STOP)
    own = sum(1 for w in words if w in _STOPSETS[lang])
    if len(words) >= 3 and en >= 1 and own == 0:
        return True
    # two-word English headings such as "Customizing vim" (not for Dutch,
    # where -ing is a common ending too)
    return lang != "nl" and len(words) >= 2 and own == 0 and any(
        w.endswith("ing") and w.isascii() for w in words)


_STOPSETS = {k: set(v) for k, v in _STOPWORDS.items()}
_EN_STOP = _STOPSETS["en"]


def _strip_numbering(title: str) -> str:
    t = _NUMBERING.sub("", title).strip()
    return t or title


def _parse_events(data: bytes, lang: str) -> list:
    import lxml.html
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True)
    doc = lxml.html.document_fromstring(data, parser=parser)
    body = doc.find("body")
    events: list = []
    if body is not None:
        _walk(body, lang, events)
    return events


def english_texts(data: bytes) -> set:
    """All heading, paragraph, list-item and table-row texts of an English
    document (see _ENGLISH_TEXTS)."""
    global _ENGLISH_TEXTS
    saved, _ENGLISH_TEXTS = _ENGLISH_TEXTS, frozenset()
    try:
        out = set()
        for ev in _parse_events(data, "en"):
            if ev[0] == "h":
                out.add(_clean(ev[2]))
                out.add(_clean(_strip_numbering(ev[2])))
            else:
                out.add(_clean(ev[1].text))
                out.update(_clean(line) for line in ev[1].text.split("\n"))
                if ev[1].kind == "table":
                    out.update(_clean(line.replace(" | ", " ")) for line in ev[1].text.split("\n"))
        return out
    finally:
        _ENGLISH_TEXTS = saved


def articles_from_html(data: bytes, pkg: str, rel: str, lang: str,
                       english: set | frozenset = frozenset()) -> list[Article]:
    """Cut one DocBook HTML file into articles.  ``english``: texts of the
    English original, used to drop untranslated fragments."""
    global _ENGLISH_TEXTS
    _ENGLISH_TEXTS = frozenset(english)
    try:
        return _articles_from_events(_parse_events(data, lang), pkg, rel, lang)
    finally:
        _ENGLISH_TEXTS = frozenset()


def _articles_from_events(events: list, pkg: str, rel: str, lang: str) -> list[Article]:
    # units: a heading and the blocks that follow it
    units = []  # [level, title, anchor, blocks]
    for ev in events:
        if ev[0] == "h":
            units.append([ev[1], _strip_numbering(ev[2]), ev[3], []])
        elif units:
            units[-1][3].append(ev[1])
    chapter = next((u[1] for u in units if u[0] == 1), "")
    if heading_is_foreign(lang, chapter):
        chapter = ""
    # group by level-2 headings (level 1 = chapter intro is a group of its own)
    groups: list = []
    for u in units:
        if u[0] <= 2 or not groups:
            groups.append([u])
        else:
            groups[-1].append(u)

    def size(us):
        return sum(len(u[1].encode()) + sum(len(b.text.encode()) + 1 for b in u[3]) for u in us)

    # split over-long groups at subsection boundaries ...
    pieces = []
    for g in groups:
        cur = []
        for u in g:
            if cur and size(cur) + size([u]) > MAX_ARTICLE_BYTES:
                pieces.append(cur)
                cur = []
            cur.append(u)
        if cur:
            pieces.append(cur)
    # ... and pack short consecutive pieces (FAQ answers) into one article
    chunks, cur = [], []
    for piece in pieces:
        starts_group = piece[0][0] <= 2
        if cur and (size(cur) + size(piece) > MAX_ARTICLE_BYTES
                    or (starts_group and size(cur) >= TARGET_ARTICLE_BYTES)):
            chunks.append(cur)
            cur = []
        cur.extend(piece)
    if cur:
        if chunks and size(cur) < MIN_ARTICLE_BYTES and size(chunks[-1]) + size(cur) <= MAX_ARTICLE_BYTES * 1.2:
            chunks[-1].extend(cur)
        else:
            chunks.append(cur)

    arts = []
    for ch in chunks:
        # the first unit titles the page; a chapter intro (level 1) is only
        # used as the title when nothing else is there
        first = ch[0]
        if first[0] == 1 and len(ch) > 1 and not first[3]:
            ch = ch[1:]
            first = ch[0]
        blocks: list[Block] = []
        total = 0
        for k, u in enumerate(ch):
            if k > 0 and not heading_is_foreign(lang, u[1]):
                lvl = "h2" if u[0] <= 3 else "h3"
                blocks.append(Block(lvl, f"<{lvl}>{_esc(u[1])}</{lvl}>", u[1]))
            for b in u[3]:
                if b.kind != "pre" and block_is_foreign(lang, b.text):
                    continue
                bl = len(b.text.encode()) + 1
                if total + bl > MAX_ARTICLE_BYTES and total >= MIN_ARTICLE_BYTES:
                    break
                blocks.append(b)
                total += bl
        # drop trailing headings without content
        while blocks and blocks[-1].kind in ("h2", "h3"):
            blocks.pop()
        art = Article(lang, first[1], blocks, pkg, rel, first[2], chapter or first[1])
        if _article_ok(art):
            arts.append(art)
    return arts


def _article_ok(art: Article) -> bool:
    """Size and language checks for a candidate article."""
    lang, blocks = art.lang, art.blocks
    if heading_is_foreign(lang, art.title):
        return False
    if not MIN_ARTICLE_BYTES <= art.text_bytes <= MAX_ARTICLE_BYTES * 1.25:
        return False
    prose = " ".join(b.text for b in blocks if b.kind in ("p", "ul", "ol", "dl"))
    if not language_ok(lang, prose):
        return False
    if lang in _STOPSETS and lang != "en":
        words = re.findall(r"[^\W\d_]+", " ".join(b.text for b in blocks if b.kind != "pre").lower())
        own = sum(1 for w in words if w in _STOPSETS[lang])
        en = sum(1 for w in words if w in _EN_STOP)
        if en > 0.5 * own:
            return False
    return True


def _html_files(pkg: FetchedPackage) -> list[Path]:
    suffix = f".{pkg.spec.tag}.html"
    files = [p for p in pkg.root.rglob(f"*{suffix}")
             if p.is_file() and not p.name.startswith("index.")]
    return sorted(files)


def load_articles(fetched: list[FetchedPackage], cache_dir: Path) -> dict[str, list[Article]]:
    """Articles per language, in a fixed order.  Parsed results are cached."""
    key = hashlib.sha256(json.dumps(
        [PARSER_VERSION, MIN_ARTICLE_BYTES, MAX_ARTICLE_BYTES, TARGET_ARTICLE_BYTES,
         [(f.spec.name, f.deb.name, f.spec.lang) for f in fetched]]).encode()).hexdigest()[:16]
    cache_file = cache_dir / "parsed" / f"articles-{key}.json.gz"
    if cache_file.exists():
        with gzip.open(cache_file, "rt", encoding="utf-8") as fh:
            raw = json.load(fh)
        return {lang: [Article.from_json(a) for a in arts] for lang, arts in raw.items()}
    english: dict[str, set] = {}
    for f in fetched:
        if f.spec.lang == "en":
            texts = english.setdefault(f.spec.family, set())
            for path in _html_files(f):
                texts |= english_texts(path.read_bytes())
    pool: dict[str, list[Article]] = {lang: [] for lang in LANGS}
    for f in fetched:
        en = english.get(f.spec.family, set()) if f.spec.lang != "en" else set()
        for path in _html_files(f):
            rel = str(path.relative_to(f.root))
            pool.setdefault(f.spec.lang, []).extend(
                articles_from_html(path.read_bytes(), f.spec.name, rel, f.spec.lang, en))
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        json.dump({lang: [a.to_json() for a in arts] for lang, arts in pool.items()}, fh)
    tmp.replace(cache_file)
    return pool


# ---------------------------------------------------------------------------
# Site chrome: UI strings, sites, templates
# ---------------------------------------------------------------------------

_UI_KEYS = ("home guides community blog about contact search privacy terms cookies accept "
            "reject related recent archives categories tags reply newsletter subscribe login "
            "register edit updated posted by next prev rights skip helpful yes no no_results "
            "page_of tools print help faq sitemap share username password forgot email "
            "random_page recent_changes").split()

# One line per language, fields in _UI_KEYS order, separated by " ~ ".
_UI_TABLE = {
    "en": "Home ~ Guides ~ Community ~ Blog ~ About us ~ Contact ~ Search ~ Privacy policy ~ "
          "Terms of use ~ This website uses cookies to improve your experience. By continuing "
          "to browse, you agree to our use of cookies. ~ Accept all ~ Reject ~ Related articles ~ "
          "Recent posts ~ Archives ~ Categories ~ Tags ~ Leave a reply ~ Subscribe to our "
          "newsletter ~ Subscribe ~ Log in ~ Create account ~ Edit this page ~ Last updated ~ "
          "Posted on ~ by ~ Next ~ Previous ~ All rights reserved ~ Skip to content ~ Was this "
          "article helpful? ~ Yes ~ No ~ Sorry, nothing matched your search. ~ Page {n} of {m} ~ "
          "Tools ~ Print version ~ Help ~ FAQ ~ Sitemap ~ Share ~ Username ~ Password ~ Forgot "
          "your password? ~ Email address ~ Random page ~ Recent changes",
    "de": "Startseite ~ Anleitungen ~ Community ~ Blog ~ Über uns ~ Kontakt ~ Suche ~ "
          "Datenschutzerklärung ~ Nutzungsbedingungen ~ Diese Website verwendet Cookies, um Ihr "
          "Nutzungserlebnis zu verbessern. Wenn Sie weitersurfen, stimmen Sie der Verwendung von "
          "Cookies zu. ~ Alle akzeptieren ~ Ablehnen ~ Ähnliche Artikel ~ Neueste Beiträge ~ "
          "Archiv ~ Kategorien ~ Schlagwörter ~ Schreibe einen Kommentar ~ Newsletter abonnieren ~ "
          "Abonnieren ~ Anmelden ~ Konto erstellen ~ Diese Seite bearbeiten ~ Zuletzt aktualisiert ~ "
          "Veröffentlicht am ~ von ~ Weiter ~ Zurück ~ Alle Rechte vorbehalten ~ Zum Inhalt springen ~ "
          "War dieser Artikel hilfreich? ~ Ja ~ Nein ~ Leider wurde nichts gefunden. ~ "
          "Seite {n} von {m} ~ Werkzeuge ~ Druckversion ~ Hilfe ~ Häufige Fragen ~ Sitemap ~ "
          "Teilen ~ Benutzername ~ Passwort ~ Passwort vergessen? ~ E-Mail-Adresse ~ "
          "Zufällige Seite ~ Letzte Änderungen",
    "fr": "Accueil ~ Guides ~ Communauté ~ Blog ~ À propos ~ Contact ~ Rechercher ~ Politique de "
          "confidentialité ~ Conditions d'utilisation ~ Ce site utilise des cookies pour améliorer "
          "votre expérience. En poursuivant votre navigation, vous acceptez l'utilisation des "
          "cookies. ~ Tout accepter ~ Refuser ~ Articles similaires ~ Articles récents ~ Archives ~ "
          "Catégories ~ Étiquettes ~ Laisser un commentaire ~ Abonnez-vous à notre lettre "
          "d'information ~ S'abonner ~ Se connecter ~ Créer un compte ~ Modifier cette page ~ "
          "Dernière mise à jour ~ Publié le ~ par ~ Suivant ~ Précédent ~ Tous droits réservés ~ "
          "Aller au contenu ~ Cet article vous a-t-il été utile ? ~ Oui ~ Non ~ Désolé, aucun "
          "résultat ne correspond à votre recherche. ~ Page {n} sur {m} ~ Outils ~ Version "
          "imprimable ~ Aide ~ Questions fréquentes ~ Plan du site ~ Partager ~ Nom d'utilisateur ~ "
          "Mot de passe ~ Mot de passe oublié ? ~ Adresse e-mail ~ Page au hasard ~ "
          "Modifications récentes",
    "es": "Inicio ~ Guías ~ Comunidad ~ Blog ~ Quiénes somos ~ Contacto ~ Buscar ~ Política de "
          "privacidad ~ Condiciones de uso ~ Este sitio web utiliza cookies para mejorar su "
          "experiencia. Si continúa navegando, acepta el uso de cookies. ~ Aceptar todo ~ "
          "Rechazar ~ Artículos relacionados ~ Entradas recientes ~ Archivos ~ Categorías ~ "
          "Etiquetas ~ Deja una respuesta ~ Suscríbete a nuestro boletín ~ Suscribirse ~ Iniciar "
          "sesión ~ Crear una cuenta ~ Editar esta página ~ Última actualización ~ Publicado el ~ "
          "por ~ Siguiente ~ Anterior ~ Todos los derechos reservados ~ Ir al contenido ~ ¿Le "
          "resultó útil este artículo? ~ Sí ~ No ~ Lo sentimos, no se encontraron resultados. ~ "
          "Página {n} de {m} ~ Herramientas ~ Versión para imprimir ~ Ayuda ~ Preguntas "
          "frecuentes ~ Mapa del sitio ~ Compartir ~ Nombre de usuario ~ Contraseña ~ ¿Olvidó su "
          "contraseña? ~ Correo electrónico ~ Página aleatoria ~ Cambios recientes",
    "it": "Home ~ Guide ~ Comunità ~ Blog ~ Chi siamo ~ Contatti ~ Cerca ~ Informativa sulla "
          "privacy ~ Termini di utilizzo ~ Questo sito utilizza i cookie per migliorare la tua "
          "esperienza. Continuando la navigazione accetti l'uso dei cookie. ~ Accetta tutti ~ "
          "Rifiuta ~ Articoli correlati ~ Articoli recenti ~ Archivio ~ Categorie ~ Tag ~ Lascia "
          "un commento ~ Iscriviti alla newsletter ~ Iscriviti ~ Accedi ~ Crea un account ~ "
          "Modifica questa pagina ~ Ultimo aggiornamento ~ Pubblicato il ~ di ~ Successivo ~ "
          "Precedente ~ Tutti i diritti riservati ~ Vai al contenuto ~ Questo articolo ti è stato "
          "utile? ~ Sì ~ No ~ Spiacenti, nessun risultato trovato. ~ Pagina {n} di {m} ~ "
          "Strumenti ~ Versione stampabile ~ Aiuto ~ Domande frequenti ~ Mappa del sito ~ "
          "Condividi ~ Nome utente ~ Password ~ Password dimenticata? ~ Indirizzo e-mail ~ "
          "Pagina casuale ~ Ultime modifiche",
    "pt": "Início ~ Guias ~ Comunidade ~ Blog ~ Sobre nós ~ Contato ~ Pesquisar ~ Política de "
          "privacidade ~ Termos de uso ~ Este site utiliza cookies para melhorar a sua "
          "experiência. Ao continuar navegando, você concorda com o uso de cookies. ~ Aceitar "
          "todos ~ Recusar ~ Artigos relacionados ~ Posts recentes ~ Arquivos ~ Categorias ~ "
          "Etiquetas ~ Deixe uma resposta ~ Assine a nossa newsletter ~ Assinar ~ Entrar ~ Criar "
          "conta ~ Editar esta página ~ Última atualização ~ Publicado em ~ por ~ Próximo ~ "
          "Anterior ~ Todos os direitos reservados ~ Pular para o conteúdo ~ Este artigo foi "
          "útil? ~ Sim ~ Não ~ Desculpe, nenhum resultado encontrado. ~ Página {n} de {m} ~ "
          "Ferramentas ~ Versão para impressão ~ Ajuda ~ Perguntas frequentes ~ Mapa do site ~ "
          "Compartilhar ~ Nome de usuário ~ Senha ~ Esqueceu a senha? ~ Endereço de e-mail ~ "
          "Página aleatória ~ Mudanças recentes",
    "nl": "Home ~ Handleidingen ~ Community ~ Blog ~ Over ons ~ Contact ~ Zoeken ~ Privacybeleid ~ "
          "Gebruiksvoorwaarden ~ Deze website gebruikt cookies om uw ervaring te verbeteren. Door "
          "verder te surfen gaat u akkoord met het gebruik van cookies. ~ Alles accepteren ~ "
          "Weigeren ~ Gerelateerde artikelen ~ Recente berichten ~ Archief ~ Categorieën ~ Tags ~ "
          "Laat een reactie achter ~ Abonneer je op onze nieuwsbrief ~ Abonneren ~ Inloggen ~ "
          "Account aanmaken ~ Deze pagina bewerken ~ Laatst bijgewerkt ~ Geplaatst op ~ door ~ "
          "Volgende ~ Vorige ~ Alle rechten voorbehouden ~ Naar de inhoud ~ Was dit artikel "
          "nuttig? ~ Ja ~ Nee ~ Sorry, er is niets gevonden. ~ Pagina {n} van {m} ~ "
          "Hulpmiddelen ~ Afdrukversie ~ Help ~ Veelgestelde vragen ~ Sitemap ~ Delen ~ "
          "Gebruikersnaam ~ Wachtwoord ~ Wachtwoord vergeten? ~ E-mailadres ~ Willekeurige "
          "pagina ~ Recente wijzigingen",
    "ru": "Главная ~ Руководства ~ Сообщество ~ Блог ~ О нас ~ Контакты ~ Поиск ~ Политика "
          "конфиденциальности ~ Условия использования ~ Этот сайт использует файлы cookie для "
          "улучшения работы. Продолжая просмотр, вы соглашаетесь с использованием файлов "
          "cookie. ~ Принять все ~ Отклонить ~ Похожие статьи ~ Последние записи ~ Архив ~ "
          "Рубрики ~ Метки ~ Оставить комментарий ~ Подпишитесь на нашу рассылку ~ Подписаться ~ "
          "Войти ~ Создать учётную запись ~ Редактировать страницу ~ Последнее обновление ~ "
          "Опубликовано ~ автор ~ Далее ~ Назад ~ Все права защищены ~ Перейти к содержимому ~ "
          "Была ли эта статья полезной? ~ Да ~ Нет ~ К сожалению, ничего не найдено. ~ "
          "Страница {n} из {m} ~ Инструменты ~ Версия для печати ~ Справка ~ Частые вопросы ~ "
          "Карта сайта ~ Поделиться ~ Имя пользователя ~ Пароль ~ Забыли пароль? ~ Адрес "
          "электронной почты ~ Случайная страница ~ Свежие правки",
    "ja": "ホーム ~ ガイド ~ コミュニティ ~ ブログ ~ 運営者情報 ~ お問い合わせ ~ 検索 ~ "
          "プライバシーポリシー ~ 利用規約 ~ 当サイトでは、利便性向上のためにクッキーを使用しています。"
          "閲覧を続けることで、クッキーの使用に同意したものとみなされます。 ~ すべて許可 ~ 拒否 ~ "
          "関連記事 ~ 最近の投稿 ~ アーカイブ ~ カテゴリー ~ タグ ~ コメントを残す ~ "
          "ニュースレターを購読する ~ 購読 ~ ログイン ~ アカウント作成 ~ このページを編集 ~ "
          "最終更新日 ~ 投稿日 ~ 投稿者 ~ 次へ ~ 前へ ~ 無断転載を禁じます ~ コンテンツへスキップ ~ "
          "この記事は役に立ちましたか？ ~ はい ~ いいえ ~ 該当する結果が見つかりませんでした。 ~ "
          "{n} / {m} ページ ~ ツール ~ 印刷用ページ ~ ヘルプ ~ よくある質問 ~ サイトマップ ~ "
          "共有 ~ ユーザー名 ~ パスワード ~ パスワードをお忘れですか？ ~ メールアドレス ~ "
          "おまかせ表示 ~ 最近の更新",
    "zh": "首页 ~ 指南 ~ 社区 ~ 博客 ~ 关于我们 ~ 联系我们 ~ 搜索 ~ 隐私政策 ~ 使用条款 ~ "
          "本网站使用 Cookie 来改善您的浏览体验。继续浏览即表示您同意我们使用 Cookie。 ~ 全部接受 ~ "
          "拒绝 ~ 相关文章 ~ 最新文章 ~ 归档 ~ 分类 ~ 标签 ~ 发表评论 ~ 订阅我们的新闻通讯 ~ 订阅 ~ "
          "登录 ~ 创建账户 ~ 编辑此页 ~ 最后更新 ~ 发布于 ~ 作者 ~ 下一页 ~ 上一页 ~ 版权所有 ~ "
          "跳到内容 ~ 这篇文章对您有帮助吗？ ~ 是 ~ 否 ~ 抱歉，没有找到相关结果。 ~ "
          "第 {n} 页，共 {m} 页 ~ 工具 ~ 打印版本 ~ 帮助 ~ 常见问题 ~ 网站地图 ~ 分享 ~ 用户名 ~ "
          "密码 ~ 忘记密码？ ~ 电子邮件地址 ~ 随机页面 ~ 最近更改",
    "ko": "홈 ~ 가이드 ~ 커뮤니티 ~ 블로그 ~ 회사 소개 ~ 문의하기 ~ 검색 ~ 개인정보 처리방침 ~ "
          "이용약관 ~ 이 웹사이트는 더 나은 서비스를 위해 쿠키를 사용합니다. 계속 이용하시면 쿠키 "
          "사용에 동의하는 것으로 간주됩니다. ~ 모두 허용 ~ 거부 ~ 관련 글 ~ 최근 글 ~ 보관함 ~ "
          "카테고리 ~ 태그 ~ 댓글 남기기 ~ 뉴스레터 구독하기 ~ 구독 ~ 로그인 ~ 회원가입 ~ "
          "이 페이지 편집 ~ 최종 수정일 ~ 게시일 ~ 작성자 ~ 다음 ~ 이전 ~ 모든 권리 보유 ~ "
          "본문 바로가기 ~ 이 글이 도움이 되었나요? ~ 예 ~ 아니요 ~ 죄송합니다. 검색 결과가 "
          "없습니다. ~ {m}페이지 중 {n}페이지 ~ 도구 ~ 인쇄용 페이지 ~ 도움말 ~ 자주 묻는 질문 ~ "
          "사이트맵 ~ 공유하기 ~ 사용자 이름 ~ 비밀번호 ~ 비밀번호를 잊으셨나요? ~ 이메일 주소 ~ "
          "임의 문서 ~ 최근 바뀜",
}
UI = {}
for _lang, _line in _UI_TABLE.items():
    _vals = [v.strip() for v in _line.split(" ~ ")]
    assert len(_vals) == len(_UI_KEYS), (_lang, len(_vals))
    UI[_lang] = dict(zip(_UI_KEYS, _vals))

#: A sentence per language for near-duplicate edits ("this was revised").
REVISION_SENTENCE = {
    "en": "This section was revised to reflect recent changes.",
    "de": "Dieser Abschnitt wurde überarbeitet, um neuere Änderungen zu berücksichtigen.",
    "fr": "Cette section a été révisée pour tenir compte des changements récents.",
    "es": "Esta sección fue revisada para reflejar los cambios recientes.",
    "it": "Questa sezione è stata rivista per riflettere le modifiche recenti.",
    "pt": "Esta seção foi revisada para refletir as mudanças recentes.",
    "nl": "Deze sectie is herzien om recente wijzigingen te verwerken.",
    "ru": "Этот раздел был переработан с учётом последних изменений.",
    "ja": "この節は最近の変更を反映して改訂されました。",
    "zh": "本节已根据最近的变化进行了修订。",
    "ko": "이 절은 최근 변경 사항을 반영하여 수정되었습니다.",
}

AUTHORS = ["A. Moreau", "J. Tanaka", "M. Schmidt", "L. Rossi", "K. Petrova", "S. Kim",
           "W. Chen", "R. Silva", "E. de Vries", "C. García", "T. Walker", "N. Okafor"]


@dataclasses.dataclass(frozen=True)
class Site:
    key: str
    name: str
    server: str
    ip: str
    english_chrome: bool = False   # chrome stays English whatever the page language


SITES = {
    "docs": Site("docs", "Example Docs", "nginx/1.24.0", "192.0.2.10"),
    "wiki": Site("wiki", "Example Wiki", "Apache/2.4.59 (Debian)", "198.51.100.20"),
    "blog": Site("blog", "Example Tech Blog", "nginx", "203.0.113.30"),
    "help": Site("help", "Example Help Center", "envoy", "192.0.2.44", english_chrome=True),
    "oldweb": Site("oldweb", "Example Home Pages", "Apache/2.2.22 (Unix)", "198.51.100.77"),
}


def slugify(title: str, limit: int = 60) -> str:
    import unicodedata
    t = unicodedata.normalize("NFKD", title)
    ascii_t = "".join(ch for ch in t if not unicodedata.combining(ch))
    if sum(ch.isascii() and ch.isalpha() for ch in ascii_t) >= max(3, len(title) // 3):
        s = re.sub(r"[^a-z0-9]+", "-", ascii_t.lower()).strip("-")
        return s[:limit].strip("-") or "page"
    # non-Latin title: percent-encoded UTF-8, as browsers send it
    s = re.sub(r"[\s/?#%&=+\"'<>]+", "-", title.strip())[:limit // 3].strip("-")
    return quote(s, safe="-") or "page"


def site_url(site: str, lang: str, title: str, rng: random.Random) -> str:
    slug = slugify(title)
    if site == "docs":
        return f"https://docs.example.org/{lang}/{slug}/"
    if site == "wiki":
        t = re.sub(r"[\s]+", "_", title.strip())[:80]
        return f"https://{lang}.wiki.example.net/wiki/{quote(t, safe='_-(),.:')}"
    if site == "blog":
        y, m = rng.choice([2021, 2022, 2023, 2024]), rng.randint(1, 12)
        prefix = "" if lang == "en" else f"/{lang}"
        return f"https://blog.example.com{prefix}/{y}/{m:02d}/{slug}.html"
    if site == "help":
        return f"https://help.example.test/hc/{lang}/articles/{rng.randint(200000, 999999)}-{slug}"
    if site == "oldweb":
        user = rng.choice(["hmueller", "jdupont", "tkato", "lwang", "mgarcia", "ivanov"])
        return f"http://www.example.edu/~{user}/{lang}/{slug[:30].strip('-') or 'page'}.html"
    raise ValueError(site)


def meta_charset_tag(charset: str, style: int, upper: bool = False) -> str:
    if style == 0:
        tag = f'<meta charset="{charset}">'
    else:
        tag = f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">'
    if upper:
        tag = tag.replace("<meta", "<META").replace("http-equiv", "HTTP-EQUIV").replace("content=", "CONTENT=")
    return tag


def _links(items, fmt='<li><a href="{url}">{title}</a></li>') -> str:
    return "\n".join(fmt.format(url=html.escape(u), title=html.escape(t)) for t, u in items)


def cookie_banner(ui: dict, lang: str) -> str:
    return (f'<div id="cookie-consent" class="cookie-banner" role="dialog" aria-live="polite">'
            f'<p>{_esc(ui["cookies"])} <a href="/{lang}/privacy">{_esc(ui["privacy"])}</a></p>'
            f'<button type="button" class="btn accept">{_esc(ui["accept"])}</button> '
            f'<button type="button" class="btn reject">{_esc(ui["reject"])}</button></div>')


@dataclasses.dataclass
class PageCtx:
    """Everything a site template needs."""
    site: str
    lang: str
    url: str
    title: str
    content: str              # article body HTML without the <h1>
    section: str = ""
    related: list = dataclasses.field(default_factory=list)   # [(title, url)]
    meta_charset: str | None = "utf-8"
    meta_style: int = 0
    html_lang: bool = True
    cookie: bool = True
    date: str = "2024-01-01"
    author: str = "A. Moreau"
    tags: list = dataclasses.field(default_factory=list)
    description: str = ""


def render_page(c: PageCtx) -> str:
    site = SITES[c.site]
    ui = UI["en"] if site.english_chrome else UI.get(c.lang, UI["en"])
    e = {k: _esc(v) for k, v in ui.items()}
    L = c.lang
    lang_attr = f' lang="{L}"' if c.html_lang else ""
    meta = (meta_charset_tag(c.meta_charset, c.meta_style, upper=c.site == "oldweb") + "\n"
            if c.meta_charset else "")
    title = _esc(c.title)
    cookie = cookie_banner(ui, L) if c.cookie else ""
    related = c.related
    if c.site == "docs":
        return f"""<!DOCTYPE html>
<html{lang_attr}>
<head>
{meta}<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — {site.name}</title>
<link rel="stylesheet" href="/assets/docs.7f3a.css">
<link rel="canonical" href="{html.escape(c.url)}">
<link rel="icon" href="/favicon.ico">
<script async src="/assets/stats.js"></script>
</head>
<body class="docs">
<a class="skip-link" href="#content">{e['skip']}</a>
<header class="topbar">
<a class="brand" href="/{L}/"><img src="/assets/logo.svg" alt="" width="24" height="24"> {site.name}</a>
<nav class="topnav" aria-label="Main"><ul>
<li><a href="/{L}/">{e['home']}</a></li>
<li><a href="/{L}/guides/">{e['guides']}</a></li>
<li><a href="/{L}/community/">{e['community']}</a></li>
<li><a href="https://blog.example.com/">{e['blog']}</a></li>
<li><a href="/{L}/about/">{e['about']}</a></li>
</ul></nav>
<form class="search" role="search" action="/{L}/search"><input type="search" name="q" placeholder="{e['search']}"><button type="submit">{e['search']}</button></form>
</header>
<div class="page">
<aside class="sidebar"><nav aria-label="{e['guides']}"><h2>{e['guides']}</h2><ul>
{_links(related)}
</ul></nav></aside>
<main id="content">
<nav class="breadcrumbs"><a href="/{L}/">{e['home']}</a> › <a href="/{L}/guides/">{e['guides']}</a> › <span>{_esc(c.section or c.title)}</span></nav>
<article class="doc">
<h1>{title}</h1>
{c.content}
</article>
<div class="doc-meta"><span>{e['updated']}: {c.date}</span> · <a href="https://git.example.org/docs/edit/{L}/{slugify(c.title)}">{e['edit']}</a></div>
<nav class="pager">{_links(related[:1], '<a rel="prev" href="{url}">← {title}</a>')} {_links(related[1:2], '<a rel="next" href="{url}">{title} →</a>')}</nav>
</main>
</div>
<footer class="site-footer">
<p><a href="/{L}/privacy">{e['privacy']}</a> | <a href="/{L}/terms">{e['terms']}</a> | <a href="/{L}/contact">{e['contact']}</a> | <a href="/{L}/sitemap">{e['sitemap']}</a></p>
<p>© 2024 {site.name}. {e['rights']}.</p>
</footer>
{cookie}
<script src="/assets/docs.7f3a.js" defer></script>
</body>
</html>
"""
    if c.site == "wiki":
        t_url = quote(re.sub(r"\s+", "_", c.title)[:80], safe="_-")
        cats = "".join(f' | <a href="/wiki/Category:{quote(t)}">{_esc(t)}</a>' for t in c.tags) if c.tags else ""
        return f"""<!DOCTYPE html>
<html{lang_attr} class="client-nojs" dir="ltr">
<head>
{meta}<title>{title} – {site.name}</title>
<link rel="stylesheet" href="/w/load.php?modules=site.styles&amp;only=styles">
<link rel="alternate" type="application/atom+xml" title="Atom" href="/w/index.php?title=Special:RecentChanges&amp;feed=atom">
<meta name="generator" content="ExampleWiki 1.41">
</head>
<body class="mediawiki ltr ns-0 page-{t_url}">
<div id="mw-head">
<div id="p-personal"><ul><li><a href="/w/index.php?title=Special:UserLogin">{e['login']}</a></li><li><a href="/w/index.php?title=Special:CreateAccount">{e['register']}</a></li></ul></div>
<div id="p-search"><form action="/w/index.php"><input type="search" name="search" placeholder="{e['search']} – {site.name}"><input type="submit" value="{e['search']}"></form></div>
</div>
<div id="mw-panel">
<div id="p-logo"><a href="/wiki/">{site.name}</a></div>
<div class="portal" id="p-navigation"><h3>Navigation</h3><ul>
<li><a href="/wiki/">{e['home']}</a></li><li><a href="/wiki/Special:RecentChanges">{e['recent_changes']}</a></li><li><a href="/wiki/Special:Random">{e['random_page']}</a></li><li><a href="/wiki/Help:Contents">{e['help']}</a></li>
</ul></div>
<div class="portal" id="p-tb"><h3>{e['tools']}</h3><ul>
<li><a href="/wiki/Special:WhatLinksHere/{t_url}">Special:WhatLinksHere</a></li><li><a href="/w/index.php?title={t_url}&amp;printable=yes">{e['print']}</a></li>
</ul></div>
<div class="portal" id="p-related"><h3>{e['related']}</h3><ul>
{_links(related)}
</ul></div>
</div>
<div id="content" class="mw-body" role="main">
<h1 id="firstHeading" class="firstHeading">{title}</h1>
<div id="siteSub">{site.name}</div>
<div id="bodyContent"><div class="mw-parser-output">
{c.content}
</div>
<div id="catlinks" class="catlinks"><a href="/wiki/Special:Categories">{e['categories']}</a>{cats}</div>
</div></div>
<div id="footer" role="contentinfo">
<ul id="footer-info"><li>{e['updated']}: {c.date}</li></ul>
<ul id="footer-places"><li><a href="/wiki/Project:Privacy">{e['privacy']}</a></li> | <li><a href="/wiki/Project:Terms">{e['terms']}</a></li> | <li><a href="/wiki/Project:About">{e['about']}</a></li></ul>
</div>
{cookie}
</body>
</html>
"""
    if c.site == "blog":
        author_slug = slugify(c.author)
        tags = ", ".join(f'<a href="/tag/{slugify(t)}/" rel="tag">{_esc(t)}</a>' for t in c.tags)
        desc = f'<meta name="description" content="{html.escape(c.description)}">\n' if c.description else ""
        return f"""<!doctype html>
<html{lang_attr}>
<head>
{meta}<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} | {site.name}</title>
{desc}<meta property="og:title" content="{html.escape(c.title)}">
<meta property="og:type" content="article">
<meta property="og:url" content="{html.escape(c.url)}">
<link rel="stylesheet" id="theme-css" href="/wp-content/themes/plainpress/style.css?ver=6.4.3" media="all">
</head>
<body class="post-template-default single single-post">
<div id="page" class="site">
<a class="skip-link screen-reader-text" href="#main">{e['skip']}</a>
<header id="masthead" class="site-header">
<div class="site-branding"><p class="site-title"><a href="/" rel="home">{site.name}</a></p></div>
<nav id="site-navigation" class="main-navigation"><ul id="primary-menu" class="menu">
<li><a href="/">{e['home']}</a></li><li><a href="/category/linux/">Linux</a></li><li><a href="/category/howto/">How-to</a></li><li><a href="/about/">{e['about']}</a></li><li><a href="/contact/">{e['contact']}</a></li>
</ul></nav>
</header>
<div id="content" class="site-content">
<main id="main" class="site-main">
<article class="post type-post status-publish format-standard hentry">
<header class="entry-header">
<h1 class="entry-title">{title}</h1>
<div class="entry-meta"><span class="posted-on">{e['posted']} <time class="entry-date published" datetime="{c.date}T08:00:00+00:00">{c.date}</time></span> <span class="byline">{e['by']} <a class="url fn n" href="/author/{author_slug}/">{_esc(c.author)}</a></span></div>
</header>
<div class="entry-content">
{c.content}
</div>
<footer class="entry-footer"><span class="cat-links">{e['categories']}: <a href="/category/linux/" rel="category tag">Linux</a></span> <span class="tags-links">{e['tags']}: {tags}</span></footer>
</article>
<div class="sharedaddy"><h3>{e['share']}:</h3><a href="https://social.example.com/share?u={quote(c.url, safe='')}">Social</a> <a href="mailto:?subject={quote(c.title)}">E-mail</a></div>
<nav class="navigation post-navigation"><div class="nav-links">{_links(related[:1], '<div class="nav-previous"><a href="{url}" rel="prev">← {title}</a></div>')}{_links(related[1:2], '<div class="nav-next"><a href="{url}" rel="next">{title} →</a></div>')}</div></nav>
<div id="comments" class="comments-area"><div id="respond" class="comment-respond"><h3 id="reply-title">{e['reply']}</h3>
<form action="/wp-comments-post.php" method="post" id="commentform"><p><textarea name="comment" rows="8"></textarea></p><p><input name="author" type="text" placeholder="{e['username']}"> <input name="email" type="email" placeholder="{e['email']}"></p><p><input name="submit" type="submit" value="{e['reply']}"></p></form></div></div>
</main>
<aside id="secondary" class="widget-area">
<section class="widget widget_search"><form role="search" method="get" action="/"><input type="search" name="s" placeholder="{e['search']}"></form></section>
<section class="widget widget_recent_entries"><h2 class="widget-title">{e['recent']}</h2><ul>
{_links(related[2:])}
</ul></section>
<section class="widget widget_archive"><h2 class="widget-title">{e['archives']}</h2><ul>
<li><a href="/2024/04/">2024-04</a></li><li><a href="/2024/03/">2024-03</a></li><li><a href="/2024/02/">2024-02</a></li><li><a href="/2024/01/">2024-01</a></li>
</ul></section>
<section class="widget widget_newsletter"><h2 class="widget-title">{e['newsletter']}</h2><form action="/newsletter" method="post"><input type="email" name="email" placeholder="{e['email']}"> <button type="submit">{e['subscribe']}</button></form></section>
</aside>
</div>
<footer id="colophon" class="site-footer"><div class="site-info">© 2024 {site.name} · <a href="/privacy-policy/">{e['privacy']}</a> | <a href="/terms/">{e['terms']}</a></div></footer>
</div>
{cookie}
<script src="/wp-includes/js/jquery/jquery.min.js?ver=3.7.1" id="jquery-core-js"></script>
</body>
</html>
"""
    if c.site == "help":
        return f"""<!DOCTYPE html>
<html{lang_attr}>
<head>
{meta}<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title} – {site.name}</title>
<link rel="stylesheet" href="/hc/theming_assets/style.css">
</head>
<body class="article-page">
<header class="header"><div class="logo"><a href="/hc/{L}" title="{e['home']}">{site.name}</a></div>
<nav class="user-nav"><a class="submit-a-request" href="/hc/{L}/requests/new">Submit a request</a> <a class="login" href="/hc/signin">{e['login']}</a></nav></header>
<main role="main">
<div class="container-divider"></div>
<div class="container">
<div class="sub-nav"><ol class="breadcrumbs"><li><a href="/hc/{L}">{site.name}</a></li><li><a href="/hc/{L}/sections/360001">{e['faq']}</a></li></ol>
<form role="search" class="search" action="/hc/{L}/search"><input type="search" name="query" placeholder="{e['search']}"></form></div>
<div class="article-container" id="article-container">
<article id="main-content" class="article">
<header class="article-header"><h1 title="{html.escape(c.title)}" class="article-title">{title}</h1>
<div class="article-meta"><span class="meta-data">{e['updated']}: {c.date}</span></div></header>
<section class="article-info"><div class="article-content"><div class="article-body">
{c.content}
</div></div></section>
<footer><div class="article-votes"><span class="article-votes-question">{e['helpful']}</span>
<button type="button" class="button article-vote article-vote-up">{e['yes']}</button> <button type="button" class="button article-vote article-vote-down">{e['no']}</button>
<small class="article-votes-count">0 out of 0 found this helpful</small></div>
<div class="article-more-questions">Have more questions? <a href="/hc/{L}/requests/new">Submit a request</a></div></footer>
</article>
<aside class="article-sidebar"><section class="related-articles"><h3>{e['related']}</h3><ul>
{_links(related)}
</ul></section></aside>
</div></div>
</main>
<footer class="footer"><div class="footer-inner"><a href="/hc/{L}/privacy">{e['privacy']}</a> | <a href="/hc/{L}/terms">{e['terms']}</a> | Powered by Example Desk</div></footer>
{cookie}
</body>
</html>
"""
    if c.site == "oldweb":
        menu = "\n".join(f'<A HREF="{html.escape(u)}">{_esc(t)}</A><BR>' for t, u in related)
        return f"""<HTML>
<HEAD>
{meta}<TITLE>{title}</TITLE>
</HEAD>
<BODY BGCOLOR="#FFFFFF" TEXT="#000000" LINK="#0000CC" VLINK="#551A8B">
<TABLE WIDTH="100%" BORDER="0" CELLPADDING="4" CELLSPACING="0">
<TR><TD BGCOLOR="#336699"><FONT FACE="Verdana,Arial" COLOR="#FFFFFF" SIZE="+2"><B>{site.name}</B></FONT></TD></TR>
<TR><TD BGCOLOR="#DDDDDD"><FONT FACE="Verdana,Arial" SIZE="-1"><A HREF="/">{e['home']}</A> | <A HREF="/archiv/">{e['archives']}</A> | <A HREF="/sitemap.html">{e['sitemap']}</A> | <A HREF="/kontakt.html">{e['contact']}</A></FONT></TD></TR>
</TABLE>
<TABLE WIDTH="100%" BORDER="0" CELLPADDING="6">
<TR><TD WIDTH="180" VALIGN="top" BGCOLOR="#EEEEEE"><FONT FACE="Verdana,Arial" SIZE="-1"><B>{e['related']}</B><BR>
{menu}
</FONT></TD>
<TD VALIGN="top">
<H1>{title}</H1>
{c.content}
</TD></TR>
</TABLE>
<HR>
<CENTER><FONT SIZE="-2">{e['updated']}: {c.date} &middot; <A HREF="/privacy.html">{e['privacy']}</A> | <A HREF="/terms.html">{e['terms']}</A><BR>
&copy; 1998-2004 &middot; 800x600</FONT></CENTER>
</BODY>
</HTML>
"""
    raise ValueError(c.site)


# ---------------------------------------------------------------------------
# Generated content: spam, boilerplate-only pages, binary files
# ---------------------------------------------------------------------------

SPAM_VOCAB = {
    "en": dict(
        products=["watches", "sunglasses", "sneakers", "handbags", "phone cases", "headphones",
                  "vitamins", "protein powder", "car insurance", "payday loans", "casino bonus",
                  "followers", "essay writing", "replica jerseys", "smart watches", "perfume"],
        mods=["cheap", "best", "discount", "buy", "online", "free shipping", "wholesale", "2024",
              "sale", "outlet", "top rated", "lowest price", "official", "genuine", "fast"],
        lines=["Click here to claim your FREE prize now!!!", "Limited offer - only today!!!",
               "Best price guaranteed, order now and save 90%", "100% satisfaction, no questions asked",
               "Act fast - stock is running out!!!"],
        buy="Buy cheap {p} online", order="Order {p} now with free shipping",
        title="Cheap {p} - Buy {p} Online - Best {p} Deals 2024"),
    "de": dict(
        products=["Uhren", "Sonnenbrillen", "Turnschuhe", "Handtaschen", "Handyhüllen",
                  "Kopfhörer", "Vitamine", "Kredite", "Casino Bonus", "Parfüm"],
        mods=["billig", "günstig", "kaufen", "online", "Rabatt", "Versandkostenfrei", "Angebot",
              "2024", "Sale", "Outlet", "bester Preis"],
        lines=["Jetzt klicken und GRATIS Gewinn sichern!!!", "Nur heute - Angebot endet bald!!!",
               "Bestpreis garantiert, jetzt bestellen und 90% sparen"],
        buy="{p} billig online kaufen", order="{p} jetzt versandkostenfrei bestellen",
        title="{p} billig kaufen - {p} online - Beste {p} Angebote 2024"),
    "fr": dict(
        products=["montres", "lunettes de soleil", "baskets", "sacs à main", "coques de téléphone",
                  "écouteurs", "vitamines", "crédits", "bonus casino", "parfums"],
        mods=["pas cher", "meilleur", "promo", "acheter", "en ligne", "livraison gratuite",
              "soldes", "2024", "destockage", "prix le plus bas"],
        lines=["Cliquez ici pour recevoir votre cadeau GRATUIT !!!", "Offre limitée - aujourd'hui seulement !!!",
               "Meilleur prix garanti, commandez et économisez 90 %"],
        buy="Acheter des {p} pas cher en ligne", order="Commandez vos {p} avec livraison gratuite",
        title="{p} pas cher - Acheter {p} en ligne - Meilleures offres {p} 2024"),
    "es": dict(
        products=["relojes", "gafas de sol", "zapatillas", "bolsos", "fundas de móvil",
                  "auriculares", "vitaminas", "préstamos", "bono de casino", "perfumes"],
        mods=["barato", "mejor", "descuento", "comprar", "online", "envío gratis", "oferta",
              "2024", "rebajas", "outlet", "precio más bajo"],
        lines=["¡¡¡Haz clic aquí y recibe tu premio GRATIS!!!", "¡¡¡Oferta limitada, solo hoy!!!",
               "Mejor precio garantizado, compra ya y ahorra un 90%"],
        buy="Comprar {p} baratos online", order="Pide tus {p} con envío gratis",
        title="{p} baratos - Comprar {p} online - Mejores ofertas de {p} 2024"),
}
SPAM_STYLES = ["keyword_stuffing", "repeated_lines", "link_farm", "buy_cheap_list", "doorway"]


def _spam_host(rng: random.Random, product: str) -> str:
    word = slugify(product)[:20] or "deals"
    return f"{rng.choice(['cheap', 'best', 'top', 'mega', 'super'])}-{word}-{rng.choice(['outlet', 'store', 'deals', 'shop', 'online'])}{rng.randint(1, 99)}.test"


def make_spam(rng: random.Random, lang: str, style: str) -> tuple[str, str, str]:
    """Returns (url, title, html) of a generated spam page."""
    v = SPAM_VOCAB[lang]
    p = rng.choice(v["products"])
    host = _spam_host(rng, p)
    url = f"http://{host}/{slugify(v['buy'].format(p=p))}-{rng.randint(100, 9999)}.html"
    title = v["title"].format(p=p)
    kw = lambda: f"{rng.choice(v['mods'])} {rng.choice([p, p, rng.choice(v['products'])])}"
    body = []
    if style == "keyword_stuffing":
        for _ in range(rng.randint(6, 12)):
            body.append("<p>" + _esc(" ".join(kw() for _ in range(rng.randint(25, 50)))) + "</p>")
    elif style == "repeated_lines":
        line = rng.choice(v["lines"])
        body.extend([f"<p><b>{_esc(line)}</b></p>"] * rng.randint(30, 80))
    elif style == "link_farm":
        links = []
        for i in range(rng.randint(120, 250)):
            q = rng.choice(v["products"])
            links.append(f'<a href="http://{_spam_host(rng, q)}/?ref={i}">{_esc(kw())}</a>')
        body.append("<div class=\"links\">" + " | ".join(links) + "</div>")
    elif style == "buy_cheap_list":
        items = [f"<li><a href=\"/go/{i}\">{_esc(rng.choice([v['buy'], v['order']]).format(p=rng.choice(v['products'])))}"
                 f" - {_esc(kw())}</a></li>" for i in range(rng.randint(40, 90))]
        body.append("<ul>" + "".join(items) + "</ul>")
    else:  # doorway: some stuffing, hidden keyword block, meta refresh
        body.append(f"<p>{_esc(rng.choice(v['lines']))}</p>")
        hidden = " ".join(kw() for _ in range(300))
        body.append(f'<div style="display:none">{_esc(hidden)}</div>')
        body.append(f'<p><a href="http://{host}/out">{_esc(v["order"].format(p=p))}</a></p>')
    refresh = f'<meta http-equiv="refresh" content="5;url=http://{host}/out">\n' if style == "doorway" else ""
    keywords = ", ".join(dict.fromkeys(kw() for _ in range(30)))
    page = f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
{refresh}<title>{_esc(title)}</title>
<meta name="keywords" content="{html.escape(keywords)}">
</head>
<body bgcolor="#ffff00">
<h1>{_esc(title)}</h1>
{chr(10).join(body)}
<p><font size="1">{_esc(keywords)}</font></p>
</body>
</html>
"""
    return url, title, page


BOILERPLATE_STYLES = ["tag_index", "login", "no_results", "category_pagination"]


def make_boilerplate_content(rng: random.Random, lang: str, style: str, ui: dict,
                             related: list, query: str = "") -> tuple[str, str]:
    """Title and 'content' for a page that has nothing but navigation."""
    e = {k: _esc(v) for k, v in ui.items()}
    if style == "tag_index":
        tags = [t for t, _ in related] or [e["tags"]]
        links = "".join(f'<li><a href="/tag/{slugify(t)}/">{_esc(t)}</a></li>' for t in tags)
        return ui["tags"], f'<ul class="tag-cloud">{links}</ul>'
    if style == "login":
        return ui["login"], (
            f'<form class="login" method="post" action="/login"><label>{e["username"]} '
            f'<input name="user"></label> <label>{e["password"]} <input type="password" name="pw">'
            f'</label> <button type="submit">{e["login"]}</button></form>'
            f'<p><a href="/password-reset">{e["forgot"]}</a> · <a href="/register">{e["register"]}</a></p>')
    if style == "no_results":
        return ui["search"], (f'<form role="search" action="/search"><input type="search" name="q" '
                              f'value="{html.escape(query)}"></form><p>{e["no_results"]}</p>')
    n, m = rng.randint(2, 9), rng.randint(10, 40)
    pages = " ".join(f'<a href="?page={i}">{i}</a>' for i in range(1, 8))
    return (f'{ui["categories"]} – {ui["page_of"].format(n=n, m=m)}',
            f'<p class="pagination">{_esc(ui["page_of"].format(n=n, m=m))} · {pages} · '
            f'<a href="?page={n + 1}">{e["next"]} »</a></p>')


def make_png(width: int, height: int, rgb_at) -> bytes:
    """A valid 8-bit RGB PNG; ``rgb_at(x, y)`` gives the pixel colour."""
    raw = bytearray()
    for y in range(height):
        raw.append(0)  # filter: none
        for x in range(width):
            raw.extend(rgb_at(x, y))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b""))


# Huffman table for DC differences (the usual luminance table: code
# lengths per length 1..16, then the symbols = size categories 0..11).
_JPEG_DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
_JPEG_DC_VALS = list(range(12))


def _huffman_codes(bits, vals) -> dict:
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


def make_jpeg(width: int, height: int, level_at) -> bytes:
    """A valid baseline greyscale JPEG made of flat 8x8 blocks;
    ``level_at(bx, by)`` gives each block's grey level (0..255).  Only DC
    coefficients are coded, with a one-symbol AC table (end of block)."""
    bw, bh = (width + 7) // 8, (height + 7) // 8
    q = 16
    out = bytearray(b"\xff\xd8")
    out += b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    out += b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + bytes([q] * 64)
    out += b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    dht_dc = bytes([0x00]) + bytes(_JPEG_DC_BITS) + bytes(_JPEG_DC_VALS)
    dht_ac = bytes([0x10]) + bytes([1] + [0] * 15) + b"\x00"
    out += b"\xff\xc4" + struct.pack(">H", 2 + len(dht_dc)) + dht_dc
    out += b"\xff\xc4" + struct.pack(">H", 2 + len(dht_ac)) + dht_ac
    out += b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00" + b"\x00\x3f\x00"
    dc_codes = _huffman_codes(_JPEG_DC_BITS, _JPEG_DC_VALS)
    bitbuf, nbits, data = 0, 0, bytearray()

    def put(value: int, length: int) -> None:
        nonlocal bitbuf, nbits
        bitbuf = (bitbuf << length) | (value & ((1 << length) - 1))
        nbits += length
        while nbits >= 8:
            byte = (bitbuf >> (nbits - 8)) & 0xFF
            data.append(byte)
            if byte == 0xFF:
                data.append(0x00)
            nbits -= 8
        bitbuf &= (1 << nbits) - 1

    prev = 0
    for by in range(bh):
        for bx in range(bw):
            level = max(0, min(255, int(level_at(bx, by))))
            dc = round(8 * (level - 128) / q)
            diff, prev = dc - prev, dc
            size = abs(diff).bit_length()
            code, length = dc_codes[size]
            put(code, length)
            if size:
                put(diff if diff > 0 else diff + (1 << size) - 1, size)
            put(0, 1)  # AC: end of block
    if nbits:
        put((1 << (8 - nbits)) - 1, 8 - nbits)
    out += data + b"\xff\xd9"
    return bytes(out)


def make_pdf(lines: list[str]) -> bytes:
    """A small valid one-page PDF with the given (ASCII) text lines."""
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    ops = ["BT", "/F1 14 Tf", "72 760 Td", "18 TL"]
    for line in lines:
        ops.append(f"({esc(line)}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("ascii", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode() + b"0000000000 65535 f \n"
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)


NON_HTML_TYPES = ["pdf", "png", "jpeg", "json"]


def make_non_html(rng: random.Random, kind: str, n: int, titles: list) -> tuple[str, str, bytes]:
    """Returns (url, content_type, body)."""
    if kind == "pdf":
        lines = [f"Quarterly infrastructure report {2020 + n % 5}-Q{1 + n % 4}",
                 "", f"Mirrors online: {rng.randint(20, 90)}",
                 f"Median response time: {rng.randint(40, 400)} ms",
                 f"Packages synchronised: {rng.randint(10000, 90000)}",
                 "This document was generated automatically."]
        return (f"https://docs.example.org/files/report-{2020 + n % 5}-q{1 + n % 4}-{n}.pdf",
                "application/pdf", make_pdf(lines))
    if kind == "png":
        w, h = rng.randint(8, 48), rng.randint(8, 48)
        c1 = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        c2 = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        img = make_png(w, h, lambda x, y: c1 if (x // 4 + y // 4) % 2 else c2)
        return (f"https://blog.example.com/wp-content/uploads/2024/0{1 + n % 9}/chart-{n}.png",
                "image/png", img)
    if kind == "jpeg":
        w, h = 8 * rng.randint(2, 8), 8 * rng.randint(2, 8)
        base = rng.randint(40, 200)
        img = make_jpeg(w, h, lambda bx, by: base + 10 * bx - 7 * by)
        return (f"https://wiki.example.net/images/thumb/photo-{n}.jpg", "image/jpeg", img)
    items = [{"id": 1000 + n * 10 + i, "title": t, "url": u, "lang": lang}
             for i, (t, u, lang) in enumerate(titles[:10])]
    body = json.dumps({"status": "ok", "page": n + 1, "per_page": 10, "items": items},
                      ensure_ascii=False, indent=1).encode("utf-8")
    return (f"https://api.example.net/v1/articles?page={n + 1}&per_page=10",
            "application/json; charset=utf-8", body)


# ---------------------------------------------------------------------------
# Text edits and encodings
# ---------------------------------------------------------------------------

_CP1252_SLOPPY = [bytes([i]).decode("cp1252", errors="ignore") or chr(i) for i in range(256)]


def mojibake(data: bytes) -> bytes:
    """UTF-8 bytes misread as Windows-1252 and saved again as UTF-8."""
    return "".join(_CP1252_SLOPPY[b] for b in data).encode("utf-8")


LEGACY_CHARSETS = {
    "fr": ["iso-8859-1", "windows-1252"], "de": ["iso-8859-1", "windows-1252"],
    "es": ["iso-8859-1", "windows-1252"], "it": ["iso-8859-1", "windows-1252"],
    "pt": ["iso-8859-1", "windows-1252"], "nl": ["iso-8859-1", "windows-1252"],
    "ja": ["shift_jis", "euc-jp"], "zh": ["gb2312", "gbk"], "ru": ["koi8-r", "windows-1251"],
    "ko": ["euc-kr"],
}
LEGACY_LANG_CYCLE = ["fr", "ja", "de", "zh", "es", "ru", "ja", "zh", "ko", "it", "pt", "nl"]
MOJIBAKE_LANGS = ["fr", "de", "es", "pt", "it", "fr", "de", "ru"]
LATIN1_LANGS = ["fr", "de", "es", "pt", "it"]

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])")


def _plain_paragraphs(blocks):
    return [i for i, b in enumerate(blocks)
            if b.kind == "p" and len(_SENTENCE_END.split(b.text)) >= 2]


def near_duplicate_blocks(blocks: list, lang: str, rng: random.Random, edit: str):
    """Apply one small text edit; returns (blocks, description) or None."""
    cands = _plain_paragraphs(blocks)
    if not cands:
        return None
    i = rng.choice(cands)
    sents = [s for s in _SENTENCE_END.split(blocks[i].text) if s]
    if len(sents) < 2:
        return None
    j = rng.randrange(1, len(sents))
    if edit == "sentence_changed":
        old = sents[j]
        sents[j] = REVISION_SENTENCE[lang]
        desc = f"sentence replaced in paragraph {i}: {old[:60]!r}"
    else:
        old = sents.pop(j)
        desc = f"sentence removed from paragraph {i}: {old[:60]!r}"
    sep = "" if lang in ("ja", "zh") else " "
    text = sep.join(sents)
    new = list(blocks)
    new[i] = Block("p", f"<p>{_esc(text)}</p>", text)
    return new, desc


# ---------------------------------------------------------------------------
# Planning the crawl
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Page:
    kind: str
    lang: str | None
    site: str
    url: str = ""
    title: str = ""
    article: Article | None = None
    body: bytes = b""
    content_type: str = "text/html"
    declared_charset: str | None = "utf-8"   # charset in the HTTP header
    meta_charset: str | None = None          # charset in <meta>, if any
    actual_charset: str | None = "utf-8"     # how the body bytes are really encoded
    duplicates: object = None                # the Page this one duplicates
    notes: dict = dataclasses.field(default_factory=dict)
    key: float = 0.0                          # crawl-order sort key
    record_id: str = ""
    file: str = ""
    offset: int = 0


def kind_counts(n_pages: int) -> dict[str, int]:
    counts = {k: int(round(n_pages * share)) for k, share in KIND_SHARES.items()}
    counts["article"] = n_pages - sum(counts.values())
    if counts["article"] < 0:
        raise ValueError("too few pages")
    return counts


def allocate(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split ``total`` by weight (largest remainder), in a fixed order."""
    s = sum(weights.values())
    exact = {k: total * w / s for k, w in weights.items()}
    out = {k: int(v) for k, v in exact.items()}
    rest = total - sum(out.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - out[k]), list(weights).index(k)))[:rest]:
        out[k] += 1
    return out


class ArticleSource:
    """Hands out articles per language without repetition; when a language
    runs out (large --pages), it makes 'remix' articles from random blocks of
    that language's articles."""

    def __init__(self, pool: dict[str, list[Article]], rng: random.Random):
        self.rng = rng
        self.queues = {}
        self.blocks = {}
        self.headings = {}
        for lang in LANGS:
            arts = list(pool.get(lang, []))
            rng.shuffle(arts)
            self.queues[lang] = arts
            self.blocks[lang] = [b for a in arts for b in a.blocks if b.kind not in ("h2", "h3")]
            self.headings[lang] = [a.title for a in arts]
        self.remixes = 0

    def take(self, lang: str) -> Article:
        if self.queues[lang]:
            return self.queues[lang].pop()
        return self.remix(lang)

    def remix(self, lang: str) -> Article:
        if not self.blocks[lang]:
            raise SystemExit(f"no source articles for language {lang!r}")
        self.remixes += 1
        rng = self.rng
        title = rng.choice(self.headings[lang])
        blocks, size = [], 0
        target = rng.randint(3000, 9000)
        while size < target:
            if blocks:
                h = rng.choice(self.headings[lang])
                blocks.append(Block("h2", f"<h2>{_esc(h)}</h2>", h))
            for b in rng.sample(self.blocks[lang], min(len(self.blocks[lang]), rng.randint(2, 5))):
                blocks.append(b)
                size += len(b.text.encode()) + 1
        return Article(lang, title, blocks, "remix", "", f"remix-{self.remixes}",
                       title, remix=True)


def _choose_site(rng: random.Random, article: Article) -> str:
    if article.package.startswith("debian-faq"):
        return rng.choices(["help", "wiki", "blog"], [5, 2, 2])[0]
    return rng.choices(["docs", "wiki", "blog"], [5, 3, 2])[0]


class UrlRegistry:
    def __init__(self):
        self.seen: set[str] = set()

    def add(self, url: str) -> str:
        base, n = url, 2
        while url in self.seen:
            if base.endswith("/"):
                url = f"{base[:-1]}-{n}/"
            elif re.search(r"\.[a-z]{2,4}$", base) and "?" not in base:
                stem, ext = base.rsplit(".", 1)
                url = f"{stem}-{n}.{ext}"
            else:
                url = f"{base}{'&' if '?' in base else '?'}v={n}"
            n += 1
        self.seen.add(url)
        return url


def plan_pages(pool: dict[str, list[Article]], n_pages: int, seed: int) -> tuple[list[Page], ArticleSource]:
    rng = random.Random(seed)
    counts = kind_counts(n_pages)
    src = ArticleSource(pool, random.Random(seed + 1))
    urls = UrlRegistry()
    pages: list[Page] = []

    def article_page(kind: str, lang: str, site: str | None = None) -> Page:
        art = src.take(lang)
        site = site or _choose_site(rng, art)
        p = Page(kind, lang, site, title=art.title, article=art)
        p.url = urls.add(site_url(site, lang, art.title, rng))
        p.key = rng.random()
        pages.append(p)
        return p

    # plain articles, languages by weight
    per_lang = allocate(counts["article"], LANG_WEIGHTS)
    langs = [lang for lang in LANGS for _ in range(per_lang[lang])]
    rng.shuffle(langs)
    for lang in langs:
        article_page("article", lang)
    articles = [p for p in pages if p.kind == "article"]

    for i in range(counts["mojibake"]):
        lang = MOJIBAKE_LANGS[i % len(MOJIBAKE_LANGS)]
        p = article_page("mojibake", lang, rng.choice(["blog", "wiki", "docs"]))
        p.notes["mojibake"] = "UTF-8 bytes decoded as windows-1252, re-encoded as UTF-8"

    for i in range(counts["legacy_charset"]):
        lang = LEGACY_LANG_CYCLE[i % len(LEGACY_LANG_CYCLE)]
        p = article_page("legacy_charset", lang, "oldweb" if rng.random() < 0.7 else None)
        cs = rng.choice(LEGACY_CHARSETS[lang])
        p.declared_charset = p.meta_charset = p.actual_charset = cs

    for i in range(counts["wrong_charset"]):
        if i % 2 == 0:
            lang = LATIN1_LANGS[(i // 2) % len(LATIN1_LANGS)]
            p = article_page("wrong_charset", lang, rng.choice(["oldweb", "blog"]))
            p.declared_charset, p.actual_charset = "utf-8", "windows-1252"
            p.meta_charset = rng.choice(["utf-8", None])
        else:
            lang = ["de", "ru", "fr", "ja", "zh", "es"][(i // 2) % 6]
            p = article_page("wrong_charset", lang, rng.choice(["oldweb", "blog", "wiki"]))
            p.declared_charset = rng.choice(["iso-8859-1", "windows-1252"])
            p.actual_charset = "utf-8"
            p.meta_charset = rng.choice([p.declared_charset, None])

    # duplicates of plain article pages
    originals = rng.sample(articles, min(len(articles), counts["exact_duplicate"] + counts["near_duplicate"]))
    for orig in originals[:counts["exact_duplicate"]]:
        variant = rng.choice(["utm", "print", "mirror", "http", "session", "amp"])
        u = orig.url
        if variant == "utm":
            u += ("&" if "?" in u else "?") + "utm_source=newsletter&utm_medium=email"
        elif variant == "print":
            u += ("&" if "?" in u else "?") + "print=1"
        elif variant == "mirror":
            u = re.sub(r"^(https?://)([^/]+)", lambda m: m.group(1) + "mirror." + m.group(2).split(".", 1)[-1]
                       if m.group(2).count(".") >= 2 else m.group(1) + "mirror." + m.group(2), u)
        elif variant == "http":
            u = u.replace("https://", "http://", 1) if u.startswith("https://") else u + "?"
        elif variant == "session":
            u += ("&" if "?" in u else "?") + f"sid={rng.getrandbits(64):016x}"
        else:
            u = u.rstrip("/") + ("/amp/" if u.endswith("/") else "?amp=1")
        d = Page("exact_duplicate", orig.lang, orig.site, title=orig.title, article=orig.article,
                 duplicates=orig, notes={"url_variant": variant})
        d.url = urls.add(u)
        d.key = orig.key + (1 - orig.key) * rng.random()
        pages.append(d)

    for orig in originals[counts["exact_duplicate"]:]:
        edits = []
        site = orig.site
        if rng.random() < 0.6:
            site = rng.choice([s for s in ("docs", "wiki", "blog", "help") if s != orig.site])
            edits.append(f"republished on another site ({site}): different boilerplate")
        else:
            edits.append("same site, different sidebar and date")
        edits.append(rng.choice(["sentence_changed", "sentence_removed", "timestamp_added"]))
        d = Page("near_duplicate", orig.lang, site, title=orig.title, article=orig.article,
                 duplicates=orig, notes={"edits": edits})
        d.url = urls.add(site_url(site, orig.lang, orig.title, rng) if site != orig.site
                         else (orig.url.rstrip("/") + "-updated" + ("/" if orig.url.endswith("/") else "")))
        d.key = orig.key + (1 - orig.key) * rng.random()
        pages.append(d)

    for i in range(counts["spam"]):
        lang = "en" if i % 10 < 7 else ["de", "fr", "es"][i % 3]
        style = SPAM_STYLES[i % len(SPAM_STYLES)]
        url, title, page_html = make_spam(rng, lang, style)
        p = Page("spam", lang, "spam", title=title, notes={"spam_style": style})
        p.url = urls.add(url)
        p.body = page_html.encode("utf-8")
        p.meta_charset = "utf-8"
        p.key = rng.random()
        pages.append(p)

    for i in range(counts["boilerplate_only"]):
        lang = rng.choices(LANGS, [LANG_WEIGHTS[x] for x in LANGS])[0]
        site = rng.choice(["docs", "wiki", "blog", "help"])
        style = BOILERPLATE_STYLES[i % len(BOILERPLATE_STYLES)]
        p = Page("boilerplate_only", lang, site, notes={"boilerplate_style": style})
        base = {"docs": f"https://docs.example.org/{lang}/", "wiki": f"https://{lang}.wiki.example.net/wiki/",
                "blog": "https://blog.example.com/", "help": f"https://help.example.test/hc/{lang}/"}[site]
        path = {"tag_index": "tags/", "login": "login", "no_results": f"search?q={rng.randint(1000, 9999)}",
                "category_pagination": f"category/linux/page/{rng.randint(2, 9)}/"}[style]
        p.url = urls.add(base + path)
        p.key = rng.random()
        pages.append(p)

    listing = [(p.title, p.url, p.lang) for p in articles]
    for i in range(counts["non_html"]):
        kind = NON_HTML_TYPES[i % len(NON_HTML_TYPES)]
        url, ctype, body = make_non_html(rng, kind, i, rng.sample(listing, min(10, len(listing))))
        p = Page("non_html", None, "files", notes={"type": kind}, declared_charset=None,
                 actual_charset=None, content_type=ctype, body=body, meta_charset=None)
        if ctype.startswith("application/json"):
            p.declared_charset = p.actual_charset = "utf-8"
        p.url = urls.add(url)
        p.key = rng.random()
        pages.append(p)

    return pages, src


def _related(rng: random.Random, by_lang: dict, lang: str, exclude: str, n: int) -> list:
    cands = by_lang.get(lang, [])
    picks = rng.sample(cands, min(len(cands), n + 1))
    return [(t, u) for t, u in picks if u != exclude][:n]


def render_pages(pages: list[Page], seed: int) -> None:
    """Fill in every page's body bytes and headers-related fields."""
    rng = random.Random(seed + 2)
    by_lang: dict[str, list] = {}
    for p in pages:
        if p.kind == "article":
            by_lang.setdefault(p.lang, []).append((p.title, p.url))

    def ctx_for(p: Page, content: str, title: str, section: str = "") -> PageCtx:
        d = dt.date(2021, 1, 1) + dt.timedelta(days=rng.randrange(1200))
        tags = [t for t, _ in _related(rng, by_lang, p.lang, p.url, 3)]
        return PageCtx(
            site=p.site, lang=p.lang, url=p.url, title=title, content=content,
            section=section, related=_related(rng, by_lang, p.lang, p.url, rng.randint(4, 8)),
            meta_charset=(p.meta_charset if p.kind in ("legacy_charset", "wrong_charset")
                          else ("utf-8" if rng.random() < 0.75 else None)),
            meta_style=1 if p.site == "oldweb" else rng.randrange(2), html_lang=rng.random() < 0.85,
            cookie=rng.random() < 0.6, date=d.isoformat(), author=rng.choice(AUTHORS),
            tags=[t[:40] for t in tags],
            description=(p.article.blocks[0].text[:150] if p.article and p.article.blocks else ""))

    def article_html(p: Page, blocks) -> str:
        return "\n".join(b.html for b in blocks)

    # originals first (exact duplicates copy their bytes)
    order = sorted(range(len(pages)), key=lambda i: pages[i].kind in ("exact_duplicate", "near_duplicate"))
    for i in order:
        p = pages[i]
        if p.kind == "spam":
            continue
        if p.kind == "exact_duplicate":
            p.body = p.duplicates.body
            p.meta_charset = p.duplicates.meta_charset
            continue
        if p.kind == "non_html":
            continue
        if p.kind == "boilerplate_only":
            ui = UI["en"] if SITES[p.site].english_chrome else UI[p.lang]
            title, content = make_boilerplate_content(
                rng, p.lang, p.notes["boilerplate_style"], ui,
                _related(rng, by_lang, p.lang, "", 12), p.url.rsplit("q=", 1)[-1] if "q=" in p.url else "")
            p.title = title
            c = ctx_for(p, content, title)
            c.related = _related(rng, by_lang, p.lang, "", rng.randint(6, 10))
            p.body = render_page(c).encode("utf-8")
            p.meta_charset = c.meta_charset
            continue
        art = p.article
        blocks = art.blocks
        if p.kind == "near_duplicate":
            edit = p.notes["edits"][-1]
            if edit in ("sentence_changed", "sentence_removed"):
                res = near_duplicate_blocks(blocks, p.lang, rng, edit)
                if res is None:
                    edit = p.notes["edits"][-1] = "timestamp_added"
                else:
                    blocks, desc = res
                    p.notes["edits"][-1] = desc
            if edit == "timestamp_added":
                ui = UI[p.lang]
                stamp = f"{ui['updated']}: 2024-0{rng.randint(1, 4)}-{rng.randint(10, 28)} {rng.randint(7, 22):02d}:{rng.randint(0, 59):02d}"
                blocks = [Block("p", f'<p class="updated"><em>{_esc(stamp)}</em></p>', stamp)] + list(blocks)
                p.notes["edits"][-1] = f"timestamp line added: {stamp!r}"
        c = ctx_for(p, article_html(p, blocks), art.title, art.section)
        text = render_page(c)
        p.meta_charset = c.meta_charset
        if p.kind in ("article", "near_duplicate"):
            p.body = text.encode("utf-8")
        elif p.kind == "mojibake":
            p.body = mojibake(text.encode("utf-8"))
        elif p.kind in ("legacy_charset", "wrong_charset"):
            # characters the legacy charset lacks become &#NNNN; references
            p.body = text.encode(p.actual_charset, errors="xmlcharrefreplace")
        else:
            raise AssertionError(p.kind)


# ---------------------------------------------------------------------------
# Writing the WARC files
# ---------------------------------------------------------------------------

_CHARSET_LABELS = {"utf-8": ["utf-8", "UTF-8"], "iso-8859-1": ["ISO-8859-1", "iso-8859-1"],
                   "windows-1252": ["windows-1252"], "shift_jis": ["Shift_JIS"],
                   "euc-jp": ["EUC-JP"], "gb2312": ["GB2312", "gb2312"], "gbk": ["GBK"],
                   "koi8-r": ["KOI8-R"], "windows-1251": ["windows-1251"], "euc-kr": ["EUC-KR"]}


def _http_date(t: dt.datetime) -> str:
    return t.strftime("%a, %d %b %Y %H:%M:%S GMT")


def _warc_date(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def record_id(seed: int, url: str, rtype: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(RECORD_NS, f'{seed}|{url}|{rtype}')}>"


def response_headers(p: Page, rng: random.Random, when: dt.datetime) -> list[tuple[str, str]]:
    if p.kind == "spam":
        server, ctype = "Apache", "text/html; charset=UTF-8"
    elif p.kind == "non_html":
        server, ctype = "nginx", p.content_type
    else:
        server = SITES[p.site].server
        label = rng.choice(_CHARSET_LABELS.get(p.declared_charset, [p.declared_charset]))
        ctype = f"text/html; charset={label}"
    h = [("Date", _http_date(when)), ("Server", server), ("Content-Type", ctype),
         ("Content-Length", str(len(p.body)))]
    if rng.random() < 0.7:
        lm = when - dt.timedelta(days=rng.randint(1, 900), seconds=rng.randint(0, 86399))
        h.append(("Last-Modified", _http_date(lm)))
    if rng.random() < 0.5:
        h.append(("ETag", '"%s"' % hashlib.md5(p.body).hexdigest()[:16]))
    if p.kind == "non_html":
        h.append(("Accept-Ranges", "bytes"))
        h.append(("Cache-Control", "public, max-age=86400"))
    else:
        h.append(("Cache-Control", rng.choice(["max-age=600", "no-cache", "private, max-age=0"])))
        h.append(("Vary", "Accept-Encoding"))
        if rng.random() < 0.3:
            h.append(("Set-Cookie", f"sid={rng.getrandbits(64):016x}; Path=/; HttpOnly; SameSite=Lax"))
        if rng.random() < 0.3:
            h.append(("X-Frame-Options", "SAMEORIGIN"))
    h.append(("Connection", "close"))
    return h


def _accept_language(lang: str | None) -> str:
    return "en-US,en;q=0.8" if lang in (None, "en") else f"{lang},en;q=0.7"


def write_warcs(pages: list[Page], out_dir: Path, n_files: int, seed: int) -> list[dict]:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    rng = random.Random(seed + 3)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("crawl-[0-9][0-9][0-9][0-9][0-9].warc.gz"):
        old.unlink()
    n_files = max(1, min(n_files, len(pages)))
    bounds = [round(i * len(pages) / n_files) for i in range(n_files + 1)]
    when = CRAWL_START
    files = []
    for fi in range(n_files):
        name = f"crawl-{fi:05d}.warc.gz"
        path = out_dir / name
        chunk = pages[bounds[fi]:bounds[fi + 1]]
        n_records = 0
        with open(path, "wb") as fh:
            writer = WARCWriter(fh, gzip=True, warc_version="WARC/1.0")
            info_id = record_id(seed, name, "warcinfo")
            info = (f"software: {GENERATOR}\r\n"
                    "format: WARC File Format 1.0\r\n"
                    "conformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.0/\r\n"
                    "isPartOf: winnow-sample\r\n"
                    "description: Synthetic multilingual sample crawl for winnow tests; text from "
                    "DFSG-free Debian documentation (see SOURCES.md), pages and phenomena generated\r\n"
                    "robots: ignore (synthetic)\r\n"
                    f"operator: winnow sample builder (seed {seed}, {len(pages)} pages, {n_files} files)\r\n"
                    ).encode("utf-8")
            rec = writer.create_warc_record(
                "", "warcinfo", payload=io.BytesIO(info), length=len(info),
                warc_content_type="application/warc-fields",
                warc_headers_dict={"WARC-Date": _warc_date(when), "WARC-Record-ID": info_id,
                                   "WARC-Filename": name})
            writer.write_record(rec)
            n_records += 1
            for p in chunk:
                when = when + dt.timedelta(seconds=rng.randint(1, 6))
                wdate = _warc_date(when)
                resp_id = record_id(seed, p.url, "response")
                host_path = re.match(r"^https?://([^/]+)(.*)$", p.url)
                host, path_q = host_path.group(1), host_path.group(2) or "/"
                req_headers = [("Host", host),
                               ("User-Agent", "WinnowSampleBot/1.0 (+https://crawler.example.org/bot.html)"),
                               ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                               ("Accept-Language", _accept_language(p.lang)),
                               ("Connection", "close")]
                req = writer.create_warc_record(
                    p.url, "request", payload=io.BytesIO(b""), length=0,
                    http_headers=StatusAndHeaders(f"GET {path_q} HTTP/1.1", req_headers, is_http_request=True),
                    warc_headers_dict={"WARC-Date": wdate, "WARC-Record-ID": record_id(seed, p.url, "request"),
                                       "WARC-Warcinfo-ID": info_id, "WARC-Concurrent-To": resp_id})
                writer.write_record(req)
                if p.kind == "spam":
                    ip = f"203.0.113.{rng.randint(100, 250)}"
                elif p.kind == "non_html":
                    ip = f"192.0.2.{rng.randint(100, 250)}"
                else:
                    ip = SITES[p.site].ip
                ident = p.content_type.split(";")[0]
                resp = writer.create_warc_record(
                    p.url, "response", payload=io.BytesIO(p.body), length=len(p.body),
                    http_headers=StatusAndHeaders("200 OK", response_headers(p, rng, when), protocol="HTTP/1.1"),
                    warc_headers_dict={"WARC-Date": wdate, "WARC-Record-ID": resp_id,
                                       "WARC-Warcinfo-ID": info_id, "WARC-IP-Address": ip,
                                       "WARC-Identified-Payload-Type": ident})
                p.record_id, p.file, p.offset = resp_id, name, fh.tell()
                writer.write_record(resp)
                n_records += 2
                if rng.random() < 0.4:
                    meta = f"fetchTimeMs: {rng.randint(30, 2500)}\r\n".encode()
                    rec = writer.create_warc_record(
                        p.url, "metadata", payload=io.BytesIO(meta), length=len(meta),
                        warc_content_type="application/warc-fields",
                        warc_headers_dict={"WARC-Date": wdate,
                                           "WARC-Record-ID": record_id(seed, p.url, "metadata"),
                                           "WARC-Warcinfo-ID": info_id, "WARC-Concurrent-To": resp_id})
                    writer.write_record(rec)
                    n_records += 1
        data = path.read_bytes()
        files.append({"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "records": n_records, "responses": len(chunk)})
    return files


# ---------------------------------------------------------------------------
# Manifest, SOURCES.md, driver
# ---------------------------------------------------------------------------

def manifest_record(p: Page) -> dict:
    d = {"url": p.url, "record_id": p.record_id, "file": p.file, "offset": p.offset,
         "language": p.lang, "kind": p.kind,
         "duplicates": ({"url": p.duplicates.url, "record_id": p.duplicates.record_id}
                        if p.duplicates else None),
         "site": p.site, "title": p.title, "content_type": p.content_type.split(";")[0],
         "declared_charset": p.declared_charset, "meta_charset": p.meta_charset,
         "actual_charset": p.actual_charset}
    if p.article is not None:
        a = p.article
        d["source"] = ({"package": "remix", "note": "random blocks of other articles of this language"}
                       if a.remix else {"package": a.package, "file": a.source_file, "anchor": a.anchor})
    if p.notes:
        d["notes"] = p.notes
    return d


def write_sources_md(path: Path, fetched: list[FetchedPackage], pages: list[Page]) -> None:
    used: dict[str, int] = {}
    remix = 0
    for p in pages:
        if p.article is not None and p.kind != "exact_duplicate" and p.kind != "near_duplicate":
            if p.article.remix:
                remix += 1
            else:
                used[p.article.package] = used.get(p.article.package, 0) + 1
    lines = ["# Sources of the sample crawl", "",
             "Generated by `jobs/sample/build.py`; do not edit by hand.", "",
             "Article text in the crawl comes from these DFSG-free Debian documentation packages "
             "(Debian `main`), fetched with `apt-get download` and unpacked with `dpkg-deb -x`. "
             "Sections were cut into pages, re-wrapped in generated web-page templates, and some "
             "pages were modified on purpose (duplicates with edits, mojibake, legacy or wrong "
             "charsets). Spam pages, navigation-only pages, PDF/PNG/JPEG/JSON bodies and all "
             "page templates are generated by the script itself.", "",
             "| package | version | language | license | distinct articles used |",
             "| --- | --- | --- | --- | --- |"]
    for f in fetched:
        lines.append(f"| {f.spec.name} | {f.version} | {f.spec.lang} | {f.license} | {used.get(f.spec.name, 0)} |")
    if remix:
        lines += ["", f"{remix} page(s) are 'remix' articles: random paragraphs of the articles "
                  "above (same language), used when a language runs out of sections (large --pages)."]
    lines += ["", "## Copyright and license notices", "",
              "Each distinct `usr/share/doc/<package>/copyright` file, verbatim. The GPL text is "
              "in `/usr/share/common-licenses/GPL-2` on Debian systems.", ""]
    seen: dict[str, list[str]] = {}
    texts: dict[str, str] = {}
    for f in fetched:
        h = hashlib.sha256(f.copyright_text.encode()).hexdigest()
        seen.setdefault(h, []).append(f.spec.name)
        texts[h] = f.copyright_text
    for h, names in seen.items():
        lines += [f"### {', '.join(names)}", "", "```", texts[h].rstrip("\n"), "```", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def build(out_dir: Path = DEFAULT_OUT_DIR, pages: int = DEFAULT_PAGES, seed: int = DEFAULT_SEED,
          files: int = DEFAULT_FILES, cache_dir: Path = DEFAULT_CACHE_DIR,
          download: bool = True, write_sources: bool = True) -> dict:
    """Build the crawl into ``out_dir`` and return the manifest (also written
    to ``out_dir/manifest.json``)."""
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    fetched = fetch_packages(cache_dir, download=download)
    pool = load_articles(fetched, cache_dir)
    plan, src = plan_pages(pool, pages, seed)
    render_pages(plan, seed)
    order = sorted(range(len(plan)), key=lambda i: (plan[i].key, i))
    ordered = [plan[i] for i in order]
    file_info = write_warcs(ordered, out_dir, files, seed)
    kinds = {k: 0 for k in KINDS}
    langs: dict[str, int] = {}
    by_kind_lang: dict[str, dict[str, int]] = {}
    for p in ordered:
        kinds[p.kind] += 1
        lang = p.lang or "none"
        langs[lang] = langs.get(lang, 0) + 1
        by_kind_lang.setdefault(p.kind, {})
        by_kind_lang[p.kind][lang] = by_kind_lang[p.kind].get(lang, 0) + 1
    manifest = {
        "format": 1,
        "generator": GENERATOR,
        "args": {"pages": pages, "seed": seed, "files": files},
        "files": file_info,
        "counts": {"kinds": kinds, "languages": dict(sorted(langs.items(), key=lambda kv: -kv[1])),
                   "kind_by_language": by_kind_lang, "remix_articles": src.remixes},
        "sources": [{"package": f.spec.name, "version": f.version, "language": f.spec.lang,
                     "license": f.license} for f in fetched],
        "records": [manifest_record(p) for p in ordered],
    }
    with open(out_dir / "manifest.json", "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    if write_sources:
        write_sources_md(out_dir / "SOURCES.md", fetched, ordered)
    return manifest


def summary(manifest: dict) -> str:
    lines = []
    total = sum(f["bytes"] for f in manifest["files"])
    for f in manifest["files"]:
        lines.append(f"{f['name']}: {f['bytes'] / 1e6:.2f} MB, {f['records']} records, "
                     f"{f['responses']} responses")
    lines.append(f"total: {total / 1e6:.2f} MB, {len(manifest['records'])} responses")
    lines.append("kinds: " + ", ".join(f"{k}={v}" for k, v in manifest["counts"]["kinds"].items()))
    lines.append("languages: " + ", ".join(f"{k}={v}" for k, v in manifest["counts"]["languages"].items()))
    if manifest["counts"]["remix_articles"]:
        lines.append(f"remix articles: {manifest['counts']['remix_articles']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                    help="where crawl-NNNNN.warc.gz, manifest.json and SOURCES.md go "
                         "(old crawl-NNNNN.warc.gz files there are removed) [%(default)s]")
    ap.add_argument("--pages", type=int, default=DEFAULT_PAGES,
                    help="number of response records [%(default)s]")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed [%(default)s]")
    ap.add_argument("--files", type=int, default=DEFAULT_FILES,
                    help="number of WARC files to split the crawl into [%(default)s]")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                    help="cache of downloaded .deb files, unpacked trees and parsed "
                         "articles; env WINNOW_SAMPLE_CACHE [%(default)s]")
    ap.add_argument("--no-download", action="store_true",
                    help="fail instead of running apt-get when a package is not cached")
    ap.add_argument("--no-sources-md", action="store_true", help="do not write SOURCES.md")
    args = ap.parse_args(argv)
    if args.pages < 1 or args.files < 1:
        ap.error("--pages and --files must be positive")
    t0 = time.monotonic()
    manifest = build(args.out_dir, args.pages, args.seed, args.files, args.cache_dir,
                     download=not args.no_download, write_sources=not args.no_sources_md)
    print(summary(manifest))
    print(f"wrote {args.out_dir} in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

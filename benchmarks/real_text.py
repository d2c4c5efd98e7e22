"""Real prose for the dedup benchmarks: article bodies and the system's package documentation.

Two sources, read in place and never copied into the repository:
  - the ground-truth article bodies of the article-extraction benchmark (181 news and blog
    articles, MIT), under ../shared/data/article-extraction-benchmark/ground-truth.json;
  - text files under /usr/share/doc (READMEs, NEWS, FAQs, changelogs, copyright notices,
    gzip-compressed or not), cut into paragraphs and kept only where they read as prose.

Package documentation repeats itself (one copyright file per library package, licence
texts quoted in full many times), so a paragraph whose words (lower case) were already seen
is skipped: the benchmarks control their duplicates, the sources must not bring their own.
What /usr/share/doc holds depends on the installed packages, so corpora built on another
machine differ; the article bodies do not.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = ROOT.parent / "shared" / "data" / "article-extraction-benchmark" / "ground-truth.json"
DOC_ROOT = Path("/usr/share/doc")

# Markup, styles, scripts and pictures are not prose; neither are maintainer scripts.
_SKIPPED_SUFFIXES = (".html", ".htm", ".css", ".js", ".png", ".gif", ".jpg", ".svg", ".ico", ".json", ".xml",
                     ".py", ".pl", ".sh", ".c", ".h", ".pdf", ".bz2", ".xz", ".zst", ".ttf", ".woff")
_MAX_FILE_BYTES = 4 << 20
_BLANK_LINES = re.compile(r"\n\s*\n")
_BULLET = re.compile(r"^\s*([-*+o]|\d+[.)]|\[.*?\])\s")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?(\s|$)")
_ALPHA_WORD = re.compile(r"^[\"'(\[]*[A-Za-z][A-Za-z'-]*[.,;:!?\"')\]]*$")


@dataclass(frozen=True)
class SourceText:
    """One source document: its paragraphs, in order, and where it came from."""

    name: str  # article id, or the documentation file's path under /usr/share/doc (with a part number)
    kind: str  # "article" or "doc"
    paragraphs: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)

    @property
    def words(self) -> int:
        return sum(len(p.split()) for p in self.paragraphs)


def _fingerprint(paragraph: str) -> bytes:
    return hashlib.blake2b(" ".join(re.findall(r"\w+", paragraph.lower())).encode(), digest_size=12).digest()


def article_texts(path: Path = ARTICLES) -> list[SourceText]:
    """The benchmark's article bodies, one source each, in id order."""
    if not path.exists():
        raise SystemExit(f"{path} not found: the article-extraction benchmark's ground truth is needed")
    truth = json.loads(path.read_text())
    out = []
    for article_id in sorted(truth):
        body = truth[article_id].get("articleBody") or ""
        paragraphs = tuple(p.strip() for p in body.split("\n") if p.strip())
        if paragraphs:
            out.append(SourceText(name=article_id[:16], kind="article", paragraphs=paragraphs))
    return out


def is_prose(paragraph: str) -> bool:
    """A paragraph that reads as running text: long enough, mostly words, with sentences, not a list."""
    words = paragraph.split()
    if len(words) < 20:
        return False
    lines = [line for line in paragraph.splitlines() if line.strip()]
    if sum(bool(_BULLET.match(line)) for line in lines) > len(lines) / 2:
        return False
    if sum(bool(_ALPHA_WORD.match(w)) for w in words) < 0.8 * len(words):
        return False
    mean_length = sum(map(len, words)) / len(words)
    return 3.0 <= mean_length <= 9.0 and len(_SENTENCE_END.findall(paragraph)) >= 1


def _read_doc_file(path: Path) -> str | None:
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            return None
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile):
        return None  # unreadable, binary or not UTF-8: not prose for our purpose


def doc_paragraphs(root: Path = DOC_ROOT) -> list[tuple[str, list[str]]]:
    """(file, its prose paragraphs unwrapped to single lines), for every text file under root, sorted.

    A paragraph whose words were already seen in an earlier file (in sorted path order) is left out.
    """
    seen: set[bytes] = set()
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        name = path.name.lower().removesuffix(".gz")
        if name.endswith(_SKIPPED_SUFFIXES):
            continue
        text = _read_doc_file(path)
        if not text:
            continue
        kept = []
        for block in _BLANK_LINES.split(text.replace("\r\n", "\n")):
            if not is_prose(block):
                continue
            fingerprint = _fingerprint(block)
            if fingerprint in seen:
                continue
            seen.add(fingerprint)
            kept.append(" ".join(block.split()))
        if kept:
            out.append((str(path.relative_to(root)), kept))
    return out


def doc_texts(min_words: int = 150, max_words: int = 1200, root: Path = DOC_ROOT) -> list[SourceText]:
    """Source documents of consecutive prose paragraphs of one documentation file, min_words to max_words long."""
    out = []
    for name, paragraphs in doc_paragraphs(root):
        part, current, have = 0, [], 0
        for paragraph in paragraphs:
            current.append(paragraph)
            have += len(paragraph.split())
            if have >= max_words:
                out.append(SourceText(name=f"{name}#{part}", kind="doc", paragraphs=tuple(current)))
                part, current, have = part + 1, [], 0
        if have >= min_words:
            out.append(SourceText(name=f"{name}#{part}", kind="doc", paragraphs=tuple(current)))
    return out


def all_paragraphs(root: Path = DOC_ROOT, articles: Path = ARTICLES) -> list[str]:
    """Every article paragraph and every prose paragraph of the documentation, in a fixed order."""
    out = [p for source in article_texts(articles) for p in source.paragraphs]
    out += [p for _, paragraphs in doc_paragraphs(root) for p in paragraphs]
    return out


__all__ = ["SourceText", "article_texts", "doc_texts", "doc_paragraphs", "all_paragraphs", "is_prose"]

"""Encoding repair: ftfy fixes mojibake and stray entities, then one Unicode normal form."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from re import _constants as sre_constants
from re import _parser as sre_parser
from typing import Literal

import ftfy
from ftfy import chardata
from ftfy.badness import BADNESS_RE
from ftfy.fixes import fix_character_width, uncurl_quotes


class RepairReason:
    EMPTY_AFTER_REPAIR = "empty_after_repair"


class RepairNote:
    CHANGED = "repair.text_changed"


@dataclass(frozen=True, kw_only=True)
class RepairConfig:
    fix_encoding: bool = True  # run ftfy (mojibake, HTML entities, control characters, widths)
    normalization: Literal["NFC", "NFKC", "none"] = "NFC"  # Unicode normal form applied last
    max_decode_length: int = 1_000_000  # ftfy works on segments of at most this many characters


# Characters that no ftfy fixer changes and that cannot be part of mojibake: printable ASCII
# except '&' (HTML entities), and the common CJK, kana and Hangul blocks, none of which any
# single-byte code page that ftfy considers can produce, and all of which are NFC-stable and
# not combining. tests/pipeline/test_repair_language.py checks every one of them against ftfy.
INERT_RANGES: tuple[tuple[int, int], ...] = (
    (0x09, 0x09), (0x20, 0x25), (0x27, 0x7E),
    (0x3001, 0x3003), (0x3008, 0x3011), (0x3014, 0x301F),  # CJK punctuation and brackets
    (0x3041, 0x3096), (0x30A1, 0x30FA), (0x30FC, 0x30FE),  # hiragana, katakana
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF),  # CJK ideographs
    (0xAC00, 0xD7A3),  # Hangul syllables
)
_INERT_LINE = re.compile(
    "[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in INERT_RANGES) + "]*\n?"
)


def _char_class(codepoints: set[int]) -> str:
    """A regex character class for a set of code points, as ranges."""
    parts, ordered = [], sorted(codepoints)
    start = prev = ordered[0]
    for cp in ordered[1:] + [-1]:
        if cp != prev + 1:
            parts.append(f"\\U{start:08x}-\\U{prev:08x}")
            start = cp
        prev = cp
    return "[" + "".join(parts) + "]"


# Every character some ftfy fixer other than the mojibake repair acts on, from ftfy's own tables:
# HTML entities, C1 and other control characters, line separators, surrogates, terminal
# escapes, ligatures, full- and half-width forms, and curly quotes.
_QUOTES = {0x02BC} | set(range(0x2018, 0x2020))
_TOUCHED_CODEPOINTS = (
    {ord(c) for c in "&\x1b\r\u2028\u2029\u0085"} | _QUOTES
    | set(range(0x80, 0xA0)) | set(range(0xD800, 0xE000))
    | set(chardata.CONTROL_CHARS) | {ord(c) if isinstance(c, str) else c for c in chardata.LIGATURES}
    | set(chardata.WIDTH_MAP)
)
_TOUCHED = re.compile(_char_class(_TOUCHED_CODEPOINTS))
# The touched characters that need more than ftfy's width and quote fixers. Full-width forms
# (CJK punctuation such as '，') and curly quotes are most of what web text holds.
_NEEDS_FTFY = re.compile(_char_class(_TOUCHED_CODEPOINTS - _QUOTES - set(chardata.WIDTH_MAP)))


def _required_characters(pattern: re.Pattern) -> tuple[set[int], int]:
    """Characters of which every match of `pattern` holds at least one, and its longest match.

    For each alternative of the top-level choice, one position with a finite character set is
    picked, preferring sets with few everyday letters, so that ordinary text rarely holds one.
    """
    parsed = sre_parser.parse(pattern.pattern, pattern.flags)
    (op, (_, alternatives)), = parsed.data  # one top-level alternation
    assert op is sre_constants.BRANCH

    def finite(item) -> set[int] | None:
        kind, value = item
        if kind is sre_constants.LITERAL:
            return {value}
        if kind is not sre_constants.IN or any(k is sre_constants.NEGATE for k, _ in value):
            return None
        chars: set[int] = set()
        for k, v in value:
            if k is sre_constants.LITERAL:
                chars.add(v)
            elif k is sre_constants.RANGE:
                chars.update(range(v[0], v[1] + 1))
            else:  # a category such as \s or \w: not finite
                return None
        return chars

    def everyday(chars: set[int]) -> tuple[int, int, int]:
        # How often ordinary text holds these: ASCII most, then the letters of Latin-1, Greek
        # and the Russian alphabet (not the rarer Cyrillic letters that only mojibake shows).
        ascii_chars = sum(c < 0x80 for c in chars)
        letters = sum(unicodedata.category(chr(c)).startswith("L") and c not in (0xAA, 0xB5, 0xBA)
                      and (c < 0x250 or 0x386 <= c <= 0x3CE or 0x410 <= c <= 0x44F or c in (0x401, 0x451)) for c in chars)
        return ascii_chars, letters, len(chars)

    required: set[int] = set()
    for alternative in alternatives:
        candidates = [chars for chars in map(finite, alternative.data) if chars]
        if not candidates:
            raise RuntimeError("an alternative of ftfy's badness pattern has no finite character set")
        required |= min(candidates, key=everyday)
    return required, parsed.getwidth()[1]


_MOJIBAKE_CHARS, _MOJIBAKE_WIDTH = _required_characters(BADNESS_RE)
_MOJIBAKE_CHAR = re.compile(_char_class(_MOJIBAKE_CHARS))
# A line with none of these is left as it is by ftfy when it is already in normal form.
_NOTABLE = re.compile(_char_class(_TOUCHED_CODEPOINTS | _MOJIBAKE_CHARS))


def is_bad(text: str) -> bool:
    """`ftfy.badness.is_bad`, answered without the full search when none of the characters that
    every match of ftfy's badness pattern holds occurs in the text (as in most lines)."""
    return _MOJIBAKE_CHAR.search(text) is not None and BADNESS_RE.search(text) is not None


def _ftfy_config(config: RepairConfig, unescape: bool | str) -> ftfy.TextFixerConfig:
    return ftfy.TextFixerConfig(
        normalization=None if config.normalization == "none" else config.normalization,
        max_decode_length=config.max_decode_length,
        unescape_html=unescape,
        explain=False,
    )


def fix_text_by_line(text: str, config: RepairConfig) -> str:
    """Exactly `ftfy.fix_text`, passing through lines that ftfy would return unchanged.

    ftfy works line by line, and most lines need nothing: those with no character any fixer
    acts on, no character that every mojibake match by ftfy's own test (`is_bad`) holds, and
    already in the normal form. One scan of the whole text finds the lines that hold such a
    character; only those are looked at one by one. A line whose only such characters are
    full-width forms and curly quotes gets those two fixers and the normal form, as ftfy's
    first pass would, when the result leaves a second pass nothing to do. ftfy's one rule that
    carries across lines, that HTML unescaping stops after the first line holding a '<', is
    kept. Equality with ftfy is tested.
    """
    form = None if config.normalization == "none" else config.normalization
    # Normal forms compose nothing across a newline, so a normalised text has normalised lines.
    normal_text = form is None or unicodedata.is_normalized(form, text)
    if normal_text and not _NOTABLE.search(text):
        return text
    auto = _ftfy_config(config, "auto")
    no_unescape = _ftfy_config(config, False)
    lt = text.find("<")
    # Lines from the one holding the first '<' on are fixed without HTML unescaping.
    escape_end = len(text) if lt < 0 else text.rfind("\n", 0, lt) + 1
    if normal_text:
        # Only lines holding a notable character can change.
        starts = sorted({text.rfind("\n", 0, m.start()) + 1 for m in _NOTABLE.finditer(text)})
    else:
        starts = [0]
        pos = text.find("\n") + 1
        while 0 < pos < len(text):
            starts.append(pos)
            pos = text.find("\n", pos) + 1
    out = []
    done = 0
    for start in starts:
        end = text.find("\n", start) + 1 or len(text)
        out.append(text[done:start])
        done = end
        out.append(_fix_line(text[start:end], form, auto if start < escape_end else no_unescape))
    out.append(text[done:])
    return "".join(out)


def _fix_line(segment: str, form: str | None, fixer: ftfy.TextFixerConfig) -> str:
    """ftfy.fix_text of one line, with fast answers for the lines ftfy would barely touch."""
    if _INERT_LINE.fullmatch(segment):
        return segment
    if not _TOUCHED.search(segment):
        if not is_bad(segment):
            # Nothing for any fixer here and no mojibake: ftfy would only normalise the line.
            # If normalising changes it, ftfy would look again, so let ftfy do it.
            normal = unicodedata.normalize(form, segment) if form else segment
            if normal == segment:
                return segment
    elif not _NEEDS_FTFY.search(segment) and not is_bad(segment):
        fixed = uncurl_quotes(fix_character_width(segment))
        if form:
            fixed = unicodedata.normalize(form, fixed)
        # ftfy stops after a pass that changes nothing: check that its second pass would not.
        if not _TOUCHED.search(fixed) and not is_bad(fixed):
            return fixed
    return ftfy.fix_text(segment, fixer)


def repair_text(text: str, config: RepairConfig) -> str:
    """Repair one text; the result is always in the configured normal form."""
    if config.fix_encoding:
        text = fix_text_by_line(text, config)
    if config.normalization != "none" and not unicodedata.is_normalized(config.normalization, text):
        # ftfy normalises each line; a line boundary can still join characters that compose.
        text = unicodedata.normalize(config.normalization, text)
    return text

"""Encoding repair: ftfy fixes mojibake and stray entities, then one Unicode normal form."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import ftfy
from ftfy import chardata
from ftfy.badness import is_bad


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
_TOUCHED = re.compile(_char_class(
    {ord(c) for c in "&\x1b\r\u2028\u2029\u0085\u02bc"}
    | set(range(0x80, 0xA0)) | set(range(0xD800, 0xE000)) | set(range(0x2018, 0x2020))
    | set(chardata.CONTROL_CHARS) | {ord(c) if isinstance(c, str) else c for c in chardata.LIGATURES}
    | set(chardata.WIDTH_MAP)
))


def _ftfy_config(config: RepairConfig, unescape: bool | str) -> ftfy.TextFixerConfig:
    return ftfy.TextFixerConfig(
        normalization=None if config.normalization == "none" else config.normalization,
        max_decode_length=config.max_decode_length,
        unescape_html=unescape,
        explain=False,
    )


def fix_text_by_line(text: str, config: RepairConfig) -> str:
    """Exactly `ftfy.fix_text`, passing through lines that ftfy would return unchanged.

    ftfy works line by line, and most lines need nothing: those made only of characters ftfy
    never touches, and those with no character any fixer acts on and no mojibake by ftfy's own
    test (`is_bad`). Its one rule that carries across lines, that HTML unescaping stops after
    the first line holding a '<', is kept here. Equality with ftfy is tested.
    """
    auto = _ftfy_config(config, "auto")
    no_unescape = _ftfy_config(config, False)
    current = auto
    form = None if config.normalization == "none" else config.normalization
    out = []
    pos = 0
    end_of_text = len(text)
    while pos < end_of_text:
        end = text.find("\n", pos) + 1 or end_of_text
        segment = text[pos:end]
        if current is auto and "<" in segment:
            current = no_unescape
        pos = end
        if _INERT_LINE.fullmatch(segment):
            out.append(segment)
            continue
        if not _TOUCHED.search(segment) and not is_bad(segment):
            # Nothing for any fixer here and no mojibake: ftfy would only normalise the line.
            # If normalising changes it, ftfy would look again, so let ftfy do it.
            normal = unicodedata.normalize(form, segment) if form else segment
            if normal == segment:
                out.append(segment)
                continue
        out.append(ftfy.fix_text(segment, current))
    return "".join(out)


def repair_text(text: str, config: RepairConfig) -> str:
    """Repair one text; the result is always in the configured normal form."""
    if config.fix_encoding:
        text = fix_text_by_line(text, config)
    if config.normalization != "none" and not unicodedata.is_normalized(config.normalization, text):
        # ftfy normalises each line; a line boundary can still join characters that compose.
        text = unicodedata.normalize(config.normalization, text)
    return text

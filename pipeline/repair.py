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


# Punctuation that ordinary prose holds: guillemets, inverted marks, degree sign, middle dot,
# dashes and typographic quotes.
_PROSE_PUNCTUATION = frozenset(map(ord, "«»¡¿°·–—‘’“”„"))


def _screen(pattern: re.Pattern) -> tuple[set[int], list[tuple[set[int], set[int]]]]:
    """A cheap test that every match of `pattern` passes: single characters, of which a match
    holds at least one, and pairs of character sets, of which it holds one pair side by side.

    For each alternative of the top-level choice, the position with a finite character set, or
    the two adjacent such positions, that ordinary text is least likely to hold is picked:
    `[Â][«»]` is rarer than either «» (prose in French or Russian) or Â alone.
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
        return None if ord("\n") in chars else chars

    def weight(c: int) -> float:
        # A rough frequency per thousand characters of ordinary text: ASCII most, then the
        # small letters of Latin-1, Latin Extended, Greek and Cyrillic and the punctuation of
        # prose (guillemets, inverted marks, degree sign, dashes), then capital letters; the
        # symbols and box-drawing characters that mostly mojibake shows least.
        if c < 0x80:
            return 1000.0
        category = unicodedata.category(chr(c))
        if c in _PROSE_PUNCTUATION or (category == "Ll" and c not in (0xAA, 0xB5, 0xBA) and c < 0x530):
            return 10.0
        if category == "Lu" and c < 0x530:
            return 1.0
        return 0.01

    def cost(chars: set[int]) -> float:
        return sum(map(weight, chars))

    singles: set[int] = set()
    pairs: list[tuple[set[int], set[int]]] = []
    for alternative in alternatives:
        sets = [finite(item) for item in alternative.data]
        options = [(cost(a), a, None) for a in sets if a]
        # Adjacent single-character positions match adjacent characters.
        options += [(cost(a) * cost(b) / 1000, a, b) for a, b in zip(sets, sets[1:]) if a and b]
        if not options:
            raise RuntimeError("an alternative of ftfy's badness pattern has no finite character set")
        # On a tie, a pair: a small letter next to a capital is rarer than the product says.
        _, first, second = min(options, key=lambda option: (option[0], option[2] is None, len(option[1])))
        if second is None:
            singles |= first
        else:
            pairs.append((first, second))
    return singles, pairs


def _screen_regex(singles: set[int], pairs: list[tuple[set[int], set[int]]], extra: set[int] = frozenset()) -> re.Pattern:
    """One character of `singles | extra`, or a pair: a leading character class, so that the
    regex engine skips ahead to candidates, and a lookbehind to tell which kind it found."""
    leading = singles | set(extra) | set().union(*(a for a, _ in pairs))
    tails = [f"(?<={_char_class(singles | set(extra))})"] if singles or extra else []
    tails += [f"(?<={_char_class(a)}){_char_class(b)}" for a, b in pairs]
    return re.compile(_char_class(leading) + "(?:" + "|".join(tails) + ")")


_MOJIBAKE_SINGLES, _MOJIBAKE_PAIRS = _screen(BADNESS_RE)
_MOJIBAKE_SCREEN = _screen_regex(_MOJIBAKE_SINGLES, _MOJIBAKE_PAIRS)
# A line with no match is left as it is by ftfy when it is already in normal form.
_NOTABLE = _screen_regex(_MOJIBAKE_SINGLES, _MOJIBAKE_PAIRS, _TOUCHED_CODEPOINTS)


def is_bad(text: str) -> bool:
    """`ftfy.badness.is_bad`, answered without the full search when the text fails the screen
    that every match of ftfy's badness pattern passes (as most lines do)."""
    return _MOJIBAKE_SCREEN.search(text) is not None and BADNESS_RE.search(text) is not None


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

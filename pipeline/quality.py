"""Heuristic document quality filters: C4 line rules, Gopher repetition, Gopher quality, FineWeb.

Pure standard library, so the rules can be unit-tested and reused outside Beam.
Every threshold defaults to the published value and is a config field (the field
names are the TOML keys). Definitions where the papers leave room, chosen here:

- "Lines" are the non-empty lines of the text with surrounding whitespace stripped;
  "paragraphs" are the non-empty blocks between blank lines.
- A duplicate is every occurrence of a line/paragraph/n-gram after its first one, so
  a text where each line appears once has no duplicate lines at all.
- Character fractions count the characters of lines/paragraphs (or, for n-grams,
  of words) and ignore the whitespace between them.
- Words come from `split_words`; n-grams are case-sensitive word n-grams. The "top"
  n-gram is the most frequent one occurring at least twice (the earliest among ties).

A family is switched off with `enabled = false`; single rules of the Gopher and FineWeb
families with `disabled_rules` (reason names), C4 sub-rules with their `drop_*` switches.
"""

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache
from itertools import compress, filterfalse, islice, repeat
from operator import gt, itemgetter
from types import MappingProxyType
from typing import Any

from pipeline.configfile import ConfigError

COUNT = Callable[[str, int], None]  # counter callback: name, increment


def _no_count(name: str, increment: int) -> None:
    """Default counter callback: discard."""


class Reason:
    """Drop reasons, `<family>.<rule>`; also the names accepted by `disabled_rules`."""

    C4_LOREM_IPSUM = "c4.lorem_ipsum"
    C4_CURLY_BRACE = "c4.curly_brace"
    C4_NO_LINES_LEFT = "c4.no_lines_left"
    C4_TOO_FEW_SENTENCES = "c4.too_few_sentences"
    REPETITION_DUPLICATE_LINES = "gopher_repetition.duplicate_lines"
    REPETITION_DUPLICATE_PARAGRAPHS = "gopher_repetition.duplicate_paragraphs"
    REPETITION_DUPLICATE_LINE_CHARS = "gopher_repetition.duplicate_line_chars"
    REPETITION_DUPLICATE_PARAGRAPH_CHARS = "gopher_repetition.duplicate_paragraph_chars"
    REPETITION_TOP_NGRAM = "gopher_repetition.top_ngram"
    REPETITION_DUPLICATE_NGRAMS = "gopher_repetition.duplicate_ngrams"
    GOPHER_TOO_FEW_WORDS = "gopher_quality.too_few_words"
    GOPHER_TOO_MANY_WORDS = "gopher_quality.too_many_words"
    GOPHER_MEAN_WORD_TOO_SHORT = "gopher_quality.mean_word_too_short"
    GOPHER_MEAN_WORD_TOO_LONG = "gopher_quality.mean_word_too_long"
    GOPHER_SYMBOL_WORD_RATIO = "gopher_quality.symbol_word_ratio"
    GOPHER_BULLET_LINES = "gopher_quality.bullet_lines"
    GOPHER_ELLIPSIS_LINES = "gopher_quality.ellipsis_lines"
    GOPHER_TOO_FEW_ALPHA_WORDS = "gopher_quality.too_few_alpha_words"
    GOPHER_TOO_FEW_STOP_WORDS = "gopher_quality.too_few_stop_words"
    FINEWEB_FEW_TERMINAL_PUNCT_LINES = "fineweb.few_terminal_punct_lines"
    FINEWEB_DUPLICATE_LINE_CHARS = "fineweb.duplicate_line_chars"
    FINEWEB_SHORT_LINES = "fineweb.short_lines"


ALL_REASONS: tuple[str, ...] = tuple(v for k, v in vars(Reason).items() if k.isupper())


class LineRemoval:
    """Counter names for lines removed by the C4 line rules (the document itself is kept)."""

    NO_TERMINAL_PUNCT = "c4.line_no_terminal_punct"
    TOO_FEW_WORDS = "c4.line_too_few_words"
    JAVASCRIPT = "c4.line_javascript"
    POLICY = "c4.line_policy"


ALL_LINE_REMOVALS: tuple[str, ...] = tuple(v for k, v in vars(LineRemoval).items() if k.isupper())

# --- word splitting -------------------------------------------------------------------

# Scripts written without spaces between words: every character counts as one word.
_NO_SPACE_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer symbols
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # Han extension A
    (0x4E00, 0x9FFF),  # Han
    (0xA9E0, 0xA9FF),  # Myanmar extended-B
    (0xAA60, 0xAA7F),  # Myanmar extended-A
    (0xF900, 0xFAFF),  # Han compatibility
    (0xFF66, 0xFF9F),  # halfwidth Katakana
)
_NO_SPACE_SUPPLEMENTARY = (0x20000, 0x323AF)  # Han extensions B-H


def _char_class(codepoints: Iterable[int]) -> str:
    """Body of a regex character class matching exactly the given ascending code points."""
    parts: list[str] = []
    runs: list[list[int]] = []
    for cp in codepoints:
        if runs and cp == runs[-1][1] + 1:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp])
    for lo, hi in runs:
        parts.append(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}")
    return "".join(parts)


def _build_word_regex() -> re.Pattern[str]:
    # Python's re has no \p{..}; build the classes once from unicodedata (tens of ms).
    # Only the BMP is scanned in detail: re checks non-BMP ranges one by one, so they are
    # kept to two coarse blocks (emoji/pictographs, supplementary Han) for speed.
    strip, marks = [], []
    for cp in range(0x10000):
        cat = unicodedata.category(chr(cp))
        if cat[0] in "PS" or cat == "Cf":
            strip.append(cp)
        elif cat[0] == "M":
            marks.append(cp)
    strip.extend(range(0x1F000, 0x1FB00))  # emoji, pictographs and other symbols
    # Base letters/digits of space-less scripts; their combining marks stay attached so
    # that a Thai syllable or a Japanese kana with dakuten is one word.
    base = [
        cp
        for lo, hi in _NO_SPACE_RANGES
        for cp in range(lo, min(hi, 0xFFFF) + 1)
        if unicodedata.category(chr(cp))[0] in "LN"
    ]
    first, last = _NO_SPACE_SUPPLEMENTARY
    ns = _char_class(base) + _char_class(range(first, last + 1))
    p, m = _char_class(strip), _char_class(marks)
    # Either a whitespace-free run of other characters that neither starts nor ends with
    # punctuation/symbols, or one space-less character with its marks. Possessive
    # quantifiers: nothing to backtrack into, which keeps the scan linear and quick.
    word, punct = f"[^\\s{p}{ns}]++", f"[{p}]++"
    return re.compile(f"{word}(?:{punct}{word})*+|[{ns}][{m}]*+")


_WORD_RE = _build_word_regex()
_LETTER_RE = re.compile(r"[^\W\d_]")
# A run of end marks ends a sentence if its last mark is full-width CJK (no space follows
# those) or it is followed by whitespace, a closer or the end, so "3.14" is no sentence end.
# Starting with a plain character class lets the regex engine skip ahead quickly.
_SENTENCE_END_RE = re.compile(r"[.!?。！？][.!?。！？]*(?:(?<=[。！？])|(?=[\s\"'”’»)\]」』]|$))")
_PARAGRAPH_SPLIT_RE = re.compile(r"\n\s*\n")


def split_words(text: str) -> list[str]:
    """Whitespace-separated words without surrounding punctuation and symbols.

    Each character of a script written without spaces (Han, Hiragana, Katakana, Thai,
    Lao, Khmer, Myanmar) is a word of its own, with any combining marks attached.
    """
    if text.isascii():
        # Same result, about twice as fast: ASCII punctuation and symbols are exactly
        # string.punctuation, and ASCII has no space-less script.
        return list(filter(None, map(str.strip, text.split(), repeat(string.punctuation))))
    return _WORD_RE.findall(text)


def _has_words(text: str, n: int) -> bool:
    """Whether text has at least n words."""
    # A prefix never has more words than the whole text, and usually has enough.
    end = 10 * n + 10
    return len(_WORD_RE.findall(text, 0, end)) >= n or (len(text) > end and len(_WORD_RE.findall(text)) >= n)


# --- configs --------------------------------------------------------------------------

DEFAULT_STOP_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "en": ("the", "be", "to", "of", "and", "that", "have", "with"),  # Gopher, Rae et al. 2021
        # Very frequent function words, chosen for this project.
        "de": ("der", "die", "das", "und", "ist", "nicht", "mit", "den", "von", "zu"),
        "fr": ("le", "la", "les", "de", "et", "des", "un", "une", "est", "que"),
        "es": ("el", "la", "los", "las", "de", "que", "y", "en", "un", "por"),
        "it": ("il", "la", "di", "che", "e", "per", "un", "non", "del", "con"),
        "pt": ("o", "a", "os", "de", "que", "e", "do", "da", "em", "um"),
        "nl": ("de", "het", "een", "en", "van", "is", "dat", "niet", "op", "te"),
    }
)

# Closing quotes/brackets allowed after terminal punctuation: `."`, `!”`, `。」`, `?»`.
_CLOSING_QUOTES = ('"', "'", "”", "’", "»", "」", "』", ")")


def _check_disabled(config: Any, family: str) -> None:
    unknown = [r for r in config.disabled_rules if r not in ALL_REASONS or not r.startswith(family + ".")]
    if unknown:
        known = ", ".join(r for r in ALL_REASONS if r.startswith(family + "."))
        raise ConfigError(f"disabled_rules: unknown rule {unknown[0]!r}; known: {known}")


def _check_non_negative(config: Any, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 0:
            raise ConfigError(f"{name}: must be >= 0, got {getattr(config, name)}")


def _rebuild(cls: type, kwargs: dict[str, Any]) -> Any:
    return cls(**kwargs)


@dataclass(frozen=True, kw_only=True)
class GopherQualityConfig:
    """Gopher quality filter (Rae et al. 2021, appendix A.1.1)."""

    enabled: bool = True  # run this family at all
    min_words: int = 50  # fewer words drops the document (Gopher)
    max_words: int = 100_000  # more words drops the document (Gopher)
    min_mean_word_length: float = 3.0  # mean characters per word, lower bound (Gopher)
    max_mean_word_length: float = 10.0  # mean characters per word, upper bound (Gopher)
    max_symbol_word_ratio: float = 0.1  # max "#" per word and max ellipses per word, each (Gopher)
    max_bullet_line_fraction: float = 0.9  # max share of lines starting with a bullet (Gopher)
    max_ellipsis_line_fraction: float = 0.3  # max share of lines ending in "..." or "…" (Gopher)
    min_alpha_word_fraction: float = 0.8  # min share of words with a letter (Gopher)
    min_stop_words: int = 2  # min distinct stop words of the document language present (Gopher)
    # ISO 639-1 code -> stop words (labels like "pt-BR" or "eng_Latn" are mapped to the code);
    # languages missing here, and unknown ones, skip the stop-word rule
    stop_words: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: DEFAULT_STOP_WORDS)
    # languages written without spaces skip the mean-word-length rule (so do labels with a
    # Han, Japanese, Thai, Lao, Khmer or Myanmar script subtag, such as "yue_Hani")
    no_space_languages: tuple[str, ...] = ("zh", "ja", "th", "lo", "km", "my")
    # line prefixes that count as bullet points (project choice; Gopher does not list them)
    bullet_prefixes: tuple[str, ...] = ("•", "●", "○", "■", "□", "▪", "▫", "◦", "‣", "►", "-", "*", "·")
    disabled_rules: tuple[str, ...] = ()  # Reason names of this family to skip

    def __post_init__(self) -> None:
        _check_disabled(self, "gopher_quality")
        _check_non_negative(self, "min_words", "min_mean_word_length", "max_symbol_word_ratio")
        if self.min_words > self.max_words:
            raise ConfigError(f"min_words ({self.min_words}) exceeds max_words ({self.max_words})")
        if self.min_mean_word_length > self.max_mean_word_length:
            raise ConfigError("min_mean_word_length exceeds max_mean_word_length")
        if not isinstance(self.stop_words, MappingProxyType):  # e.g. a plain dict from Python code
            frozen = {lang: tuple(words) for lang, words in self.stop_words.items()}
            object.__setattr__(self, "stop_words", MappingProxyType(frozen))

    # The mapping proxy is neither picklable nor hashable; Beam needs to pickle configs.
    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {f.name: getattr(self, f.name) for f in fields(self)}
        kwargs["stop_words"] = dict(self.stop_words)
        return (_rebuild, (type(self), kwargs))

    def __hash__(self) -> int:
        values = [getattr(self, f.name) for f in fields(self) if f.name != "stop_words"]
        return hash((*values, tuple(sorted(self.stop_words.items()))))


@dataclass(frozen=True, kw_only=True)
class GopherRepetitionConfig:
    """Gopher repetition filter (Rae et al. 2021, appendix A.1.2, table A1)."""

    enabled: bool = True  # run this family at all
    # languages written without spaces skip the n-gram rules: Gopher's thresholds are for
    # word n-grams, and n single characters repeat far more often than n words do
    no_space_languages: tuple[str, ...] = ("zh", "ja", "th", "lo", "km", "my")
    max_duplicate_line_fraction: float = 0.30  # share of lines that are duplicates (Gopher)
    max_duplicate_paragraph_fraction: float = 0.30  # share of paragraphs that are duplicates (Gopher)
    max_duplicate_line_char_fraction: float = 0.20  # share of characters in duplicate lines (Gopher)
    max_duplicate_paragraph_char_fraction: float = 0.20  # same for paragraphs (Gopher)
    # (n, max share of word characters covered by the most frequent n-gram) (Gopher)
    top_ngram_max_char_fractions: tuple[tuple[int, float], ...] = ((2, 0.20), (3, 0.18), (4, 0.16))
    # (n, max share of word characters covered by repeated n-grams) (Gopher)
    duplicate_ngram_max_char_fractions: tuple[tuple[int, float], ...] = (
        (5, 0.15),
        (6, 0.14),
        (7, 0.13),
        (8, 0.12),
        (9, 0.11),
        (10, 0.10),
    )
    disabled_rules: tuple[str, ...] = ()  # Reason names of this family to skip

    def __post_init__(self) -> None:
        _check_disabled(self, "gopher_repetition")
        for n, _ in self.top_ngram_max_char_fractions + self.duplicate_ngram_max_char_fractions:
            if n < 1:
                raise ConfigError(f"n-gram size must be >= 1, got {n}")


@dataclass(frozen=True, kw_only=True)
class C4Config:
    """C4 cleaning rules (Raffel et al. 2020, section 2.2); line rules rewrite the text."""

    enabled: bool = True  # run this family at all
    drop_lines_without_terminal_punctuation: bool = True  # keep only lines ending a sentence (C4)
    # line endings that count as terminal punctuation (C4: . ! ? "; plus CJK full-width marks)
    terminal_punctuation: tuple[str, ...] = (".", "!", "?", '"', "。", "！", "？")
    # closing quotes/brackets that may follow terminal punctuation, as in `."` or `。」`
    closing_quotes: tuple[str, ...] = _CLOSING_QUOTES
    drop_short_lines: bool = True  # drop lines with fewer than min_words_per_line words (C4)
    min_words_per_line: int = 3  # C4; CJK characters count as words (see split_words)
    drop_javascript_lines: bool = True  # drop lines containing a javascript phrase (C4)
    javascript_phrases: tuple[str, ...] = ("javascript",)  # case-insensitive substrings (C4)
    drop_policy_lines: bool = True  # drop lines containing a policy phrase (C4 reference code)
    # case-insensitive substrings marking cookie/terms boilerplate (C4 reference code)
    policy_phrases: tuple[str, ...] = (
        "terms of use",
        "privacy policy",
        "cookie policy",
        "uses cookies",
        "use of cookies",
        "use cookies",
    )
    drop_lorem_ipsum: bool = True  # drop documents containing "lorem ipsum", any case (C4)
    drop_curly_brace: bool = True  # drop documents containing "{", usually code (C4)
    drop_empty: bool = True  # drop documents with no line left after the line rules
    drop_few_sentences: bool = True  # drop documents with fewer than min_sentences sentences (C4)
    min_sentences: int = 5  # C4; counted by terminal punctuation in the rewritten text

    def __post_init__(self) -> None:
        _check_non_negative(self, "min_words_per_line", "min_sentences")


@dataclass(frozen=True, kw_only=True)
class FineWebConfig:
    """FineWeb custom line filters (Penedo et al. 2024)."""

    enabled: bool = True  # run this family at all
    # min share of lines ending in terminal punctuation (FineWeb: 0.12)
    min_terminal_punctuation_line_fraction: float = 0.12
    # FineWeb's end marks . ' " ! ? plus CJK full-width marks
    terminal_punctuation: tuple[str, ...] = (".", "'", '"', "!", "?", "。", "！", "？")
    # closing quotes/brackets that may follow terminal punctuation (project addition)
    closing_quotes: tuple[str, ...] = _CLOSING_QUOTES
    max_duplicate_line_char_fraction: float = 0.1  # share of characters in duplicate lines (FineWeb)
    short_line_length: int = 30  # lines with fewer characters count as short (FineWeb)
    max_short_line_fraction: float = 0.67  # max share of short lines (FineWeb)
    disabled_rules: tuple[str, ...] = ()  # Reason names of this family to skip

    def __post_init__(self) -> None:
        _check_disabled(self, "fineweb")


@dataclass(frozen=True, kw_only=True)
class QualityConfig:
    """All quality rule families; `filter_quality` runs C4, repetition, quality, FineWeb."""

    gopher_quality: GopherQualityConfig = field(default_factory=GopherQualityConfig)
    gopher_repetition: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)
    c4: C4Config = field(default_factory=C4Config)
    fineweb: FineWebConfig = field(default_factory=FineWebConfig)


@dataclass(frozen=True, slots=True)
class QualityResult:
    """Outcome of `filter_quality` or `c4_filter` for one document."""

    text: str  # possibly rewritten by C4 line rules
    reason: str | None  # None = kept; otherwise the drop reason constant


# --- shared helpers -------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return [s for s in map(str.strip, text.splitlines()) if s]


def _paragraphs(text: str) -> list[str]:
    return [s for s in map(str.strip, _PARAGRAPH_SPLIT_RE.split(text)) if s]


def _duplicates(items: Sequence[str]) -> tuple[int, int, int]:
    """(duplicate items, characters in duplicates, all characters); first occurrences are not duplicates."""
    counts = Counter(items)
    total_chars = sum(map(len, items))
    return len(items) - len(counts), total_chars - sum(map(len, counts)), total_chars


def _ends_sentence(line: str, terminal: tuple[str, ...], closing: str) -> bool:
    return line.endswith(terminal) or (bool(closing) and line.rstrip(closing).endswith(terminal))


# Language labels may be ISO 639-1 ("en", lid.176) or ISO 639-3 plus script ("eng_Latn",
# GlotLID/OpenLID); settings are keyed by ISO 639-1, so map the 639-3 codes that have any.
_ISO_639_3 = {
    "eng": "en", "deu": "de", "fra": "fr", "spa": "es", "ita": "it", "por": "pt", "nld": "nl",
    "zho": "zh", "cmn": "zh", "jpn": "ja", "tha": "th", "lao": "lo", "khm": "km", "mya": "my",
}  # fmt: skip
# Script subtags of scripts written without spaces, for labels such as "yue_Hani".
_NO_SPACE_SCRIPTS = frozenset(("hani", "hans", "hant", "jpan", "hira", "kana", "thai", "laoo", "khmr", "mymr"))


@lru_cache(maxsize=256)
def _parse_language(language: str | None) -> tuple[str | None, bool]:
    """(ISO 639-1 code where known, whether the label names a script written without spaces)."""
    if not language:
        return None, False
    parts = language.replace("_", "-").lower().split("-")
    return _ISO_639_3.get(parts[0], parts[0]), any(p in _NO_SPACE_SCRIPTS for p in parts[1:])


@lru_cache(maxsize=64)
def _stop_set(words: tuple[str, ...]) -> frozenset[str]:
    # Lower, Title and UPPER case forms: matching them directly avoids lower-casing every
    # word of the document; other mixed cases ("tHe") are too rare to matter.
    return frozenset(f for w in words for f in (w.lower(), w.lower().capitalize(), w.upper()))


def _contains_any(text: str, phrases: tuple[str, ...]) -> bool:
    # Plain substring search: much faster than a regex alternation over the whole text.
    return any(p in text for p in phrases)


def _count_sentences(text: str, limit: int) -> int:
    """Sentence ends in text, counting no further than limit."""
    return sum(1 for _ in islice(_SENTENCE_END_RE.finditer(text), limit))


# --- C4 -------------------------------------------------------------------------------


def c4_filter(text: str, config: C4Config, count: COUNT = _no_count) -> QualityResult:
    """Apply the C4 rules: drop whole documents, or keep them with non-sentence lines removed."""
    if not config.enabled:
        return QualityResult(text, None)
    lowered = text.lower()
    if config.drop_lorem_ipsum and "lorem ipsum" in lowered:
        return QualityResult(text, Reason.C4_LOREM_IPSUM)
    if config.drop_curly_brace and "{" in text:
        return QualityResult(text, Reason.C4_CURLY_BRACE)
    # Phrase checks per line are only needed when a phrase occurs in the document at all.
    js = tuple(p.lower() for p in config.javascript_phrases) if config.drop_javascript_lines else ()
    js = js if _contains_any(lowered, js) else ()
    policy = tuple(p.lower() for p in config.policy_phrases) if config.drop_policy_lines else ()
    policy = policy if _contains_any(lowered, policy) else ()
    terminal, closing = config.terminal_punctuation, "".join(config.closing_quotes)
    removed = dict.fromkeys(ALL_LINE_REMOVALS, 0)
    kept: list[str] = []
    paragraph_break = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            paragraph_break = True
            continue
        if config.drop_lines_without_terminal_punctuation and not _ends_sentence(line, terminal, closing):
            removed[LineRemoval.NO_TERMINAL_PUNCT] += 1
        elif config.drop_short_lines and not _has_words(line, config.min_words_per_line):
            removed[LineRemoval.TOO_FEW_WORDS] += 1
        elif js and _contains_any(line.lower(), js):
            removed[LineRemoval.JAVASCRIPT] += 1
        elif policy and _contains_any(line.lower(), policy):
            removed[LineRemoval.POLICY] += 1
        else:
            # Keep paragraph breaks so the Gopher paragraph rules still see paragraphs.
            if paragraph_break and kept:
                kept.append("")
            paragraph_break = False
            kept.append(line)
    for name, n in removed.items():
        if n:
            count(name, n)
    out = "\n".join(kept)
    if config.drop_empty and not kept:
        return QualityResult(out, Reason.C4_NO_LINES_LEFT)
    if config.drop_few_sentences and _count_sentences(out, config.min_sentences) < config.min_sentences:
        return QualityResult(out, Reason.C4_TOO_FEW_SENTENCES)
    return QualityResult(out, None)


# --- Gopher repetition ----------------------------------------------------------------


def _repeated_ngrams(
    words: list[str], first_n: int, last_n: int
) -> Iterator[tuple[int, list[int], list[tuple[str, ...]]]]:
    """For n = first_n..last_n: n, the ascending start positions of n-grams that occur
    twice or more, and those n-grams."""
    grams = list(zip(*(islice(words, k, None) for k in range(first_n))))
    counts = Counter(grams)
    repeated = list(map(gt, map(counts.__getitem__, grams), repeat(1)))
    positions = list(compress(range(len(grams)), repeated))
    grams = list(compress(grams, repeated))
    yield first_n, positions, grams
    for n in range(first_n + 1, last_n + 1):
        # An n-gram can repeat only where the (n-1)-grams at i and i+1 both repeat, so
        # each step looks only at the survivors of the last; ordinary prose has few.
        previous = set(positions)
        candidates = [i for i in positions if i + 1 in previous]
        grams = [tuple(words[i : i + n]) for i in candidates]
        counts = Counter(grams)
        repeated = [counts[g] > 1 for g in grams]
        positions = list(compress(candidates, repeated))
        grams = list(compress(grams, repeated))
        yield n, positions, grams


def _top_ngram_fraction(grams: list[tuple[str, ...]], total_chars: int) -> float:
    """Share of word characters taken by all occurrences of the most frequent repeated n-gram."""
    if not grams:
        return 0.0
    # max() keeps the first of equally frequent n-grams: the earliest in the document.
    gram, freq = max(Counter(grams).items(), key=itemgetter(1))
    return freq * sum(map(len, gram)) / total_chars


def _duplicate_ngram_fraction(
    words: list[str], n: int, positions: list[int], grams: list[tuple[str, ...]], total_chars: int
) -> float:
    """Share of word characters covered by second and later occurrences of repeated n-grams."""
    covered = end = 0
    seen = set()
    for i, gram in zip(positions, grams):
        if gram not in seen:
            seen.add(gram)
            continue
        # Positions ascend, so clipping at the previous end never counts a word twice.
        start = max(i, end)
        end = i + n
        covered += sum(map(len, words[start:end]))
    return covered / total_chars


def _gopher_repetition(
    lines: list[str], paragraphs: list[str], words: list[str], language: str | None,
    config: GopherRepetitionConfig,
) -> str | None:
    skip = config.disabled_rules
    if lines:  # a text with a non-empty line also has a non-empty paragraph
        dup_lines, dup_line_chars, line_chars = _duplicates(lines)
        dup_paras, dup_para_chars, para_chars = _duplicates(paragraphs)
        checks = (
            (dup_lines / len(lines), config.max_duplicate_line_fraction, Reason.REPETITION_DUPLICATE_LINES),
            (
                dup_paras / len(paragraphs),
                config.max_duplicate_paragraph_fraction,
                Reason.REPETITION_DUPLICATE_PARAGRAPHS,
            ),
            (
                dup_line_chars / line_chars,
                config.max_duplicate_line_char_fraction,
                Reason.REPETITION_DUPLICATE_LINE_CHARS,
            ),
            (
                dup_para_chars / para_chars,
                config.max_duplicate_paragraph_char_fraction,
                Reason.REPETITION_DUPLICATE_PARAGRAPH_CHARS,
            ),
        )
        for value, limit, reason in checks:
            if value > limit and reason not in skip:
                return reason
    code, no_space_script = _parse_language(language)
    if no_space_script or code in config.no_space_languages:
        return None
    top = dict(config.top_ngram_max_char_fractions) if Reason.REPETITION_TOP_NGRAM not in skip else {}
    dup = dict(config.duplicate_ngram_max_char_fractions) if Reason.REPETITION_DUPLICATE_NGRAMS not in skip else {}
    total_chars = sum(map(len, words))
    if not (top or dup) or total_chars == 0:
        return None
    sizes = (*top, *dup)
    for n, positions, grams in _repeated_ngrams(words, min(sizes), max(sizes)):
        if not positions:
            break  # nothing of length n repeats, so nothing longer can
        if n in top and _top_ngram_fraction(grams, total_chars) > top[n]:
            return Reason.REPETITION_TOP_NGRAM
        if n in dup and _duplicate_ngram_fraction(words, n, positions, grams, total_chars) > dup[n]:
            return Reason.REPETITION_DUPLICATE_NGRAMS
    return None


def gopher_repetition_reason(
    text: str, config: GopherRepetitionConfig, language: str | None = None
) -> str | None:
    """Drop reason of the Gopher repetition rules, or None."""
    if not config.enabled:
        return None
    return _gopher_repetition(_lines(text), _paragraphs(text), split_words(text), language, config)


# --- Gopher quality -------------------------------------------------------------------


def _gopher_quality(
    text: str, lines: list[str], words: list[str], language: str | None, config: GopherQualityConfig
) -> str | None:
    skip = config.disabled_rules
    language, no_space_script = _parse_language(language)
    n = len(words)
    if n < config.min_words and Reason.GOPHER_TOO_FEW_WORDS not in skip:
        return Reason.GOPHER_TOO_FEW_WORDS
    if n > config.max_words and Reason.GOPHER_TOO_MANY_WORDS not in skip:
        return Reason.GOPHER_TOO_MANY_WORDS
    if n == 0:
        return None  # every remaining rule is a share of words
    if not (no_space_script or language in config.no_space_languages):
        mean = sum(map(len, words)) / n
        if mean < config.min_mean_word_length and Reason.GOPHER_MEAN_WORD_TOO_SHORT not in skip:
            return Reason.GOPHER_MEAN_WORD_TOO_SHORT
        if mean > config.max_mean_word_length and Reason.GOPHER_MEAN_WORD_TOO_LONG not in skip:
            return Reason.GOPHER_MEAN_WORD_TOO_LONG
    # The paper's limit holds "for either the hash symbol or the ellipsis", so each separately.
    symbols = max(text.count("#"), text.count("...") + text.count("…"))
    if symbols / n > config.max_symbol_word_ratio and Reason.GOPHER_SYMBOL_WORD_RATIO not in skip:
        return Reason.GOPHER_SYMBOL_WORD_RATIO
    if lines:
        bullets = sum(1 for line in lines if line.startswith(config.bullet_prefixes))
        if bullets / len(lines) > config.max_bullet_line_fraction and Reason.GOPHER_BULLET_LINES not in skip:
            return Reason.GOPHER_BULLET_LINES
        ellipses = sum(1 for line in lines if line.endswith(("...", "…")))
        if ellipses / len(lines) > config.max_ellipsis_line_fraction:
            if Reason.GOPHER_ELLIPSIS_LINES not in skip:
                return Reason.GOPHER_ELLIPSIS_LINES
    # Most words are all letters; only the rest need the (slower) regex.
    no_letter = sum(1 for w in filterfalse(str.isalpha, words) if not _LETTER_RE.search(w))
    if (n - no_letter) / n < config.min_alpha_word_fraction and Reason.GOPHER_TOO_FEW_ALPHA_WORDS not in skip:
        return Reason.GOPHER_TOO_FEW_ALPHA_WORDS
    stop_words = config.stop_words.get(language) if language else None
    if stop_words and Reason.GOPHER_TOO_FEW_STOP_WORDS not in skip:
        found = _stop_set(tuple(stop_words)).intersection(words)
        if len({w.lower() for w in found}) < config.min_stop_words:
            return Reason.GOPHER_TOO_FEW_STOP_WORDS
    return None


def gopher_quality_reason(text: str, language: str | None, config: GopherQualityConfig) -> str | None:
    """Drop reason of the Gopher quality rules, or None.

    `language` is a language label ("de", "pt-BR", "jpn_Jpan") or None when unknown;
    None means no stop-word list and a script written with spaces.
    """
    if not config.enabled:
        return None
    return _gopher_quality(text, _lines(text), split_words(text), language, config)


# --- FineWeb --------------------------------------------------------------------------


def _fineweb(lines: list[str], config: FineWebConfig) -> str | None:
    if not lines:
        return None
    skip = config.disabled_rules
    terminal, closing = config.terminal_punctuation, "".join(config.closing_quotes)
    ended = sum(1 for line in lines if _ends_sentence(line, terminal, closing))
    if (
        ended / len(lines) < config.min_terminal_punctuation_line_fraction
        and Reason.FINEWEB_FEW_TERMINAL_PUNCT_LINES not in skip
    ):
        return Reason.FINEWEB_FEW_TERMINAL_PUNCT_LINES
    _, dup_chars, total = _duplicates(lines)
    if dup_chars / total > config.max_duplicate_line_char_fraction:
        if Reason.FINEWEB_DUPLICATE_LINE_CHARS not in skip:
            return Reason.FINEWEB_DUPLICATE_LINE_CHARS
    short = sum(1 for line in lines if len(line) < config.short_line_length)
    if short / len(lines) > config.max_short_line_fraction and Reason.FINEWEB_SHORT_LINES not in skip:
        return Reason.FINEWEB_SHORT_LINES
    return None


def fineweb_reason(text: str, config: FineWebConfig) -> str | None:
    """Drop reason of the FineWeb line rules, or None."""
    if not config.enabled:
        return None
    return _fineweb(_lines(text), config)


# --- all together ---------------------------------------------------------------------


def filter_quality(
    text: str, language: str | None, config: QualityConfig, count: COUNT = _no_count
) -> QualityResult:
    """Run C4 (which may rewrite the text), then Gopher repetition, Gopher quality and FineWeb.

    Stops at the first failing rule. `language` is the identified language label or None;
    `count` receives the C4 line-removal counters (`LineRemoval`).
    """
    result = c4_filter(text, config.c4, count)
    if result.reason is not None:
        return result
    text = result.text
    repetition, quality, fineweb = config.gopher_repetition, config.gopher_quality, config.fineweb
    if not (repetition.enabled or quality.enabled or fineweb.enabled):
        return result
    # Split once and share between the families.
    lines = _lines(text)
    words = split_words(text) if repetition.enabled or quality.enabled else []
    reason = None
    if repetition.enabled:
        reason = _gopher_repetition(lines, _paragraphs(text), words, language, repetition)
    if reason is None and quality.enabled:
        reason = _gopher_quality(text, lines, words, language, quality)
    if reason is None and fineweb.enabled:
        reason = _fineweb(lines, fineweb)
    return QualityResult(text, reason)

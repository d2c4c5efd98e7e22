"""Tests for the heuristic quality filters in pipeline.quality."""

import dataclasses
import pickle
import random
import re
import types
import typing
from collections import Counter
from collections.abc import Mapping

import pytest

from pipeline import quality as q
from pipeline.configfile import ConfigError, build
from pipeline.quality import Reason

# --- sample documents -----------------------------------------------------------------

EN_ARTICLE = (
    "\n\n".join(
        (
            "How Small Towns Are Rethinking Public Libraries",
            "When the old library on Main Street closed its doors for renovation, few residents "
            "expected the building to change as much as it did. The reading room is still there, but "
            "it now shares space with a repair workshop, a seed exchange and a small recording studio "
            "that teenagers book weeks in advance.",
            "The idea came from a survey that the town council sent to every household last spring. "
            "Most people said they valued quiet places to read, yet many also wanted somewhere to "
            "learn practical skills without paying for a course. Librarians noticed that the two "
            "wishes were not in conflict, because both are about sharing knowledge with neighbours.",
            "Funding was the hardest part. The council could cover only a third of the cost, so "
            "volunteers applied for regional grants and organised a series of concerts in the town "
            "square. A local carpenter donated shelving made from reclaimed timber, and a retired "
            "engineer offered to teach evening classes on basic electronics.",
            "Visitors today can borrow a drill as easily as a novel. The tool collection has grown to "
            "more than two hundred items, each tagged with a barcode and a short note explaining how "
            "to use it safely. Staff say that people who come in for a ladder often leave with a book "
            "as well.",
            "Critics worried that the changes would push aside the traditional role of the library. "
            "So far the numbers suggest otherwise: loans of printed books rose by twelve percent in "
            "the first year, and children's story hours are fully booked every Saturday morning.",
        )
    )
    + "\n"
)

DE_ARTICLE = (
    "\n\n".join(
        (
            "Die Stadtbibliothek im Wandel",
            "Als die alte Bibliothek am Marktplatz für eine Renovierung geschlossen wurde, rechneten "
            "nur wenige Bewohner mit großen Veränderungen. Der Lesesaal ist geblieben, aber er teilt "
            "sich den Raum nun mit einer Reparaturwerkstatt und einem kleinen Tonstudio, das von "
            "Jugendlichen oft Wochen im Voraus gebucht wird.",
            "Die Idee stammt aus einer Umfrage, die der Gemeinderat im vergangenen Frühjahr an alle "
            "Haushalte verschickt hatte. Viele Menschen wünschten sich ruhige Orte zum Lesen, aber "
            "auch einen Platz, an dem sie praktische Fähigkeiten lernen können. Für die "
            "Bibliothekarinnen war das kein Widerspruch, denn in beiden Fällen geht es darum, Wissen "
            "mit den Nachbarn zu teilen.",
            "Die Finanzierung war der schwierigste Teil. Der Gemeinderat konnte nur ein Drittel der "
            "Kosten übernehmen, deshalb bewarben sich Freiwillige um regionale Fördermittel und "
            "organisierten Konzerte auf dem Marktplatz. Heute kann man eine Bohrmaschine genauso "
            "leicht ausleihen wie einen Roman, und wer wegen einer Leiter kommt, geht nicht selten "
            "auch mit einem Buch nach Hause.",
        )
    )
    + "\n"
)

JA_ARTICLE = (
    "\n\n".join(
        (
            "東京の小さな図書館が、地域の人々の集まる場所として注目されている。改装のために一"
            "年間閉館していたが、今年の春に新しい姿で再び開館した。",
            "館内には従来の閲覧室に加えて、工具を貸し出すコーナーや、子どもたちが自由に絵を描"
            "ける部屋が設けられた。利用者の多くは、本を借りに来たついでに工具の使い方を職員に"
            "尋ねていく。",
            "館長によると、この取り組みのきっかけは住民への聞き取り調査だったという。静かに読"
            "書できる場所を望む声と同時に、実用的な技術を気軽に学びたいという要望が多く寄せら"
            "れた。",
            "開館から半年で、貸し出された本の数は前年より一割以上増えた。週末の読み聞かせ会は"
            "いつも満員で、近隣の町からも見学者が訪れている。",
        )
    )
    + "\n"
)

ZH_ARTICLE = (
    "\n\n".join(
        (
            "城市边缘的一座老图书馆最近完成了改造，重新向市民开放。除了传统的阅览室以外，馆里"
            "还新增了工具借用区和一个供青少年使用的录音室。",
            "这个想法来自去年春天的一次社区调查。许多居民表示，他们既需要安静的读书环境，也希"
            "望有机会免费学习实用的技能。馆长认为这两种需求并不矛盾，因为它们都与分享知识有关"
            "。",
            "改造资金主要来自地方政府和志愿者组织的募捐活动。一位退休的工程师每周在这里开设电"
            "子入门课程，吸引了不少年轻人参加。",
            "开放半年以来，图书的借阅量比前一年增长了百分之十二，周末的儿童故事会也总是座无虚"
            "席。",
        )
    )
    + "\n"
)

DEFAULT = q.QualityConfig()
GQ = q.GopherQualityConfig()
REP = q.GopherRepetitionConfig()
FW = q.FineWebConfig()
C4 = q.C4Config()


class Counts:
    """A `count` callback that records totals."""

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self.calls: list[tuple[str, int]] = []

    def __call__(self, name: str, increment: int) -> None:
        self.calls.append((name, increment))
        self.totals[name] += increment


def unique_words(n: int, length: int = 4, start: int = 0) -> list[str]:
    """n distinct lower-case words of `length` letters (no stop words, no repeats)."""
    letters = "bcdfghjklmnpqrstvwxz"
    out = []
    for i in range(start, start + n):
        word = ""
        for _ in range(length):
            i, r = divmod(i, len(letters))
            word += letters[r]
        out.append(word)
    return out


def prose(n: int, extra: tuple[str, ...] = ("the", "and")) -> str:
    """A one-line text of exactly n words that passes every Gopher quality rule."""
    words = list(extra) + unique_words(n - len(extra), 5)
    return " ".join(words) + "."


# --- split_words ----------------------------------------------------------------------


def test_split_words_strips_surrounding_punctuation_only() -> None:
    assert q.split_words('"Hello," she said (twice)... don\'t e-mail 3.14 — ok!') == [
        "Hello",
        "she",
        "said",
        "twice",
        "don't",
        "e-mail",
        "3.14",
        "ok",
    ]


def test_split_words_counts_each_cjk_and_thai_character() -> None:
    assert q.split_words("東京は大きい。") == ["東", "京", "は", "大", "き", "い"]
    assert q.split_words("Tokyo日本 (2024年)「カタカナ」") == ["Tokyo", "日", "本", "2024", "年", "カ", "タ", "カ", "ナ"]
    # Thai combining marks stay on their base letter: ที่ is one word, not three.
    assert q.split_words("ที่") == ["ที่"]


def test_split_words_keeps_non_latin_words_whole() -> None:
    words = ["Ça", "va", "Привет", "мир", "안녕하세요", "세계", "हिंदी"]
    assert q.split_words("«Ça va?» Привет, мир! 안녕하세요 세계 हिंदी.") == words


def test_split_words_ascii_fast_path_matches_general_path() -> None:
    rng = random.Random(7)
    alphabet = "ab1 .,-'\"#()!?\n\t_*/:;"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        assert q.split_words(text) == q._WORD_RE.findall(text), text


# --- Gopher quality -------------------------------------------------------------------


def test_word_count_bounds_are_inclusive() -> None:
    assert q.gopher_quality_reason(prose(50), "en", GQ) is None
    assert q.gopher_quality_reason(prose(49), "en", GQ) == Reason.GOPHER_TOO_FEW_WORDS
    small = dataclasses.replace(GQ, max_words=60)
    assert q.gopher_quality_reason(prose(60), "en", small) is None
    assert q.gopher_quality_reason(prose(61), "en", small) == Reason.GOPHER_TOO_MANY_WORDS


def test_mean_word_length_bounds() -> None:
    three = " ".join(["the", "and"] + ["abc"] * 48)  # mean exactly 3
    assert q.gopher_quality_reason(three, "en", GQ) is None
    short = " ".join(["the", "and"] + ["ab"] * 48)
    assert q.gopher_quality_reason(short, "en", GQ) == Reason.GOPHER_MEAN_WORD_TOO_SHORT
    ten = " ".join(["the", "and"] + ["abcdefghij"] * 47 + ["x" * 24])  # mean exactly 10
    assert q.gopher_quality_reason(ten, "en", GQ) is None
    long = " ".join(["the", "and"] + ["abcdefghijk"] * 48)
    assert q.gopher_quality_reason(long, "en", GQ) == Reason.GOPHER_MEAN_WORD_TOO_LONG


def test_mean_word_length_skipped_for_languages_without_spaces() -> None:
    short = " ".join(["ab"] * 60)
    assert q.gopher_quality_reason(short, "ja", GQ) is None
    assert q.gopher_quality_reason(short, "zh-Hans", GQ) is None
    assert q.gopher_quality_reason(short, None, GQ) == Reason.GOPHER_MEAN_WORD_TOO_SHORT


@pytest.mark.parametrize("symbol", ["#", "...", "…"])
def test_symbol_word_ratio_at_most_one_tenth(symbol: str) -> None:
    base = prose(50)
    assert q.gopher_quality_reason(f"{symbol} " * 5 + base, "en", GQ) is None  # 5 / 50
    assert q.gopher_quality_reason(f"{symbol} " * 6 + base, "en", GQ) == Reason.GOPHER_SYMBOL_WORD_RATIO


def test_symbol_ratio_is_per_symbol_as_in_the_paper() -> None:
    # 5 hashes and 5 ellipses: each ratio is 0.1, so neither exceeds the limit.
    assert q.gopher_quality_reason("# " * 5 + "… " * 5 + prose(50), "en", GQ) is None


def _lines_doc(marked: int, total: int, prefix: str = "", suffix: str = ".") -> str:
    words = iter(unique_words(total * 10, 5))
    lines = []
    for i in range(total):
        body = " ".join(next(words) for _ in range(10))
        if i == 0:
            body = "the and " + body
        lines.append(f"{prefix}{body}{suffix}" if i < marked else body + ".")
    return "\n".join(lines)


def test_bullet_lines_at_most_ninety_percent() -> None:
    assert q.gopher_quality_reason(_lines_doc(9, 10, prefix="• "), "en", GQ) is None
    assert q.gopher_quality_reason(_lines_doc(10, 10, prefix="• "), "en", GQ) == Reason.GOPHER_BULLET_LINES
    assert q.gopher_quality_reason(_lines_doc(10, 10, prefix="- "), "en", GQ) == Reason.GOPHER_BULLET_LINES


def test_ellipsis_lines_at_most_thirty_percent() -> None:
    assert q.gopher_quality_reason(_lines_doc(3, 10, suffix="..."), "en", GQ) is None
    assert q.gopher_quality_reason(_lines_doc(4, 10, suffix="…"), "en", GQ) == Reason.GOPHER_ELLIPSIS_LINES


def test_alpha_words_at_least_eighty_percent() -> None:
    words = ["the", "and"] + unique_words(38, 5)
    assert q.gopher_quality_reason(" ".join(words + ["1,000"] * 10), "en", GQ) is None  # 40 / 50
    too_few = " ".join(words + ["12:30"] * 11)
    assert q.gopher_quality_reason(too_few, "en", GQ) == Reason.GOPHER_TOO_FEW_ALPHA_WORDS


def test_stop_words_need_two_distinct() -> None:
    assert q.gopher_quality_reason(prose(50, ("The", "WITH")), "en", GQ) is None
    assert q.gopher_quality_reason(prose(50, ("the", "the")), "en", GQ) == Reason.GOPHER_TOO_FEW_STOP_WORDS
    assert q.gopher_quality_reason(prose(50, ("the",)), "en-US", GQ) == Reason.GOPHER_TOO_FEW_STOP_WORDS


def test_stop_words_only_for_languages_with_a_list() -> None:
    no_stop = prose(50, ())
    assert q.gopher_quality_reason(no_stop, "en", GQ) == Reason.GOPHER_TOO_FEW_STOP_WORDS
    assert q.gopher_quality_reason(no_stop, "ru", GQ) is None
    assert q.gopher_quality_reason(no_stop, None, GQ) is None


def test_language_labels_with_script_subtags() -> None:
    # GlotLID/OpenLID style labels: ISO 639-3 code plus script.
    assert q.gopher_quality_reason(prose(50, ()), "eng_Latn", GQ) == Reason.GOPHER_TOO_FEW_STOP_WORDS
    short = " ".join(["ab"] * 60)
    assert q.gopher_quality_reason(short, "yue_Hani", GQ) is None
    assert q.gopher_quality_reason(short, "kor_Hang", GQ) == Reason.GOPHER_MEAN_WORD_TOO_SHORT


def test_german_uses_german_stop_words() -> None:
    assert q.gopher_quality_reason(DE_ARTICLE, "de", GQ) is None
    # None of the English Gopher stop words occurs in the German article.
    assert q.gopher_quality_reason(DE_ARTICLE, "en", GQ) == Reason.GOPHER_TOO_FEW_STOP_WORDS
    keywords = "Bibliothek Werkstatt Tonstudio Umfrage Gemeinderat Haushalte Fördermittel Konzerte " * 7
    assert q.gopher_quality_reason(keywords, "de", GQ) == Reason.GOPHER_TOO_FEW_STOP_WORDS


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (prose(49), Reason.GOPHER_TOO_FEW_WORDS),
        (" ".join(["the", "and"] + ["ab"] * 48), Reason.GOPHER_MEAN_WORD_TOO_SHORT),
        ("# " * 6 + prose(50), Reason.GOPHER_SYMBOL_WORD_RATIO),
        (_lines_doc(10, 10, prefix="* "), Reason.GOPHER_BULLET_LINES),
        (_lines_doc(4, 10, suffix="..."), Reason.GOPHER_ELLIPSIS_LINES),
        (prose(50, ("the",)), Reason.GOPHER_TOO_FEW_STOP_WORDS),
    ],
)
def test_each_gopher_quality_rule_can_be_switched_off(text: str, reason: str) -> None:
    assert q.gopher_quality_reason(text, "en", GQ) == reason
    assert q.gopher_quality_reason(text, "en", dataclasses.replace(GQ, disabled_rules=(reason,))) is None
    assert q.gopher_quality_reason(text, "en", dataclasses.replace(GQ, enabled=False)) is None


# --- Gopher repetition ----------------------------------------------------------------

# Only one repetition rule at a time, so each can be probed at its boundary.
_REP_RULES = tuple(r for r in q.ALL_REASONS if r.startswith("gopher_repetition."))


def only(rule: str, **changes: typing.Any) -> q.GopherRepetitionConfig:
    return dataclasses.replace(REP, disabled_rules=tuple(r for r in _REP_RULES if r != rule), **changes)


def test_duplicate_line_fraction() -> None:
    lines = [" ".join(unique_words(5, start=10 * i)) for i in range(7)]
    cfg = only(Reason.REPETITION_DUPLICATE_LINES)
    three, four = "\n".join(lines + [lines[0]] * 3), "\n".join(lines + [lines[0]] * 4)
    assert q.gopher_repetition_reason(three, cfg) is None  # 3 / 10
    assert q.gopher_repetition_reason(four, cfg) == Reason.REPETITION_DUPLICATE_LINES
    # With all rules on, the line fraction is checked first.
    assert q.gopher_repetition_reason(four, REP) == Reason.REPETITION_DUPLICATE_LINES


def test_duplicate_paragraph_fraction_counts_blank_line_blocks() -> None:
    long_paragraphs = [
        "\n".join(" ".join(unique_words(8, start=100 * p + 10 * i)) for i in range(5)) for p in range(3)
    ]
    short = "tiny line here"
    two_dups = "\n\n".join([*long_paragraphs, short, short, short])  # 2 of 6 paragraphs duplicate
    one_dup = "\n\n".join([*long_paragraphs, short, short])  # 1 of 5
    assert q.gopher_repetition_reason(one_dup, REP) is None
    assert q.gopher_repetition_reason(two_dups, REP) == Reason.REPETITION_DUPLICATE_PARAGRAPHS


def test_duplicate_line_characters() -> None:
    shorts = [" ".join(unique_words(2, start=10 * i)) for i in range(10)]  # 9 characters each
    long = " ".join(unique_words(5, 4, start=1000))  # 24 characters
    cfg = only(Reason.REPETITION_DUPLICATE_LINE_CHARS)
    # 24 / (90 + 24 + 24) = 0.17 is kept; 24 / (54 + 48) = 0.24 is not.
    assert q.gopher_repetition_reason("\n".join([*shorts, long, long]), cfg) is None
    too_many = "\n".join([*shorts[:6], long, long])
    assert q.gopher_repetition_reason(too_many, cfg) == Reason.REPETITION_DUPLICATE_LINE_CHARS


def test_duplicate_paragraph_characters() -> None:
    paragraphs = [" ".join(unique_words(6, start=10 * i)) for i in range(8)]
    big = "\n".join(" ".join(unique_words(6, start=500 + 10 * i)) for i in range(3))
    text = "\n\n".join([*paragraphs, big, big])
    cfg = only(Reason.REPETITION_DUPLICATE_PARAGRAPH_CHARS)
    assert q.gopher_repetition_reason(text, cfg) == Reason.REPETITION_DUPLICATE_PARAGRAPH_CHARS
    looser = only(Reason.REPETITION_DUPLICATE_PARAGRAPH_CHARS, max_duplicate_paragraph_char_fraction=0.3)
    assert q.gopher_repetition_reason(text, looser) is None


def _with_repeated_phrase(phrase: list[str], times: int, total_words: int) -> str:
    """Unique 4-letter words with `phrase` inserted `times` times, each time apart."""
    filler = iter(unique_words(total_words, start=5000))
    words: list[str] = []
    for _ in range(times):
        words += phrase + [next(filler) for _ in range(3)]
    words += [next(filler) for _ in range(total_words - len(words))]
    return " ".join(words)


def test_top_bigram_character_fraction() -> None:
    pair = ["sunn", "dayz"]
    # 100 words of 4 characters; 10 pairs cover exactly 20%, 11 pairs 22%.
    assert q.gopher_repetition_reason(_with_repeated_phrase(pair, 10, 100), REP) is None
    assert q.gopher_repetition_reason(_with_repeated_phrase(pair, 11, 100), REP) == Reason.REPETITION_TOP_NGRAM


def test_duplicate_five_gram_character_fraction() -> None:
    phrase = ["abcd", "efgh", "ijkl", "mnop", "qrst"]
    # 300 words of 4 characters = 1200; each repeat after the first adds 20 characters.
    assert q.gopher_repetition_reason(_with_repeated_phrase(phrase, 10, 300), REP) is None  # 180 / 1200
    too_many = _with_repeated_phrase(phrase, 11, 300)  # 200 / 1200
    assert q.gopher_repetition_reason(too_many, REP) == Reason.REPETITION_DUPLICATE_NGRAMS


def test_overlapping_duplicate_ngrams_are_not_double_counted() -> None:
    words = ["abcd"] * 8 + unique_words(92, start=7000)
    text = " ".join(words)
    # The 5-gram "abcd x5" starts at positions 0..3; the repeats at 1..3 cover words 1..7:
    # 7 words * 4 = 28 of 400 characters, not 3 * 20 = 60.
    at = only(Reason.REPETITION_DUPLICATE_NGRAMS, duplicate_ngram_max_char_fractions=((5, 0.07),))
    below = only(Reason.REPETITION_DUPLICATE_NGRAMS, duplicate_ngram_max_char_fractions=((5, 0.069),))
    assert q.gopher_repetition_reason(text, at) is None
    assert q.gopher_repetition_reason(text, below) == Reason.REPETITION_DUPLICATE_NGRAMS


def _naive_top(words: list[str], n: int) -> float:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    gram, freq = Counter(grams).most_common(1)[0]
    return 0.0 if freq < 2 else freq * sum(map(len, gram)) / sum(map(len, words))


def _naive_duplicate(words: list[str], n: int) -> float:
    covered = [False] * len(words)
    seen = set()
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        if gram in seen:
            covered[i : i + n] = [True] * n
        seen.add(gram)
    return sum(len(w) for w, c in zip(words, covered) if c) / sum(map(len, words))


def test_ngram_fractions_match_the_plain_definitions() -> None:
    """The optimised n-gram pass decides exactly like the plain O(n * words) definition."""
    rng = random.Random(3)
    vocabulary = ["a", "bb", "ccc", "dddd", "eeeee", "the", "of"]
    for trial in range(150):
        words = [rng.choice(vocabulary[: rng.randrange(2, 8)]) for _ in range(rng.randrange(1, 60))]
        text = " ".join(words)
        n = rng.randrange(1, 8)
        for naive, field_name, reason in (
            (_naive_top(words, n), "top_ngram_max_char_fractions", Reason.REPETITION_TOP_NGRAM),
            (_naive_duplicate(words, n), "duplicate_ngram_max_char_fractions", Reason.REPETITION_DUPLICATE_NGRAMS),
        ):
            at = only(reason, **{field_name: ((n, naive),)})
            assert q.gopher_repetition_reason(text, at) is None, (trial, text, n)
            if naive > 0:
                below = only(reason, **{field_name: ((n, naive * 0.999),)})
                assert q.gopher_repetition_reason(text, below) == reason, (trial, text, n)


def test_each_repetition_rule_can_be_switched_off() -> None:
    text = "\n".join(["same line again"] * 10)
    assert q.gopher_repetition_reason(text, REP) == Reason.REPETITION_DUPLICATE_LINES
    assert q.gopher_repetition_reason(text, dataclasses.replace(REP, disabled_rules=_REP_RULES)) is None
    assert q.gopher_repetition_reason(text, dataclasses.replace(REP, enabled=False)) is None


# --- C4 -------------------------------------------------------------------------------

C4_GOOD = [
    "The museum opened a new gallery this summer.",
    "It tells the story of the fishing fleet through letters and photographs.",
    "Curators spent two years interviewing the families of former crews.",
    "Many of those voices can now be heard beside the exhibits.",
    "Entry is free on the first Sunday of every month!",
]


def test_c4_rewrites_lines_and_counts_each_removal() -> None:
    text = "\n".join(
        [
            "Harbour Museum News",  # no terminal punctuation
            C4_GOOD[0],
            "Read more.",  # two words
            "Please enable JavaScript to view the gallery map.",
            C4_GOOD[1],
            "This site uses cookies to improve your experience.",
            "See our Privacy Policy for details.",
            "",
            C4_GOOD[2],
            "   " + C4_GOOD[3] + "   ",
            "",
            "",
            C4_GOOD[4],
            "Share this",
        ]
    )
    counts = Counts()
    result = q.c4_filter(text, C4, counts)
    assert result == q.QualityResult(
        f"{C4_GOOD[0]}\n{C4_GOOD[1]}\n\n{C4_GOOD[2]}\n{C4_GOOD[3]}\n\n{C4_GOOD[4]}", None
    )
    assert counts.totals == {
        "c4.line_no_terminal_punct": 2,
        "c4.line_too_few_words": 1,
        "c4.line_javascript": 1,
        "c4.line_policy": 2,
    }
    assert len(counts.calls) == 4  # one call per kind and document
    assert set(counts.totals) <= set(q.ALL_LINE_REMOVALS)


def test_c4_kept_line_endings() -> None:
    keep = [
        'He shouted "stop."',
        "She said: “Wait for me!”",
        "Is this the final answer?",
        "They called it 'a bargain.'",
        "The quote ends here\"",
        "東京は今日も晴れです。",
        "「今日は晴れです。」",
        "本当にそうですか？",
    ]
    drop = ["See the chart (below)", "A line ending with a colon:", "Trailing comma here,"]
    result = q.c4_filter("\n".join(keep + drop), dataclasses.replace(C4, min_sentences=0))
    assert result.text.split("\n") == keep


def test_c4_short_lines_count_cjk_characters_as_words() -> None:
    counts = Counts()
    result = q.c4_filter("はい。\n東京は大きい。\n" + "\n".join(C4_GOOD), C4, counts)
    assert result.text.split("\n")[0] == "東京は大きい。"
    assert counts.totals == {"c4.line_too_few_words": 1}


@pytest.mark.parametrize(
    ("switch", "line", "counter"),
    [
        ("drop_lines_without_terminal_punctuation", "A heading without an end", "c4.line_no_terminal_punct"),
        ("drop_short_lines", "Read more.", "c4.line_too_few_words"),
        ("drop_javascript_lines", "Your browser has JavaScript disabled.", "c4.line_javascript"),
        ("drop_policy_lines", "By continuing you accept our terms of use.", "c4.line_policy"),
    ],
)
def test_each_c4_line_rule_can_be_switched_off(switch: str, line: str, counter: str) -> None:
    text = "\n".join([line, *C4_GOOD])
    counts = Counts()
    assert q.c4_filter(text, C4, counts).text == "\n".join(C4_GOOD)
    assert counts.calls == [(counter, 1)]
    counts = Counts()
    assert q.c4_filter(text, dataclasses.replace(C4, **{switch: False}), counts).text == text
    assert counts.calls == []


@pytest.mark.parametrize(
    ("extra", "switch", "reason"),
    [
        ("Lorem Ipsum dolor sit amet.", "drop_lorem_ipsum", Reason.C4_LOREM_IPSUM),
        ("The function body is { return 1; }.", "drop_curly_brace", Reason.C4_CURLY_BRACE),
    ],
)
def test_c4_document_rules(extra: str, switch: str, reason: str) -> None:
    text = "\n".join([*C4_GOOD, extra])
    assert q.c4_filter(text, C4).reason == reason
    assert q.c4_filter(text, dataclasses.replace(C4, **{switch: False})).reason is None


def test_c4_curly_brace_anywhere_drops_even_on_removed_lines() -> None:
    assert q.c4_filter("\n".join([*C4_GOOD, "var x = {}"]), C4).reason == Reason.C4_CURLY_BRACE


def test_c4_min_sentences_boundary() -> None:
    assert q.c4_filter("\n".join(C4_GOOD), C4).reason is None
    assert q.c4_filter("\n".join(C4_GOOD[:4]), C4).reason == Reason.C4_TOO_FEW_SENTENCES
    # Sentences, not lines: one line with five sentences is enough; "3.14" ends none.
    one_line = "It rained. We stayed in. Pi is 3.14 or so. Tea was made! Was it good? Yes."
    assert q.c4_filter(one_line, C4).reason is None
    three = dataclasses.replace(C4, min_sentences=3)
    assert q.c4_filter("It rained. Pi is 3.14 today. We stayed in.", three).reason is None
    assert q.c4_filter("It rained. Pi is 3.14 today.", three).reason == Reason.C4_TOO_FEW_SENTENCES
    unchecked = dataclasses.replace(C4, drop_few_sentences=False)
    assert q.c4_filter("It rained all day. We stayed in.", unchecked).reason is None
    # Japanese sentences end in 。 without a following space.
    assert q.c4_filter("今日は晴れです。明日は雨です。風が強いです。寒いです。暑いです。", C4).reason is None


def test_c4_nothing_left() -> None:
    counts = Counts()
    result = q.c4_filter("Home\nAbout us\nContact", C4, counts)
    assert result.reason == Reason.C4_NO_LINES_LEFT
    assert counts.totals == {"c4.line_no_terminal_punct": 3}
    assert q.c4_filter("", C4).reason == Reason.C4_NO_LINES_LEFT


def test_c4_disabled_leaves_text_untouched() -> None:
    text = "Home\n{x}\nlorem ipsum"
    assert q.c4_filter(text, dataclasses.replace(C4, enabled=False)) == q.QualityResult(text, None)


# --- FineWeb --------------------------------------------------------------------------


def _fw_lines(count: int, start: int = 0) -> list[str]:
    return [" ".join(unique_words(8, start=start + 10 * i)) for i in range(count)]  # 39 characters


def test_fineweb_terminal_punctuation_fraction() -> None:
    lines = _fw_lines(25)
    three = [line + "." for line in lines[:3]] + lines[3:]  # 3 / 25 = 0.12
    two = [line + "!" for line in lines[:2]] + lines[2:]
    assert q.fineweb_reason("\n".join(three), FW) is None
    assert q.fineweb_reason("\n".join(two), FW) == Reason.FINEWEB_FEW_TERMINAL_PUNCT_LINES
    quoted = [line + "?”" for line in lines[:3]] + lines[3:]
    assert q.fineweb_reason("\n".join(quoted), FW) is None


def test_fineweb_duplicate_line_characters() -> None:
    lines = [line + "." for line in _fw_lines(10)]
    assert q.fineweb_reason("\n".join([*lines, lines[0]]), FW) is None  # 40 / 440
    too_many = "\n".join([*lines[:8], lines[0]])  # 40 / 360
    assert q.fineweb_reason(too_many, FW) == Reason.FINEWEB_DUPLICATE_LINE_CHARS


def test_fineweb_short_lines() -> None:
    long = [line + "." for line in _fw_lines(10)]
    short = [f"Item {n} on the list." for n in range(10)]  # < 30 characters
    assert q.fineweb_reason("\n".join(long[:1] + short[:2]), FW) is None  # 2 / 3 = 0.667
    assert q.fineweb_reason("\n".join(long[:3] + short[:7]), FW) == Reason.FINEWEB_SHORT_LINES  # 0.7
    exactly_30 = "x" * 29 + "."
    assert q.fineweb_reason("\n".join([exactly_30] * 1 + long[:2]), FW) is None
    assert q.fineweb_reason("\n".join([c * 28 + "." for c in "xyz"]), FW) == Reason.FINEWEB_SHORT_LINES


def test_each_fineweb_rule_can_be_switched_off() -> None:
    text = "\n".join(_fw_lines(10))
    assert q.fineweb_reason(text, FW) == Reason.FINEWEB_FEW_TERMINAL_PUNCT_LINES
    off = dataclasses.replace(FW, disabled_rules=(Reason.FINEWEB_FEW_TERMINAL_PUNCT_LINES,))
    assert q.fineweb_reason(text, off) is None
    assert q.fineweb_reason(text, dataclasses.replace(FW, enabled=False)) is None


# --- filter_quality -------------------------------------------------------------------


def test_english_article_passes_and_loses_only_its_title() -> None:
    counts = Counts()
    result = q.filter_quality(EN_ARTICLE, "en", DEFAULT, counts)
    assert result.reason is None
    assert result.text == EN_ARTICLE.split("\n", 2)[2].strip()
    assert counts.calls == [("c4.line_no_terminal_punct", 1)]


def test_german_article_passes_with_german_stop_words() -> None:
    assert q.filter_quality(DE_ARTICLE, "de", DEFAULT).reason is None
    assert q.filter_quality(DE_ARTICLE, "de-AT", DEFAULT).reason is None
    assert q.filter_quality(DE_ARTICLE, "en", DEFAULT).reason == Reason.GOPHER_TOO_FEW_STOP_WORDS


@pytest.mark.parametrize(
    ("text", "language"), [(JA_ARTICLE, "ja"), (JA_ARTICLE, "jpn_Jpan"), (ZH_ARTICLE, "zh"), (ZH_ARTICLE, "zh_CN")]
)
def test_cjk_articles_pass(text: str, language: str) -> None:
    result = q.filter_quality(text, language, DEFAULT)
    assert result.reason is None
    assert result.text == text.strip()
    assert len(q.split_words(text)) > 150


def test_unknown_language_is_treated_as_space_separated() -> None:
    # Callers should pass the detected language: without it, CJK text looks like 1-letter words.
    assert q.filter_quality(JA_ARTICLE, None, DEFAULT).reason == Reason.GOPHER_MEAN_WORD_TOO_SHORT


def test_families_run_in_order_c4_repetition_quality_fineweb() -> None:
    doubled = EN_ARTICLE + "\n" + EN_ARTICLE.split("\n", 2)[2]
    assert q.filter_quality(doubled, "en", DEFAULT).reason == Reason.REPETITION_DUPLICATE_LINES
    # Repeated and missing stop words: repetition is reported, it runs first.
    assert q.filter_quality(DE_ARTICLE * 2, "en", DEFAULT).reason == Reason.REPETITION_DUPLICATE_LINES
    # A C4 document rule wins over everything else.
    assert q.filter_quality(doubled + "\n{", "en", DEFAULT).reason == Reason.C4_CURLY_BRACE


def test_gopher_quality_sees_the_c4_rewritten_text() -> None:
    # Fifty bullet lines without end punctuation: C4 removes them all.
    bullets = "\n".join(f"• item number {n} in the list" for n in range(50))
    assert q.filter_quality(bullets + "\n" + EN_ARTICLE, "en", DEFAULT).reason is None
    quality_only = dataclasses.replace(
        DEFAULT,
        c4=dataclasses.replace(C4, enabled=False),
        gopher_repetition=dataclasses.replace(REP, enabled=False),
    )
    assert q.filter_quality(bullets, "en", quality_only).reason == Reason.GOPHER_BULLET_LINES


def test_fineweb_runs_last() -> None:
    no_c4 = dataclasses.replace(DEFAULT, c4=dataclasses.replace(C4, enabled=False))
    menu = "\n".join(_fw_lines(60)) + "\nthe and of to."
    assert q.filter_quality(menu, "en", no_c4).reason == Reason.FINEWEB_FEW_TERMINAL_PUNCT_LINES


def test_everything_disabled_keeps_anything() -> None:
    off = q.QualityConfig(
        gopher_quality=q.GopherQualityConfig(enabled=False),
        gopher_repetition=q.GopherRepetitionConfig(enabled=False),
        c4=q.C4Config(enabled=False),
        fineweb=q.FineWebConfig(enabled=False),
    )
    assert q.filter_quality("{ lorem ipsum }", None, off) == q.QualityResult("{ lorem ipsum }", None)


# --- config and reasons ---------------------------------------------------------------


def test_reason_names() -> None:
    assert len(set(q.ALL_REASONS)) == len(q.ALL_REASONS) == 22
    families = {"c4", "gopher_repetition", "gopher_quality", "fineweb"}
    for reason in (*q.ALL_REASONS, *q.ALL_LINE_REMOVALS):
        family, _, rule = reason.partition(".")
        assert family in families and re.fullmatch(r"[a-z0-9_]+", rule), reason


def test_defaults_are_the_published_values() -> None:
    assert (GQ.min_words, GQ.max_words) == (50, 100_000)
    assert (GQ.min_mean_word_length, GQ.max_mean_word_length) == (3, 10)
    assert GQ.max_symbol_word_ratio == 0.1
    assert (GQ.max_bullet_line_fraction, GQ.max_ellipsis_line_fraction) == (0.9, 0.3)
    assert (GQ.min_alpha_word_fraction, GQ.min_stop_words) == (0.8, 2)
    assert GQ.stop_words["en"] == ("the", "be", "to", "of", "and", "that", "have", "with")
    assert {"de", "fr", "es", "it", "pt", "nl"} <= set(GQ.stop_words)
    assert (REP.max_duplicate_line_fraction, REP.max_duplicate_paragraph_fraction) == (0.3, 0.3)
    assert (REP.max_duplicate_line_char_fraction, REP.max_duplicate_paragraph_char_fraction) == (0.2, 0.2)
    assert REP.top_ngram_max_char_fractions == ((2, 0.2), (3, 0.18), (4, 0.16))
    assert REP.duplicate_ngram_max_char_fractions == (
        (5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.1)
    )
    assert (C4.min_words_per_line, C4.min_sentences) == (3, 5)
    assert (FW.min_terminal_punctuation_line_fraction, FW.max_duplicate_line_char_fraction) == (0.12, 0.1)
    assert (FW.short_line_length, FW.max_short_line_fraction) == (30, 0.67)


_ALLOWED_TYPES = {
    bool,
    int,
    float,
    str,
    tuple[str, ...],
    tuple[tuple[int, float], ...],
    Mapping[str, tuple[str, ...]],
}


@pytest.mark.parametrize(
    "cls", [q.GopherQualityConfig, q.GopherRepetitionConfig, q.C4Config, q.FineWebConfig, q.QualityConfig]
)
def test_config_fields_are_loader_friendly(cls: type) -> None:
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    assert params.frozen
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        assert f.kw_only
        assert hints[f.name] in _ALLOWED_TYPES or dataclasses.is_dataclass(hints[f.name]), f.name


def test_config_built_from_a_job_table() -> None:
    table = {
        "gopher_quality": {"min_words": 20, "stop_words": {"sv": ["och", "att", "det"]}},
        "gopher_repetition": {
            "top_ngram_max_char_fractions": [[2, 0.25]],
            "disabled_rules": ["gopher_repetition.duplicate_lines"],
        },
        "c4": {"min_sentences": 3, "drop_curly_brace": False},
        "fineweb": {"enabled": False},
    }
    config = build(q.QualityConfig, table, "quality")
    assert config.gopher_quality.stop_words["sv"] == ("och", "att", "det")
    assert isinstance(config.gopher_quality.stop_words, types.MappingProxyType)
    assert config.gopher_repetition.top_ngram_max_char_fractions == ((2, 0.25),)
    assert config.c4.min_sentences == 3 and not config.fineweb.enabled
    with pytest.raises(ConfigError, match="disabled_rules"):
        build(q.QualityConfig, {"fineweb": {"disabled_rules": ["fineweb.nope"]}}, "quality")


def test_invalid_configs_are_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown rule 'gopher_quality.too_few_words'"):
        q.FineWebConfig(disabled_rules=(Reason.GOPHER_TOO_FEW_WORDS,))
    with pytest.raises(ConfigError, match="min_words"):
        q.GopherQualityConfig(min_words=10, max_words=5)
    with pytest.raises(ConfigError, match="n-gram"):
        q.GopherRepetitionConfig(top_ngram_max_char_fractions=((0, 0.1),))


def test_config_pickles_and_hashes() -> None:
    config = q.QualityConfig(gopher_quality=q.GopherQualityConfig(stop_words={"sv": ("och", "att")}))
    clone = pickle.loads(pickle.dumps(config))
    assert clone == config
    assert isinstance(clone.gopher_quality.stop_words, types.MappingProxyType)
    assert hash(clone) == hash(config)


def test_ngram_repetition_rules_skip_languages_written_without_spaces():
    from pipeline.quality import GopherRepetitionConfig, Reason, gopher_repetition_reason

    # Distinct sentences that share common character runs, as Japanese prose does.
    text = "\n".join(f"これは{i}番目の文です。私たちはこの問題について考えることができます。" for i in range(40))
    config = GopherRepetitionConfig()
    assert gopher_repetition_reason(text, config, language=None) in (
        Reason.REPETITION_DUPLICATE_NGRAMS, Reason.REPETITION_TOP_NGRAM)
    assert gopher_repetition_reason(text, config, language="ja") is None
    assert gopher_repetition_reason(text, config, language="jpn_Jpan") is None

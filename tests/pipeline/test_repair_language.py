import unicodedata

import pytest

from pipeline.language import (
    LanguageConfig, LanguageIdentifier, LanguageReason, bundled_model_path, language_verdict,
)
from pipeline.repair import RepairConfig, repair_text


def test_repair_fixes_mojibake_and_normalises_to_nfc():
    broken = "The cafÃ© served crÃ¨me brÃ»lÃ©e"
    assert repair_text(broken, RepairConfig()) == "The café served crème brûlée"
    decomposed = unicodedata.normalize("NFD", "café")
    assert repair_text(decomposed, RepairConfig()) == "café"
    assert unicodedata.is_normalized("NFC", repair_text("e\u0301 and a\u0308", RepairConfig()))


def test_repair_can_be_limited_to_normalisation():
    broken = "cafÃ©"
    assert repair_text(broken, RepairConfig(fix_encoding=False)) == broken
    assert repair_text("ﬁ", RepairConfig(normalization="NFKC")) == "fi"


@pytest.fixture(scope="module")
def identifier():
    return LanguageIdentifier(bundled_model_path())


@pytest.mark.parametrize(
    "text, label",
    [
        ("The quick brown fox jumps over the lazy dog while the farmer watches from the field.", "en"),
        ("Le renard brun saute par-dessus le chien paresseux pendant que le fermier regarde.", "fr"),
        ("Der schnelle braune Fuchs springt über den faulen Hund, während der Bauer zusieht.", "de"),
        ("El rápido zorro marrón salta sobre el perro perezoso mientras el granjero mira.", "es"),
        ("速い茶色のキツネが怠け者の犬を飛び越え、農夫が畑から見ています。", "ja"),
        ("这是一个关于中国历史和文化的简短介绍。我们将讨论古代的朝代、文学和哲学思想的发展。", "zh"),
    ],
)
def test_bundled_lid176_identifies_languages(identifier, text, label):
    language, score = identifier.identify(text, 20_000)
    assert language == label and 0.5 < score <= 1.0


def test_newlines_do_not_cut_the_input_short(identifier):
    text = "a\n" + "Der schnelle braune Fuchs springt über den faulen Hund.\n" * 3
    assert identifier.identify(text, 20_000)[0] == "de"


def test_verdict_applies_languages_and_min_score():
    config = LanguageConfig(languages=("en", "de"), min_score=0.7)
    assert language_verdict("en", 0.9, config) is None
    assert language_verdict("fr", 0.99, config) == LanguageReason.LANGUAGE_NOT_WANTED
    assert language_verdict("de", 0.5, config) == LanguageReason.LOW_SCORE
    assert language_verdict("fr", 0.9, LanguageConfig()) is None


def test_line_skipping_repair_equals_ftfy_exactly():
    import random

    import ftfy

    from pipeline.repair import INERT_RANGES

    def reference(text):
        return unicodedata.normalize("NFC", ftfy.fix_text(text, normalization="NFC"))

    rng = random.Random(7)
    inert = [chr(c) for a, b in INERT_RANGES for c in range(a, b + 1, 7)]
    tricky = list("&<>é\u00c3\u00a9\u201c\u201d\r\x1b\x80ﬁＡ\u3000\u0301\u0303АР°\n\n\n") + [
        "&amp;", "&eacute;", "Ã©", "â€™", "Ð¿Ñ€Ð¸Ð²ÐµÑ‚", "A\u0303\u00a9", "<b>", "\r\n",
        "，", "（", "＆amp;", "￡", "￠", "ʼ", "‘", "„", "«", "»", "É", "В"]
    for _ in range(3000):
        text = "".join(rng.choice(inert if rng.random() < 0.7 else tricky) for _ in range(rng.randrange(1, 80)))
        assert repair_text(text, RepairConfig()) == reference(text), repr(text)


def test_every_inert_character_is_left_alone_by_ftfy():
    import ftfy

    from pipeline.repair import INERT_RANGES

    for low, high in INERT_RANGES:
        for codepoint in range(low, high + 1):
            char = chr(codepoint)
            assert ftfy.fix_text(char) == char and unicodedata.normalize("NFC", char) == char
            assert not unicodedata.combining(char)


def test_screened_mojibake_test_equals_ftfys():
    import random

    from ftfy.badness import MOJIBAKE_CATEGORIES
    from ftfy.badness import is_bad as ftfy_is_bad

    from pipeline.repair import is_bad

    rng = random.Random(11)
    alphabet = list("".join(MOJIBAKE_CATEGORIES.values()).replace("-", "")) + list("aZ .,?!\n\t") + [
        "вЂ", "ГўВЂВ", "Ã ", "Â ", "‚Ä", "ā€", "β€", "à²", "√±", "≈°", "× ²", "Œ1", "é«", "«é"]
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 8)))
        assert is_bad(text) == ftfy_is_bad(text), repr(text)

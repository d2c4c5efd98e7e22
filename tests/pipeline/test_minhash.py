"""Tests for pipeline.minhash: normalisation, shingles, signatures (against datasketch), LSH keys."""

import pickle
import random
import unicodedata

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from pipeline import minhash as mh
from pipeline.configfile import ConfigError, build, to_table
from pipeline.minhash import (
    MinHashConfig, MinHasher, band_keys, estimated_jaccard, exact_jaccard, hash_shingle,
    normalize_for_dedup, shingle_hashes, word_shingles,
)

# --- text ---------------------------------------------------------------------------------

ARTICLE = """\
The harbour board met on Tuesday to discuss the state of the northern pier, which has been
closed to visitors since the storms of last winter. Engineers told the board that two of the
wooden supports had rotted through and that repairs would take at least four months.

Fishing crews, who still use the pier to land their catch, asked for a temporary walkway so
that they could keep working while the supports are replaced. The board agreed to look at the
cost of a walkway and to report back at its next meeting in March.

Several residents spoke in favour of keeping the pier open to the public once it is repaired.
One of them, a retired teacher, said that generations of children had learned to fish there
and that closing it for good would take something important away from the town.

The board's chair thanked everyone for coming and promised that no decision would be made
without another public meeting. Minutes of the meeting will be posted on the council website.
"""

VOCABULARY = sorted(set(normalize_for_dedup(ARTICLE).split())) + [
    "café", "naïve", "Zürich", "São", "Paulo", "résumé", "2024", "3.14", "e-mail", "C++",
    "中文", "测试", "日本語", "がっこう", "한국어", "Ελληνικά", "русский", "עברית", "العربية", "हिन्दी",
    "—", "…", "«quoted»", "(aside)", "don't", "U.S.A.", "ﬁne", "１２３", "😀",
]


def random_text(rng: random.Random, words: int) -> str:
    """Words from VOCABULARY with random case, spacing and punctuation between them."""
    out = []
    for _ in range(words):
        word = rng.choice(VOCABULARY)
        if rng.random() < 0.1:
            word = word.upper()
        out.append(word + rng.choice(["", "", "", ",", ".", "!", ";", ":"]))
        out.append(rng.choice([" ", " ", " ", "  ", "\n", "\t", "\u00a0", "\n\n"]))
    return "".join(out)


def edit_words(rng: random.Random, text: str, fraction: float) -> str:
    """The text with about `fraction` of its words replaced by words of another vocabulary."""
    words = text.split()
    for i in rng.sample(range(len(words)), int(len(words) * fraction)):
        words[i] = f"replaced{rng.randrange(10**6)}"
    return " ".join(words)


# --- normalisation ------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("Hello WORLD", "hello world"),
    ("Café naïve résumé Ångström", "cafe naive resume angstrom"),  # precomposed accents
    ("Cafe\u0301 nai\u0308ve", "cafe naive"),  # the same accents as combining marks
    ("İstanbul ǅemal ΟΔΟΣ", "istanbul dzemal οδος"),  # dotted I, a digraph, final sigma
    ("Call 555-1234 in 2024, pay 3.50", "call 0000000 in 0000 pay 000"),
    ("١٢٣ and １２３ and ²", "000 and 000 and 0"),  # Arabic-Indic, full-width, superscript digits
    ("Hello, world! (yes) — “quoted” don't… #tag @user", "hello world yes quoted dont tag user"),
    ("5 € + 3 $ = ©2024 😀 ™", "0 0 0000 tm"),  # symbols go; NFKD spells ™ as TM first
    ("ﬁne ｆｕｌｌ－ｗｉｄｔｈ", "fine fullwidth"),  # compatibility forms
    ("  a\t\tb\n\n c\u00a0d\u3000e\u2003f  ", "a b c d e f"),
    ("中文测试，很好。", "中文测试很好"),
    ("がっこう　カタカナ、ひらがな。", "がっこう カタカナひらがな"),  # voiced kana stay whole
    ("한국어 텍스트!", "한국어 텍스트"),  # Hangul syllables come back composed
    ("Русский текст, ἀρχή", "русскии текст αρχη"),  # Cyrillic й loses its breve, too
    ("", ""),
    (" ...!!! --- ", ""),
])
def test_normalize_for_dedup(text, expected):
    assert normalize_for_dedup(text) == expected


def test_normalisation_is_idempotent_and_ascii_and_unicode_paths_agree():
    rng = random.Random(1)
    actions, _ = mh._fold_tables()
    reference = {code: (None if action == mh._DROP else "0") for code, action in enumerate(actions) if action}
    for _ in range(200):
        text = random_text(rng, rng.randint(0, 80))
        once = normalize_for_dedup(text)
        assert normalize_for_dedup(once) == once
        decomposed = unicodedata.normalize("NFKD", text).lower()
        assert mh._fold(decomposed) == decomposed.translate(reference)
        ascii_only = decomposed.encode("ascii", "ignore").decode()
        assert mh._fold(ascii_only) == ascii_only.translate(reference)
    assert normalize_for_dedup("a\ud800b") == "a\ud800b"  # a lone surrogate passes through


# --- shingles -----------------------------------------------------------------------------


def test_word_shingles():
    assert word_shingles("a b c d e f g", 5) == ["a b c d e", "b c d e f", "c d e f g"]
    assert word_shingles("a b c d e", 5) == ["a b c d e"]
    assert word_shingles("a b c", 5) == ["a b c"]  # fewer than n words: one shingle of them all
    assert word_shingles("", 5) == []  # no words: no shingles
    assert word_shingles("x y x y", 1) == ["x", "y", "x", "y"]
    assert word_shingles("a b c d", 2) == ["a b", "b c", "c d"]
    with pytest.raises(ValueError, match="at least 1"):
        word_shingles("a b", 0)


def test_shingle_hashes_are_xxh3_of_utf8():
    shingles = ["the harbour board", "中文 测试", ""]
    assert shingle_hashes(shingles).tolist() == [hash_shingle(s) for s in shingles]
    assert shingle_hashes(shingles).dtype == np.uint64
    # XXH3-64 with seed 0 is a fixed function of the bytes, the same on every machine.
    assert hash_shingle("the harbour board met on") == 0xF0B264C6A25CD466
    assert len(shingle_hashes([])) == 0


# --- signatures against datasketch --------------------------------------------------------


def datasketch_signature(shingles, num_perm, seed, scheme):
    reference = MinHash(num_perm, seed, hashfunc=hash_shingle, scheme=scheme)
    reference.update_batch(shingles)
    return reference


@pytest.mark.parametrize("scheme", mh.SCHEMES)
@pytest.mark.parametrize("num_perm, seed", [(112, 1), (128, 0), (16, 42), (1, 7), (256, 2**32 - 1)])
def test_signatures_equal_datasketch(scheme, num_perm, seed):
    rng = random.Random(num_perm * 1000 + seed % 1000)
    hasher = MinHasher(num_perm=num_perm, seed=seed, scheme=scheme)
    reference_a, reference_b = MinHash(num_perm, seed, scheme=scheme).permutations
    assert np.array_equal(hasher.permutations[0], reference_a)
    assert np.array_equal(hasher.permutations[1], reference_b)
    texts = [random_text(rng, rng.choice([0, 1, 3, 5, 6, 40, 300])) for _ in range(40)]
    texts += [ARTICLE, ARTICLE.upper(), edit_words(rng, ARTICLE, 0.2), ARTICLE * 12]  # the last spans blocks
    for text in texts:
        shingles = word_shingles(normalize_for_dedup(text), 5)
        ours = hasher.signature(shingles)
        assert ours.dtype == np.uint64 and ours.shape == (num_perm,)
        assert np.array_equal(ours, datasketch_signature(shingles, num_perm, seed, scheme).hashvalues), text[:60]


def test_signature_edge_cases():
    hasher = MinHasher()
    empty = hasher.signature([])
    assert np.array_equal(empty, datasketch_signature([], 112, 1, "affine64").hashvalues)
    assert np.array_equal(empty, hasher.empty_signature())
    assert (empty == np.uint64(2**64 - 1)).all()
    assert (MinHasher(scheme="legacy").signature([]) == np.uint64(2**32 - 1)).all()
    shingles = word_shingles(normalize_for_dedup(ARTICLE))
    # A set: order and repetition do not matter.
    assert np.array_equal(hasher.signature(shingles), hasher.signature(sorted(shingles) * 3))
    assert np.array_equal(hasher.signature(shingles), hasher.signature_from_hashes(shingle_hashes(shingles)))
    # Many more shingles than one block holds.
    big = [f"shingle {k}" for k in range(20_000)]
    assert np.array_equal(hasher.signature(big), datasketch_signature(big, 112, 1, "affine64").hashvalues)
    # Beam ships the hasher and the config to workers by pickling them.
    shipped = pickle.loads(pickle.dumps(hasher))
    assert np.array_equal(shipped.signature(shingles), hasher.signature(shingles))
    assert pickle.loads(pickle.dumps(MinHashConfig(threshold=0.8))) == MinHashConfig(threshold=0.8)
    with pytest.raises(ValueError, match="one-dimensional"):
        hasher.signature_from_hashes(np.zeros((2, 2), dtype=np.uint64))
    for bad in (dict(num_perm=0), dict(seed=-1), dict(seed=2**32), dict(scheme="affine32")):
        with pytest.raises(ValueError):
            MinHasher(**bad)


def test_signature_is_pinned():
    # Stored signatures must not drift: this pins normalisation, shingling and the hash.
    hasher = MinHasher(num_perm=4, seed=1)
    shingles = word_shingles(normalize_for_dedup("The harbour board met on Tuesday, 12 May."))
    assert shingles == ["the harbour board met on", "harbour board met on tuesday",
                        "board met on tuesday 00", "met on tuesday 00 may"]
    assert hasher.signature(shingles).tolist() == [
        1768197666466787456, 2019823313715312065, 1175653125914765878, 6182466672471210563,
    ]


# --- config ---------------------------------------------------------------------------------


def test_config_defaults_follow_fineweb():
    config = MinHashConfig()
    assert (config.ngram, config.num_perm, config.bands, config.rows) == (5, 112, 14, 8)
    assert config.verify is True and config.threshold is None and config.scheme == "affine64"
    assert config.similarity_threshold == pytest.approx((1 / 14) ** (1 / 8))
    hasher = MinHasher.from_config(MinHashConfig(num_perm=64, seed=3, scheme="legacy", bands=8, rows=8))
    assert (hasher.num_perm, hasher.seed, hasher.scheme) == (64, 3, "legacy")


@pytest.mark.parametrize("threshold, num_perm", [(0.5, 128), (0.7, 112), (0.8, 112), (0.9, 128), (0.75, 64)])
def test_bands_and_rows_from_threshold_match_datasketch(threshold, num_perm):
    config = MinHashConfig(threshold=threshold, num_perm=num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    assert (config.bands, config.rows) == (lsh.b, lsh.r)
    assert config.similarity_threshold == threshold
    # Written out and read back, a resolved config is the same config.
    assert build(MinHashConfig, to_table(config), "dedup") == config


@pytest.mark.parametrize("kwargs, message", [
    (dict(bands=20, rows=8), r"bands x rows = 20 x 8 = 160 exceeds num_perm = 112; raise num_perm to at least 160"),
    (dict(num_perm=64), r"14 x 8 = 112 exceeds num_perm = 64"),
    (dict(threshold=1.0), "strictly between 0 and 1"),
    (dict(threshold=0.0), "strictly between 0 and 1"),
    (dict(threshold=0.8, bands=14, rows=8), "give either threshold or bands and rows"),
    (dict(ngram=0), "ngram: must be at least 1"),
    (dict(num_perm=0), "num_perm: must be at least 1"),
    (dict(bands=0), "bands: must be at least 1"),
    (dict(rows=-2), "rows: must be at least 1"),
    (dict(seed=-1), r"seed: must be in \[0, 2\*\*32\)"),
    (dict(scheme="affine32"), "scheme: got 'affine32', allowed: affine64, legacy"),
    (dict(ngram=2.5), "ngram: must be an integer"),
    (dict(verify="yes"), "verify: must be true or false"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MinHashConfig(**kwargs)


def test_config_from_toml_table():
    assert build(MinHashConfig, {"bands": 20, "rows": 5, "num_perm": 100}, "dedup").bands == 20
    with pytest.raises(ConfigError, match=r"dedup: unknown key 'band'; allowed: bands, .*verify"):
        build(MinHashConfig, {"band": 20}, "dedup")
    with pytest.raises(ConfigError, match="dedup: bands x rows"):
        build(MinHashConfig, {"bands": 20}, "dedup")


# --- LSH keys and similarity ----------------------------------------------------------------


def test_band_keys():
    hasher = MinHasher()
    signature = hasher.signature(word_shingles(normalize_for_dedup(ARTICLE)))
    keys = band_keys(signature, bands=14, rows=8)
    assert len(keys) == 14 and len(set(keys)) == 14 and all(len(k) == 20 for k in keys)
    assert [int.from_bytes(k[:4], "big") for k in keys] == list(range(14))
    assert keys == band_keys(signature.copy(), bands=14, rows=8)
    changed = signature.copy()
    changed[3 * 8 + 5] ^= np.uint64(1)  # one value of band 3
    assert [a != b for a, b in zip(keys, band_keys(changed, bands=14, rows=8))] == [i == 3 for i in range(14)]
    # The same rows in another band give another key.
    repeated = np.tile(signature[:8], 2)
    first, second = band_keys(repeated, bands=2, rows=8)
    assert first[4:] == second[4:] and first != second
    assert len(band_keys(signature, bands=9, rows=12)) == 9  # values past bands x rows are unused
    with pytest.raises(ValueError, match="exceeds the signature length"):
        band_keys(signature, bands=15, rows=8)


def test_estimated_jaccard_tracks_exact_jaccard_on_known_edits():
    rng = random.Random(4)
    hasher = MinHasher(num_perm=256)
    base_text = ARTICLE * 1 + random_text(rng, 400)
    base = word_shingles(normalize_for_dedup(base_text))
    signature = hasher.signature(base)
    edits = {
        "identical": base_text,
        "reformatted": base_text.upper().replace(" ", " \t ").replace("\n", "\n\n"),
        "2% words": edit_words(rng, base_text, 0.02),
        "5% words": edit_words(rng, base_text, 0.05),
        "15% words": edit_words(rng, base_text, 0.15),
        "half appended": base_text + " " + random_text(rng, 300),
        "unrelated": random_text(rng, 700),
    }
    exacts = {}
    for name, text in edits.items():
        shingles = word_shingles(normalize_for_dedup(text))
        exact = exact_jaccard(base, shingles)
        estimate = estimated_jaccard(signature, hasher.signature(shingles))
        # 256 permutations: standard error at most 0.5 / 16 = 0.031; allow about 3 of them.
        assert abs(estimate - exact) < 0.1, (name, exact, estimate)
        exacts[name] = exact
    assert exacts["identical"] == exacts["reformatted"] == 1.0
    assert exacts["2% words"] > exacts["5% words"] > exacts["15% words"] > exacts["unrelated"]
    assert exacts["unrelated"] < 0.05


def test_near_duplicates_share_a_band_key_and_unrelated_texts_do_not():
    rng = random.Random(9)
    config = MinHashConfig()
    hasher = MinHasher.from_config(config)

    def keys(text):
        signature = hasher.signature(word_shingles(normalize_for_dedup(text), config.ngram))
        return set(band_keys(signature, bands=config.bands, rows=config.rows))

    base = ARTICLE + random_text(rng, 300)
    assert keys(base) & keys(edit_words(rng, base, 0.01))
    assert not keys(base) & keys(random_text(rng, 400))


def test_jaccard_functions():
    assert exact_jaccard(["a", "b", "c"], ["b", "c", "d"]) == 0.5
    assert exact_jaccard([], []) == 1.0
    assert exact_jaccard(["a"], []) == 0.0
    first, second = np.array([1, 2, 3, 4], dtype=np.uint64), np.array([1, 0, 3, 0], dtype=np.uint64)
    assert estimated_jaccard(first, second) == 0.5
    with pytest.raises(ValueError, match="differ in length"):
        estimated_jaccard(first, second[:3])
    hasher = MinHasher(num_perm=128)
    a = word_shingles(normalize_for_dedup(ARTICLE))
    b = word_shingles(normalize_for_dedup(edit_words(random.Random(1), ARTICLE, 0.1)))
    reference_a = datasketch_signature(a, 128, 1, "affine64")
    reference_b = datasketch_signature(b, 128, 1, "affine64")
    assert estimated_jaccard(hasher.signature(a), hasher.signature(b)) == reference_a.jaccard(reference_b)

"""The tokenizer's pure parts: config, training, round trips, special tokens, the sample, encoding, manifest."""

import hashlib
import json
import random
import unicodedata

import numpy as np
import pytest
from tokenizers import Tokenizer, pre_tokenizers

from pipeline.configfile import ConfigError, build
from pipeline.token_manifest import ManifestError, build_manifest, parse_manifest, read_manifest
from pipeline.tokenizer import (
    END_OF_TEXT, END_OF_TEXT_ID, FIXED_SPECIAL_TOKENS, PAD, PAD_ID, EmptyCorpusError, SampleDocument,
    SampleSelection, TokenizerConfig, build_tokenizer, sample_candidate, encode_documents, hf_tokenizer_files, hf_tokenizer_settings,
    load_tokenizer, min_vocab_size, rank_threshold, sample_rank, token_dtype, token_schema, token_table,
    tokenizer_hash, train_tokenizer, utf8_size,
)
from tests.fixtures.tokenizer_corpus import make_documents

CONFIG = TokenizerConfig(vocab_size=600, special_tokens=("<|tool|>",))

ROUND_TRIP = {
    "emoji": "Weather ☀️ then 🌧️ 😀👍🏽 👨‍👩‍👧‍👦 🇩🇪 — ok 🙂",
    "cjk": "川は古い水車小屋のそばを流れ、河流经过老磨坊。강은 바다에 이릅니다.",
    "code": "def f(x):\n\treturn {'a': [x ** 2, x // 3]}  # note\n\nif __name__ == '__main__':\n    f(1)\n",
    "whitespace runs": "a    b\t\t\tc\n\n\n\nd \r\n\r\n  e      \u00a0\u2003f\u3000g   ",
    "leading spaces": "   leading and trailing   ",
    "only spaces": "     ",
    "mixed scripts": "Das Café in Москва serves 寿司 and ελληνικά تمام at 09:30 for $1234567.89",
    "nfc composed": unicodedata.normalize("NFC", "Ame\u0301lie, n\u0303, Å, 한국어, ﬁ ligature, ½"),
    "special-token text": "before <|endoftext|> and <|pad|><|im_start|> after",
    "control and odd": "nul\x00 bell\x07 zero\u200bwidth bom\ufeff rtl\u202e end \U0010fffd",
    "empty": "",
    "digits": "0 00 000 0000 12345678901234567890 ٣٤٥ ４５６",
}


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_tokenizer([text for _, text in make_documents()], CONFIG)


@pytest.fixture(scope="module")
def document_tokenizer(tokenizer) -> Tokenizer:
    return load_tokenizer(tokenizer.to_str())


@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_decode_of_encode_gives_the_text_back_exactly(tokenizer, document_tokenizer, name):
    text = ROUND_TRIP[name]
    assert tokenizer.decode(tokenizer.encode(text).ids, skip_special_tokens=False) == text
    [ids] = encode_documents(document_tokenizer, [text])
    assert document_tokenizer.decode(ids[:-1].tolist()) == text


def test_text_is_normalised_to_nfc(tokenizer):
    decomposed = "Ame\u0301lie"
    assert tokenizer.decode(tokenizer.encode(decomposed).ids) == "Amélie"


def test_every_byte_has_a_token_so_nothing_is_unknown(tokenizer):
    vocab = tokenizer.get_vocab()
    assert all(symbol in vocab for symbol in pre_tokenizers.ByteLevel.alphabet())
    text = "".join(chr(c) for c in range(1, 0x30000, 7) if not 0xD800 <= c < 0xE000)
    # Random code points include combining marks that NFC reorders or composes.
    assert tokenizer.decode(tokenizer.encode(text).ids) == tokenizer.normalizer.normalize_str(text)


def test_special_tokens_have_fixed_ids_and_are_never_split(tokenizer):
    specials = CONFIG.all_special_tokens
    assert specials[:4] == (END_OF_TEXT, PAD, "<|im_start|>", "<|im_end|>")
    assert [tokenizer.token_to_id(t) for t in specials] == list(range(len(specials)))
    assert (tokenizer.token_to_id(END_OF_TEXT), tokenizer.token_to_id(PAD)) == (END_OF_TEXT_ID, PAD_ID)
    assert tokenizer.token_to_id("<|tool|>") == len(FIXED_SPECIAL_TOKENS)
    ids = tokenizer.encode("hi<|im_start|>user<|endoftext|><|tool|>").ids
    assert ids[ids.index(2)] == 2 and ids.count(0) == 1 and ids.count(12) == 1
    # No learned token reaches into a special token's text.
    assert not any("<|" in token and token not in specials for token in tokenizer.get_vocab())


def test_documents_that_contain_special_token_text_get_ordinary_ids(document_tokenizer):
    [ids] = encode_documents(document_tokenizer, ["x <|endoftext|> <|pad|> y"])
    assert ids[-1] == END_OF_TEXT_ID
    assert not set(ids[:-1].tolist()) & set(range(len(CONFIG.all_special_tokens)))


def test_encoding_needs_a_tokenizer_set_up_for_documents(tokenizer):
    with pytest.raises(ValueError, match="load_tokenizer"):
        encode_documents(tokenizer, ["text"])


@pytest.mark.parametrize("pretokenizer", ["llama3", "gpt2"])
def test_numbers_split_into_groups_of_at_most_three_digits(pretokenizer):
    split = build_tokenizer(TokenizerConfig(pretokenizer=pretokenizer)).pre_tokenizer.pre_tokenize_str
    pieces = [piece for piece, _ in split("year 1234567")]
    assert pieces[-3:] == ["123", "456", "7"]
    assert pieces[0] == "year" and pieces[1] in ("Ġ", "Ġ")


def test_training_is_deterministic_for_the_same_input(tokenizer):
    again = train_tokenizer([text for _, text in make_documents()], CONFIG)
    assert again.to_str() == tokenizer.to_str()
    assert tokenizer.get_vocab_size() == CONFIG.vocab_size


def test_an_empty_corpus_is_a_clear_error():
    for texts in ([], ["", ""]):
        with pytest.raises(EmptyCorpusError, match="empty"):
            train_tokenizer(texts, CONFIG)


def test_transformers_loads_the_tokenizer_with_eos_and_pad(tokenizer, tmp_path):
    transformers = pytest.importorskip("transformers")
    (tmp_path / "tokenizer.json").write_text(tokenizer.to_str())
    for name, content in hf_tokenizer_files(tokenizer).items():
        (tmp_path / name).write_text(json.dumps(content))
    direct = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"),
                                                  **hf_tokenizer_settings())
    auto = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    text = ROUND_TRIP["mixed scripts"]
    for hf in (direct, auto):
        assert (hf.eos_token, hf.eos_token_id) == (END_OF_TEXT, END_OF_TEXT_ID)
        assert (hf.pad_token, hf.pad_token_id) == (PAD, PAD_ID)
        assert hf(text)["input_ids"] == tokenizer.encode(text).ids
        assert hf.decode(hf(text)["input_ids"]) == text


def test_config_errors_say_how_to_fix_them():
    minimum = min_vocab_size()
    assert minimum == 256 + len(FIXED_SPECIAL_TOKENS)
    with pytest.raises(ValueError, match=f"minimum is {minimum}.*at least {minimum}"):
        TokenizerConfig(vocab_size=minimum - 1)
    with pytest.raises(ValueError, match=f"minimum is {minimum + 1}"):
        TokenizerConfig(vocab_size=minimum, special_tokens=("<|x|>",))
    TokenizerConfig(vocab_size=minimum)
    with pytest.raises(ValueError, match="sample_bytes must be > 0"):
        TokenizerConfig(sample_bytes=0)
    with pytest.raises(ValueError, match="already built in"):
        TokenizerConfig(special_tokens=(PAD,))
    with pytest.raises(ConfigError, match="unknown key 'vocab'; allowed: enabled, max_document_chars"):
        build(TokenizerConfig, {"vocab": 10}, "tokenizer")
    with pytest.raises(ConfigError, match="tokenizer.pretokenizer: got 'bert'"):
        build(TokenizerConfig, {"pretokenizer": "bert"}, "tokenizer")
    config = build(TokenizerConfig, {"vocab_size": 4096, "special_tokens": ["<|a|>"]}, "tokenizer")
    assert config.special_tokens == ("<|a|>",) and config.vocab_size == 4096


def test_dtype_is_uint16_while_every_id_fits():
    assert token_dtype(min_vocab_size()) == np.uint16
    assert token_dtype(65536) == np.uint16
    assert token_dtype(65537) == np.uint32
    assert token_dtype(200_000) == np.uint32
    assert str(token_schema(np.dtype(np.uint16)).field("tokens").type) == "list<item: uint16 not null>"
    assert str(token_schema(np.dtype(np.uint32)).field("tokens").type) == "list<item: uint32 not null>"


def test_sample_rank_is_a_seeded_hash_of_the_id():
    assert sample_rank("abc", 0) == sample_rank("abc", 0)
    assert sample_rank("abc", 0) != sample_rank("abc", 1)
    assert 0 <= sample_rank("abc", 2**64 - 1) < 2**64
    assert rank_threshold(1000, 800) == 2**64  # 1.25 x the budget covers everything
    assert rank_threshold(1000, 100) == int(2**64 * 0.125)
    assert rank_threshold(0, 100) == 2**64


def _selection(docs, budget, parts=1, seed=0):
    shards = [SampleSelection(budget) for _ in range(parts)]
    for i, (doc_id, text) in enumerate(docs):
        shards[i % parts].add(SampleDocument(rank=sample_rank(doc_id, seed), id=doc_id, text=text,
                                             size=utf8_size(text)))
    merged = shards[0]
    for other in shards[1:]:
        merged.merge(other)
    return merged


def test_sample_ignores_input_order_and_worker_split():
    docs = make_documents(200)
    budget = 20_000
    expected = _selection(docs, budget).texts()
    rng = random.Random(3)
    for parts in (1, 3, 8):
        shuffled = list(docs)
        rng.shuffle(shuffled)
        assert _selection(shuffled, budget, parts).texts() == expected
    assert sum(utf8_size(t) for t in expected) == budget  # the cut lands exactly on the budget (ASCII here)
    assert _selection(docs, budget, seed=1).texts() != expected


def test_sample_takes_the_lowest_ranks_and_cuts_on_a_character_boundary():
    docs = [(f"{i:04d}", "日本" * 50) for i in range(40)]  # 300 bytes each, 3 per character
    budget = 1000
    texts = _selection(docs, budget).texts()
    order = sorted(docs, key=lambda d: (sample_rank(d[0], 0), d[0]))
    assert texts[:3] == [order[0][1], order[1][1], order[2][1]]
    assert texts[3] == order[3][1][: 100 // 3]  # 100 bytes left: 33 whole characters
    assert budget - 3 < sum(utf8_size(t) for t in texts) <= budget
    selection = _selection(docs, budget)
    assert len(selection) == 4  # holds the budget and one document more, never the corpus


def test_hash_rate_admits_enough_for_the_budget():
    docs = make_documents(600)
    total = sum(utf8_size(t) for _, t in docs)
    budget = total // 5
    threshold = rank_threshold(total, budget)
    admitted = [(i, t) for i, t in docs if sample_rank(i, 0) < threshold]
    assert budget < sum(utf8_size(t) for _, t in admitted) < 2 * budget
    assert _selection(admitted, budget).texts() == _selection(docs, budget).texts()


def test_sample_candidates_leave_out_what_cannot_train():
    config = TokenizerConfig(max_document_chars=10)
    everything = 2**64
    assert sample_candidate("a", "short text", config, everything).size == 10
    assert sample_candidate("a", "日本", config, everything).size == 6
    for text in ("", None, "x" * 11, "lone \ud800"):
        assert sample_candidate("a", text, config, everything) is None
    assert sample_candidate("a", "short text", config, sample_rank("a", 0)) is None  # rank not below the threshold


def test_token_table_round_trips_and_handles_no_rows():
    dtype = np.dtype(np.uint16)
    tokens = [np.array([5, 6, 0], dtype=dtype), np.array([0], dtype=dtype)]
    table = token_table(["a", "b"], tokens, dtype)
    assert table.schema == token_schema(dtype)
    assert table.to_pylist() == [{"id": "a", "tokens": [5, 6, 0], "num_tokens": 3},
                                 {"id": "b", "tokens": [0], "num_tokens": 1}]
    assert token_table([], [], dtype).num_rows == 0


def test_tokenizer_hash_is_the_sha256_of_the_file(tokenizer, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(tokenizer.to_str())
    assert tokenizer_hash(str(path)) == hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(**changes):
    manifest = build_manifest(
        tokenizer_path="/run/tokenizer/tokenizer.json", tokenizer_sha256="ab" * 32, vocab_size=600,
        end_of_text_id=0, pad_id=1, dtype="uint16",
        shards=[{"path": "part-00001-of-00002.parquet", "documents": 2, "tokens": 30},
                {"path": "part-00000-of-00002.parquet", "documents": 3, "tokens": 40}],
        dropped={"too_long": 1})
    manifest.update(changes)
    return manifest


def test_manifest_round_trips_and_lists_shards_in_order(tmp_path):
    manifest = _manifest()
    assert [s["path"] for s in manifest["shards"]] == ["part-00000-of-00002.parquet", "part-00001-of-00002.parquet"]
    assert (manifest["documents"], manifest["tokens"], manifest["dropped"]) == (5, 70, {"too_long": 1})
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    assert read_manifest(str(path)) == manifest


@pytest.mark.parametrize("changes, message", [
    ({"version": 2}, "version 2 is not supported"),
    ({"tokens": 71}, "tokens 71 is not the sum over the shards"),
    ({"dtype": "int8"}, "dtype 'int8' is not one of"),
    ({"shards": [{"path": "../x.parquet", "documents": 5, "tokens": 70}]}, "relative to the manifest"),
    ({"tokenizer": {"path": "t", "sha256": "x", "vocab_size": 70000, "end_of_text_id": 0, "pad_id": 1}},
     "uint16 cannot hold"),
])
def test_bad_manifests_are_one_line_errors(changes, message):
    with pytest.raises(ManifestError, match=message):
        parse_manifest(_manifest(**changes), "tokens/manifest.json")


def test_a_missing_manifest_names_the_file(tmp_path):
    with pytest.raises(ManifestError, match="manifest.json: not found; run the tokenize step"):
        read_manifest(str(tmp_path / "manifest.json"))

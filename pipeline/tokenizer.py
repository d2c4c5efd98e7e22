"""Byte-level BPE tokenizers: the config, training on a bounded deterministic sample, and encoding.

The tokenizer (Hugging Face `tokenizers`) runs these steps:

```
normalizer     NFC
pre-tokenizer  a regex split ("llama3" or "gpt2" rules, below), then ByteLevel without a prefix space
model          BPE over the 256 byte symbols, trained with every byte in the initial alphabet
decoder        ByteLevel
```

Every string maps to byte symbols, so no text is ever unknown, and `decode(encode(x)) == x`
for every NFC text (curated text is NFC; other text comes back composed). Numbers split into
groups of at most three digits ("1234567" -> "123", "456", "7"), as in Llama 3: fewer tokens
than one per digit, and a small fixed set of number pieces rather than whichever long digit
strings happen to be frequent in the sample.

The training sample depends on document ids only, so it is the same for any worker count and
input order. A document's rank is a seeded 64-bit hash of its id (`sample_rank`). Documents
ranked below a threshold that admits 1.25 x `sample_bytes` of text in expectation are
candidates (`rank_threshold`); the candidates are ordered by rank and cut at `sample_bytes`
(`SampleSelection`), the last one keeping the prefix that fits.

The special tokens take the first ids, in this order, and are never merged with text:

```
0  <|endoftext|>   ends every document in the token shards (also the model's bos and eos)
1  <|pad|>         padding
2  <|im_start|>    chat turns
3  <|im_end|>
4..11  <|reserved_0|> .. <|reserved_7|>   held for later use without changing any id
12..   the job's tokenizer.special_tokens, in the order given
```

The 256 byte symbols come next, then the merges in the order they were learned.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
import pyarrow as pa
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

END_OF_TEXT = "<|endoftext|>"
PAD = "<|pad|>"
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")
RESERVED_TOKENS = tuple(f"<|reserved_{i}|>" for i in range(8))
FIXED_SPECIAL_TOKENS = (END_OF_TEXT, PAD, *CHAT_TOKENS, *RESERVED_TOKENS)
END_OF_TEXT_ID = 0
PAD_ID = 1
BYTE_SYMBOLS = 256

# Both split letters, numbers (at most three digits per piece), punctuation runs and whitespace;
# a space stays in front of the word that follows it.
PRETOKENIZER_PATTERNS = {
    # Llama 3: contractions in any case; one non-letter (a space, a quote) may lead a word;
    # punctuation keeps the line breaks that follow it; line breaks gather with the spaces before them.
    "llama3": (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
    # GPT-2: lower-case contractions, only a space may lead a word; numbers as in llama3.
    "gpt2": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
}

# Token ids are stored in the narrowest unsigned type that holds every id of the vocabulary.
UINT16_VOCAB_LIMIT = 1 << 16

# The hash-rate filter admits this multiple of the byte budget in expectation, so the cut at the
# budget almost never runs short; what it admits beyond the budget is dropped by the cut.
SAMPLE_MARGIN = Fraction(5, 4)
_RANK_SPACE = 1 << 64


class TokenizeReason:
    """Why a kept document has no tokens; counted as tokenize.dropped.<reason>."""

    TOO_LONG = "too_long"


class EmptyCorpusError(ValueError):
    """No text to train a tokenizer on."""


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    enabled: bool = True  # train a tokenizer on the curated documents and write token shards
    vocab_size: int = 32768  # every token counted: special tokens, the 256 bytes and the merges
    min_frequency: int = 2  # a pair seen fewer times in the sample is never merged
    sample_bytes: int = 200_000_000  # UTF-8 bytes of text the tokenizer is trained on, at most
    seed: int = 0  # picks the training sample (see sample_rank)
    pretokenizer: Literal["llama3", "gpt2"] = "llama3"  # regex that splits text before BPE
    special_tokens: tuple[str, ...] = ()  # extra special tokens, ids after the reserved ones
    # Longer documents get no tokens and are counted as tokenize.dropped.too_long: one huge
    # document would otherwise hold a worker's memory and one shard's worth of tokens.
    max_document_chars: int = 10_000_000

    def __post_init__(self):
        if self.sample_bytes <= 0:
            raise ValueError(f"sample_bytes must be > 0 (bytes of training text), got {self.sample_bytes}; "
                             f"the default is 200_000_000")
        if self.min_frequency < 1:
            raise ValueError(f"min_frequency must be at least 1, got {self.min_frequency}")
        if self.max_document_chars < 1:
            raise ValueError(f"max_document_chars must be at least 1, got {self.max_document_chars}")
        if not 0 <= self.seed < _RANK_SPACE:
            raise ValueError(f"seed must lie in [0, 2**64), got {self.seed}")
        if self.pretokenizer not in PRETOKENIZER_PATTERNS:
            raise ValueError(f"pretokenizer must be one of {sorted(PRETOKENIZER_PATTERNS)}, got {self.pretokenizer!r}")
        seen = set(FIXED_SPECIAL_TOKENS)
        for token in self.special_tokens:
            if not token or token.strip() != token:
                raise ValueError(f"special_tokens: {token!r} must be non-empty with no surrounding spaces")
            if token in seen:
                raise ValueError(f"special_tokens: {token!r} is given twice or is already built in "
                                 f"({', '.join(FIXED_SPECIAL_TOKENS[:4])}, <|reserved_0..7|>); remove it")
            seen.add(token)
        minimum = min_vocab_size(self.special_tokens)
        if self.vocab_size < minimum:
            raise ValueError(f"vocab_size {self.vocab_size} is too small: the minimum is {minimum} "
                             f"({BYTE_SYMBOLS} byte tokens + {minimum - BYTE_SYMBOLS} special tokens); "
                             f"set vocab_size to at least {minimum}")

    @property
    def all_special_tokens(self) -> tuple[str, ...]:
        """Special tokens in id order, from id 0."""
        return FIXED_SPECIAL_TOKENS + self.special_tokens


def min_vocab_size(extra_special_tokens: Sequence[str] = ()) -> int:
    """The smallest vocabulary: the special tokens and the 256 byte symbols, no merges."""
    return len(FIXED_SPECIAL_TOKENS) + len(extra_special_tokens) + BYTE_SYMBOLS


def build_tokenizer(config: TokenizerConfig) -> Tokenizer:
    """An untrained tokenizer with the normalizer, pre-tokenizer and decoder described above."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZER_PATTERNS[config.pretokenizer]), behavior="isolated"),
        # The regex already split the text; ByteLevel only maps bytes to symbols.
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_tokenizer(texts: Iterable[str], config: TokenizerConfig) -> Tokenizer:
    """Train on `texts`; the same texts in the same order give the same tokenizer.json.

    Raises EmptyCorpusError when `texts` holds no characters at all.
    """
    texts = iter(texts)
    first = next((text for text in texts if text), None)
    if first is None:
        raise EmptyCorpusError("no text to train the tokenizer on: the corpus (or its sample) is empty; "
                               "check the input documents")
    tokenizer = build_tokenizer(config)
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        min_frequency=config.min_frequency,
        special_tokens=list(config.all_special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(itertools.chain([first], texts), trainer=trainer)
    check_special_tokens(tokenizer, config.all_special_tokens, "the trained tokenizer")
    return tokenizer


def check_special_tokens(tokenizer: Tokenizer, expected: Sequence[str] = FIXED_SPECIAL_TOKENS,
                         source: str = "tokenizer") -> None:
    """Raise unless the special tokens sit at their fixed ids, from 0."""
    for token_id, token in enumerate(expected):
        if tokenizer.token_to_id(token) != token_id:
            raise ValueError(f"{source}: {token} should have id {token_id} but has "
                             f"{tokenizer.token_to_id(token)}; use a tokenizer trained by winnow")


def load_tokenizer(data: str | bytes, source: str = "tokenizer.json") -> Tokenizer:
    """A tokenizer.json's content, ready to encode documents (see encode_documents)."""
    try:
        tokenizer = Tokenizer.from_str(data.decode() if isinstance(data, bytes) else data)
    except Exception as error:  # tokenizers raises plain Exception for malformed files
        raise ValueError(f"{source}: not a tokenizers file ({error})") from None
    check_special_tokens(tokenizer, source=source)
    tokenizer.encode_special_tokens = True
    return tokenizer


def tokenizer_digest(data: bytes) -> str:
    """sha256 of a tokenizer.json's bytes, hex."""
    return hashlib.sha256(data).hexdigest()


def tokenizer_hash(path: str) -> str:
    """sha256 of the tokenizer.json file at a local `path`, hex."""
    with open(path, "rb") as f:
        return tokenizer_digest(f.read())


def hf_tokenizer_settings() -> dict[str, str]:
    """Keyword arguments that give `transformers.PreTrainedTokenizerFast(tokenizer_file=...)` its special tokens.

    `<|endoftext|>` is bos as well as eos: documents are separated by it, none starts with a
    bos of its own (the same settings as `winnow export-hf`).
    """
    return {"bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT, "pad_token": PAD}


def hf_tokenizer_files(tokenizer: Tokenizer) -> dict[str, dict]:
    """tokenizer_config.json and special_tokens_map.json, for `AutoTokenizer.from_pretrained(directory)`."""
    settings = hf_tokenizer_settings()
    added = {
        str(token_id): {"content": token.content, "lstrip": token.lstrip, "rstrip": token.rstrip,
                        "normalized": token.normalized, "single_word": token.single_word, "special": token.special}
        for token_id, token in sorted(tokenizer.get_added_tokens_decoder().items())
    }
    return {
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast",
            **settings,
            "clean_up_tokenization_spaces": False,
            "added_tokens_decoder": added,
        },
        "special_tokens_map.json": settings,
    }


# The training sample.


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def sample_rank(doc_id: str, seed: int) -> int:
    """A document's place in the sample order: a seeded 64-bit hash of its id, independent of workers."""
    digest = hashlib.blake2b(doc_id.encode(), digest_size=8, salt=seed.to_bytes(8, "little"),
                             person=b"winnow-sample")
    return int.from_bytes(digest.digest(), "big")


def rank_threshold(total_bytes: int, sample_bytes: int) -> int:
    """Documents with sample_rank below this enter the sample: SAMPLE_MARGIN x the budget, expected."""
    if total_bytes <= 0 or SAMPLE_MARGIN * sample_bytes >= total_bytes:
        return _RANK_SPACE
    return int(_RANK_SPACE * SAMPLE_MARGIN * sample_bytes / total_bytes)


def too_long(text: str, config: TokenizerConfig) -> bool:
    """Whether a document is dropped from tokenization (and from the training sample) for its length."""
    return len(text) > config.max_document_chars


@dataclass(frozen=True, slots=True)
class SampleDocument:
    rank: int
    id: str
    text: str
    size: int  # UTF-8 bytes


def sample_candidate(doc_id: str, text: str | None, config: TokenizerConfig,
                     threshold: int) -> SampleDocument | None:
    """The document as a sample candidate when its rank is below `threshold` (see rank_threshold), else None.

    Empty and overlong documents never enter, nor text that is not valid Unicode (a lone
    surrogate), which the trainer would refuse.
    """
    if not text or too_long(text, config):
        return None
    rank = sample_rank(doc_id, config.seed)
    if rank >= threshold:
        return None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None
    return SampleDocument(rank=rank, id=doc_id, text=text, size=size)


class _Last:
    """Heap entry that puts the greatest (rank, id) on top of heapq's min-heap."""

    __slots__ = ("doc",)

    def __init__(self, doc: SampleDocument):
        self.doc = doc

    def __lt__(self, other: "_Last") -> bool:
        return (self.doc.rank, self.doc.id) > (other.doc.rank, other.doc.id)

    def __reduce__(self):
        return (_Last, (self.doc,))


class SampleSelection:
    """The lowest-ranked documents that reach the byte budget; holds at most the budget plus one document.

    Merging selections gives the same result as adding their documents one by one, in any order.
    """

    def __init__(self, sample_bytes: int):
        self.sample_bytes = sample_bytes
        self._heap: list[_Last] = []
        self._bytes = 0

    def add(self, doc: SampleDocument) -> None:
        if self._bytes >= self.sample_bytes and self._heap and (doc.rank, doc.id) > (self._heap[0].doc.rank,
                                                                                     self._heap[0].doc.id):
            return  # ranks after the last document needed
        heapq.heappush(self._heap, _Last(doc))
        self._bytes += doc.size
        while self._heap and self._bytes - self._heap[0].doc.size >= self.sample_bytes:
            self._bytes -= heapq.heappop(self._heap).doc.size

    def merge(self, other: "SampleSelection") -> None:
        for entry in other._heap:
            self.add(entry.doc)

    def __len__(self) -> int:
        return len(self._heap)

    def texts(self) -> list[str]:
        """Texts in rank order, cut at the byte budget: the last one keeps the prefix that fits."""
        out: list[str] = []
        left = self.sample_bytes
        for doc in sorted((entry.doc for entry in self._heap), key=lambda d: (d.rank, d.id)):
            if doc.size <= left:
                out.append(doc.text)
                left -= doc.size
            else:
                # A cut inside a character drops that character: the sample may end up to 3 bytes short.
                prefix = doc.text.encode("utf-8", "surrogatepass")[:left].decode("utf-8", "ignore")
                if prefix:
                    out.append(prefix)
                break
        return out


# Encoding.


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocab_size <= 65,536): half the disk and loader memory of uint32."""
    return np.dtype(np.uint16) if vocab_size <= UINT16_VOCAB_LIMIT else np.dtype(np.uint32)


def token_schema(dtype: np.dtype) -> pa.Schema:
    """The Arrow schema of token shards for ids of `dtype`."""
    value_type = pa.from_numpy_dtype(np.dtype(dtype))
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False,
                     metadata={"description": "document id, as in the curated shards"}),
            pa.field("tokens", pa.list_(pa.field("item", value_type, nullable=False)), nullable=False,
                     metadata={"description": "token ids of the text, then <|endoftext|>"}),
            pa.field("num_tokens", pa.int64(), nullable=False,
                     metadata={"description": "length of tokens, <|endoftext|> included"}),
        ],
        metadata={"winnow.schema": "tokens/1"},
    )


def encode_documents(tokenizer: Tokenizer, texts: Sequence[str]) -> list[np.ndarray]:
    """Token ids of each text followed by <|endoftext|>, in the tokenizer's dtype (one batched call).

    Documents are plain text: the tokenizer must have `encode_special_tokens` set (load_tokenizer
    does), so a document that contains "<|endoftext|>" gets the ids of those characters, not id 0.
    `encode_batch`, not `encode_batch_fast`: skipping offsets saved nothing measurable, and in a
    long-lived process that had trained tokenizers and run pipelines the fast call took 5% to
    40% more CPU for the same ids (benchmarks/bench_tokenizer.py times both).
    """
    if not tokenizer.encode_special_tokens:
        raise ValueError("the tokenizer would turn special-token text inside documents into special ids; "
                         "load it with load_tokenizer() or set tokenizer.encode_special_tokens = True")
    dtype = token_dtype(tokenizer.get_vocab_size(with_added_tokens=True))
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    out = []
    for encoding in encodings:
        token_ids = encoding.ids  # a new list on every access
        ids = np.empty(len(token_ids) + 1, dtype=dtype)
        ids[:-1] = token_ids
        ids[-1] = END_OF_TEXT_ID
        out.append(ids)
    return out


# Shards hold at most this many ids per Arrow chunk: list offsets are 32-bit.
_MAX_CHUNK_VALUES = 1 << 30


def token_table(ids: Sequence[str], tokens: Sequence[np.ndarray], dtype: np.dtype) -> pa.Table:
    """A token shard's rows, in the order given."""
    schema = token_schema(dtype)
    chunks: list[pa.RecordBatch] = []
    start = 0
    while start < len(ids) or not chunks:
        end, values = start, 0
        while end < len(ids) and (end == start or values + len(tokens[end]) <= _MAX_CHUNK_VALUES):
            values += len(tokens[end])
            end += 1
        part = tokens[start:end]
        lengths = np.fromiter((len(t) for t in part), dtype=np.int64, count=len(part))
        offsets = np.zeros(len(part) + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.concatenate(part).astype(dtype, copy=False) if part else np.empty(0, dtype=dtype)
        lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat),
                                         type=schema.field("tokens").type)
        chunks.append(pa.RecordBatch.from_arrays([pa.array(ids[start:end], pa.string()), lists,
                                                  pa.array(lengths)], schema=schema))
        start = end
    return pa.Table.from_batches(chunks, schema=schema)


__all__ = [
    "END_OF_TEXT", "PAD", "END_OF_TEXT_ID", "PAD_ID", "FIXED_SPECIAL_TOKENS", "PRETOKENIZER_PATTERNS",
    "EmptyCorpusError", "SampleDocument", "SampleSelection", "sample_candidate", "TokenizeReason", "TokenizerConfig",
    "build_tokenizer", "check_special_tokens", "encode_documents", "hf_tokenizer_files", "hf_tokenizer_settings",
    "load_tokenizer", "min_vocab_size", "rank_threshold", "sample_rank", "token_dtype", "token_schema",
    "token_table", "tokenizer_digest", "tokenizer_hash", "too_long", "train_tokenizer", "utf8_size",
]

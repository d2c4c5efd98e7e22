"""MinHash signatures and LSH band keys for near-duplicate detection, as plain functions.

A document becomes the set of word n-gram shingles of its normalised text, each shingle a
64-bit hash, and the set a signature of `num_perm` minima under random permutations.
Signatures agree position by position with probability equal to the Jaccard similarity
of the shingle sets; splitting a signature into bands gives the LSH keys under which
candidate duplicates meet. A text with no words has no shingles and the all-maximum
signature: leave such documents out of banding, or they all meet in one bucket.

Shingles are hashed with XXH3-64 (seed 0) of their UTF-8 bytes: a fixed function of the
bytes, the same on every platform and xxHash release since 0.8, and about ten times
faster than datasketch's SHA-1 based `sha1_hash64`, which would otherwise be most of the
cost of a signature. 64 bits rather than 32, so that the distinct shingles of even a very
long document practically never collide.

The arithmetic is datasketch's, bit for bit: `MinHasher(num_perm=p, seed=s, scheme=x)`
gives the same values as `datasketch.MinHash(p, s, hashfunc=hash_shingle, scheme=x)`
after `update_batch` on the same shingles (the tests hold both to that), but with the
permutations built once, not per document. Two of datasketch's schemes take 64-bit hashes:

- "affine64" (default): hashes pre-mixed by the MurmurHash3 finalizer, then
  `a * h + b mod 2**64` with odd `a`, a bijection, so permuting adds no collisions.
- "legacy": datasketch's only scheme before 2.0, `((a * h + b) mod (2**61 - 1))`
  truncated to 32 bits, where `a * h` first wraps around in uint64. Kept so signatures
  can be compared with ones made that way; it is slower, and biased on very large sets.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt
import xxhash


Scheme = Literal["affine64", "legacy"]
SCHEMES: tuple[str, ...] = ("affine64", "legacy")

# A signature: num_perm uint64 minima, one per permutation.
MinHashSignature = npt.NDArray[np.uint64]

# FineWeb (Penedo et al. 2024): word 5-grams, 14 bands of 8 rows, 112 permutations.
DEFAULT_NGRAM = 5
DEFAULT_BANDS = 14
DEFAULT_ROWS = 8
DEFAULT_NUM_PERM = DEFAULT_BANDS * DEFAULT_ROWS
DEFAULT_SEED = 1  # datasketch's default, so default signatures match a default-seeded MinHash

# datasketch weighs false positives and false negatives equally unless told otherwise.
FALSE_POSITIVE_WEIGHT = 0.5
FALSE_NEGATIVE_WEIGHT = 0.5

_MERSENNE_PRIME = np.uint64((1 << 61) - 1)
_LEGACY_MAX = np.uint64((1 << 32) - 1)
_AFFINE64_MAX = np.uint64((1 << 64) - 1)
_FMIX64 = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))

# Shingle hashes are permuted in blocks of this many uint64 values (1 MiB), so a book-length
# document costs a fixed amount of memory instead of shingles x num_perm words.
_BLOCK_VALUES = 1 << 17

# Kana voicing marks combine like accents but change the letter (か -> が); keeping them
# leaves Japanese text intact, as Chinese and (after recomposition) Korean already are.
_KEPT_MARKS = frozenset({0x3099, 0x309A})


# ---------------------------------------------------------------------------- normalisation


# What folding does to each code point, as a lookup table indexed by code point.
_KEEP, _DROP, _ZERO = 0, 1, 2


@lru_cache(maxsize=1)
def _fold_tables() -> tuple[npt.NDArray[np.uint8], dict[int, str | None]]:
    """Per code point: drop (punctuation, symbols, combining marks), zero (digits) or keep.

    Built once per process (about half a second): the action of every code point as a
    uint8 array, and the same for ASCII as a str.translate table.
    """
    actions = np.zeros(0x110000, dtype=np.uint8)
    for code in range(0x110000):
        char = chr(code)
        category = unicodedata.category(char)
        if category[0] in "PS" or (unicodedata.combining(char) and code not in _KEPT_MARKS):
            actions[code] = _DROP
        elif category == "Nd":
            actions[code] = _ZERO
    ascii_table: dict[int, str | None] = {code: None for code in range(128) if actions[code] == _DROP}
    ascii_table.update({code: "0" for code in range(128) if actions[code] == _ZERO})
    return actions, ascii_table


def _fold(text: str) -> str:
    """Punctuation, symbols and combining marks removed, digits of every script to "0"."""
    actions, ascii_table = _fold_tables()
    if text.isascii():
        # str.translate has a fast path for ASCII strings only; elsewhere it costs
        # tens of nanoseconds a character, so other text goes through numpy.
        return text.translate(ascii_table)
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    action = actions[codes]
    kept = np.where(action == _ZERO, np.uint32(ord("0")), codes)[action != _DROP]
    return kept.tobytes().decode("utf-32-le", "surrogatepass")


def normalize_for_dedup(text: str) -> str:
    """Text as dedup compares it: lower case, no diacritics, digits as 0, no punctuation or symbols, single spaces.

    NFKD splits accents from their letters (and folds compatibility forms such as
    full-width Latin and ligatures); combining marks (non-zero combining class) are then
    dropped, every decimal digit of any script (category Nd) becomes "0", and every
    character of the Unicode categories P* and S* is removed without leaving a space
    ("don't" -> "dont"). NFC recomposes what is left, so Hangul syllables and kana
    come back whole. Whitespace is what str.split() splits on.
    """
    folded = _fold(unicodedata.normalize("NFKD", text).lower())
    return " ".join(unicodedata.normalize("NFC", folded).split())


def word_shingles(normalized: str, n: int = DEFAULT_NGRAM) -> list[str]:
    """Word n-grams of normalised text, in order, each as its words joined by single spaces.

    A text of fewer than n words (but at least one) gives one shingle of all its words,
    so short documents still have a signature; an empty text gives no shingles at all.
    Repeated n-grams appear once per occurrence: a signature depends only on the set.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1 word, got {n}")
    words = normalized.split()
    if len(words) <= n:
        return [" ".join(words)] if words else []
    return list(map(" ".join, zip(*(words[i:] for i in range(n)))))


def hash_shingle(shingle: str) -> int:
    """The 64-bit hash of one shingle: xxh3-64 of its UTF-8 bytes, seed 0."""
    return xxhash.xxh3_64_intdigest(shingle.encode("utf-8"))


def shingle_hashes(shingles: Sequence[str]) -> npt.NDArray[np.uint64]:
    """`hash_shingle` of every shingle, as a uint64 array."""
    # map() keeps the per-shingle loop in C; this is most of a signature's cost.
    encoded = map(str.encode, shingles)  # UTF-8 is str.encode's default
    return np.fromiter(map(xxhash.xxh3_64_intdigest, encoded), dtype=np.uint64, count=len(shingles))


# ---------------------------------------------------------------------------- config


@lru_cache(maxsize=64)
def optimal_bands_rows(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) that datasketch's MinHashLSH picks for this threshold and num_perm."""
    # A private datasketch function, on purpose: the point is the same choice as MinHashLSH.
    # The import is here because datasketch pulls in scipy, which signatures do not need.
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT)


@dataclass(frozen=True, kw_only=True)
class MinHashConfig:
    """MinHash-LSH near-duplicate detection; the defaults are FineWeb's.

    Give either `threshold` (bands and rows are then chosen for it as datasketch's
    MinHashLSH does) or `bands` and `rows` (each defaults to FineWeb's 14 and 8), not
    both unless they agree, which is what a resolved config written back out looks like.
    """

    ngram: int = DEFAULT_NGRAM  # words per shingle (FineWeb: 5)
    num_perm: int = DEFAULT_NUM_PERM  # permutations, the signature length (FineWeb: 112)
    bands: int | None = None  # LSH bands (FineWeb: 14); set from threshold when that is given
    rows: int | None = None  # signature values per band (FineWeb: 8); likewise
    threshold: float | None = None  # target Jaccard similarity, strictly between 0 and 1
    seed: int = DEFAULT_SEED  # seeds the permutations; 0 <= seed < 2**32 (numpy's RandomState)
    scheme: Scheme = "affine64"  # permutation arithmetic, see the module docstring
    verify: bool = True  # keep a candidate pair only if its estimated Jaccard reaches similarity_threshold
    # Verify against this Jaccard similarity instead: with bands and rows whose S-curve sits
    # lower (14 x 8: about 0.72), candidates near the threshold are found more often.
    verify_threshold: float | None = None

    # Errors are plain ValueErrors starting with the key: configfile.build prefixes the section.
    def __post_init__(self) -> None:
        _check_int(self, "ngram", "num_perm", "seed")
        if self.ngram < 1:
            raise ValueError(f"ngram: must be at least 1 word, got {self.ngram}")
        if self.num_perm < 1:
            raise ValueError(f"num_perm: must be at least 1, got {self.num_perm}")
        if not 0 <= self.seed < 1 << 32:
            raise ValueError(f"seed: must be in [0, 2**32), got {self.seed}")
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme: got {self.scheme!r}, allowed: {', '.join(SCHEMES)}")
        if not isinstance(self.verify, bool):
            raise ValueError(f"verify: must be true or false, got {self.verify!r}")
        if self.verify_threshold is not None and not 0.0 < self.verify_threshold <= 1.0:
            raise ValueError(f"verify_threshold: must lie in (0, 1], got {self.verify_threshold}")
        for name in ("bands", "rows"):
            if getattr(self, name) is not None:
                _check_int(self, name)
                if getattr(self, name) < 1:
                    raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.threshold is None:
            bands = DEFAULT_BANDS if self.bands is None else self.bands
            rows = DEFAULT_ROWS if self.rows is None else self.rows
        else:
            if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)):
                raise ValueError(f"threshold: must be a number, got {self.threshold!r}")
            if not 0.0 < self.threshold < 1.0:
                raise ValueError(f"threshold: must be strictly between 0 and 1, got {self.threshold}")
            bands, rows = optimal_bands_rows(float(self.threshold), self.num_perm)
            given = (self.bands, self.rows)
            if given != (None, None) and given != (bands, rows):
                raise ValueError(
                    f"bands and rows ({self.bands}, {self.rows}) disagree with the choice for "
                    f"threshold {self.threshold} and num_perm {self.num_perm} ({bands}, {rows}); "
                    "give either threshold or bands and rows"
                )
        if bands * rows > self.num_perm:
            raise ValueError(
                f"bands x rows = {bands} x {rows} = {bands * rows} exceeds num_perm = {self.num_perm}; "
                f"raise num_perm to at least {bands * rows}, or use fewer bands or rows"
            )
        object.__setattr__(self, "bands", bands)
        object.__setattr__(self, "rows", rows)

    @property
    def similarity_threshold(self) -> float:
        """The Jaccard similarity candidates are verified against.

        `verify_threshold` when given, else `threshold`; otherwise (1/bands)**(1/rows), where
        the LSH S-curve is steepest (about 0.72 for 14 x 8).
        """
        if self.verify_threshold is not None:
            return float(self.verify_threshold)
        if self.threshold is not None:
            return float(self.threshold)
        return (1.0 / self.bands) ** (1.0 / self.rows)


def _check_int(config: MinHashConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: must be an integer, got {value!r}")


# ---------------------------------------------------------------------------- signatures


def _fmix64(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """MurmurHash3's 64-bit finalizer, element-wise; uint64 products wrap, as intended."""
    shift, first, second = _FMIX64
    values = values ^ (values >> shift)
    values = values * first
    values = values ^ (values >> shift)
    values = values * second
    return values ^ (values >> shift)


class MinHasher:
    """Signatures of shingle sets under one fixed set of permutations, built once."""

    def __init__(self, *, num_perm: int = DEFAULT_NUM_PERM, seed: int = DEFAULT_SEED,
                 scheme: Scheme = "affine64") -> None:
        if num_perm < 1:
            raise ValueError(f"num_perm must be at least 1, got {num_perm}")
        if not 0 <= seed < 1 << 32:
            raise ValueError(f"seed must be in [0, 2**32), got {seed}")
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
        self.num_perm = num_perm
        self.seed = seed
        self.scheme = scheme
        a, b = _permutations(num_perm, seed, scheme)
        # Row vectors, so a column of hashes broadcasts to a (shingles, num_perm) block.
        self._a = a.reshape(1, -1)
        self._b = b.reshape(1, -1)
        self._empty = np.full(num_perm, _LEGACY_MAX if scheme == "legacy" else _AFFINE64_MAX, dtype=np.uint64)
        self._block_rows = max(1, _BLOCK_VALUES // num_perm)

    @classmethod
    def from_config(cls, config: MinHashConfig) -> MinHasher:
        return cls(num_perm=config.num_perm, seed=config.seed, scheme=config.scheme)

    @property
    def permutations(self) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        """The (a, b) parameters of the permutations, as datasketch's `MinHash.permutations`."""
        return self._a.ravel().copy(), self._b.ravel().copy()

    def empty_signature(self) -> MinHashSignature:
        """The signature of the empty set: every value at the scheme's maximum."""
        return self._empty.copy()

    def signature(self, shingles: Sequence[str]) -> MinHashSignature:
        """The signature of a set of shingles (duplicates are harmless)."""
        return self.signature_from_hashes(shingle_hashes(shingles))

    def signature_from_hashes(self, hashes: npt.NDArray[np.uint64]) -> MinHashSignature:
        """The signature of a set of 64-bit shingle hashes."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        if hashes.ndim != 1:
            raise ValueError(f"hashes must be one-dimensional, got shape {hashes.shape}")
        result = self._empty.copy()
        if self.scheme == "affine64":
            hashes = _fmix64(hashes)
        for start in range(0, len(hashes), self._block_rows):
            column = hashes[start:start + self._block_rows].reshape(-1, 1)
            block = column * self._a  # wraps around in uint64, as datasketch's does
            block += self._b
            if self.scheme == "legacy":
                block %= _MERSENNE_PRIME
                block &= _LEGACY_MAX
            np.minimum(result, block.min(axis=0), out=result)
        return result


def _permutations(num_perm: int, seed: int, scheme: Scheme) -> tuple[np.ndarray, np.ndarray]:
    """The permutation parameters datasketch draws for this seed, in its draw order."""
    rng = np.random.RandomState(seed)
    if scheme == "legacy":
        # One (a, b) pair per permutation, a in [1, p) and b in [0, p), p = 2**61 - 1.
        pairs = [
            (rng.randint(1, _MERSENNE_PRIME, dtype=np.uint64), rng.randint(0, _MERSENNE_PRIME, dtype=np.uint64))
            for _ in range(num_perm)
        ]
        a, b = np.array(pairs, dtype=np.uint64).T
        return np.ascontiguousarray(a), np.ascontiguousarray(b)
    # All a first, then all b; a odd so that h -> a * h + b is a bijection mod 2**64.
    a = rng.randint(0, 1 << 63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.randint(0, 1 << 64, num_perm, dtype=np.uint64)
    return a, b


# ---------------------------------------------------------------------------- LSH and similarity


def band_keys(signature: MinHashSignature, *, bands: int, rows: int) -> list[bytes]:
    """One LSH key per band: the band index (4 bytes, big-endian) and a 16-byte digest of its rows.

    Two documents share a key exactly when (barring a 128-bit digest collision) all rows
    of that band agree. Values are digested little-endian, so keys are the same on every
    machine. Values past bands * rows are not used.
    """
    if bands < 1 or rows < 1:
        raise ValueError(f"bands and rows must be at least 1, got {bands} and {rows}")
    if bands * rows > len(signature):
        raise ValueError(f"bands x rows = {bands * rows} exceeds the signature length {len(signature)}")
    raw = np.asarray(signature, dtype="<u8").tobytes()
    width = rows * 8
    return [
        band.to_bytes(4, "big") + hashlib.blake2b(raw[band * width:(band + 1) * width], digest_size=16).digest()
        for band in range(bands)
    ]


def estimated_jaccard(first: MinHashSignature, second: MinHashSignature) -> float:
    """The Jaccard similarity two signatures estimate: the share of positions that agree."""
    if len(first) != len(second):
        raise ValueError(f"signatures differ in length: {len(first)} and {len(second)}")
    if len(first) == 0:
        raise ValueError("signatures are empty")
    return float(np.count_nonzero(np.asarray(first) == np.asarray(second))) / len(first)


def exact_jaccard(first: Iterable[str], second: Iterable[str]) -> float:
    """|A & B| / |A | B| of two shingle sets; 1.0 for two empty sets, as their signatures agree."""
    a, b = set(first), set(second)
    union = len(a | b)
    return len(a & b) / union if union else 1.0

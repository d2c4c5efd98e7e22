"""tokens/manifest.json: what the token shards hold and which tokenizer made them.

```
{
  "version": 1,
  "tokenizer": {"path": ".../tokenizer/tokenizer.json", "sha256": "...", "vocab_size": 32768,
                "end_of_text_id": 0, "pad_id": 1},
  "dtype": "uint16",                      token id type in the shards
  "documents": 1234, "tokens": 5678901,   totals over the shards; tokens count one <|endoftext|> per document
  "dropped": {"too_long": 0},             kept documents that got no tokens, by reason
  "failed": {},                           documents the tokenizer refused, by error type
  "shards": [{"path": "part-00000-of-00002.parquet", "documents": 600, "tokens": 2800000}, ...]
}
```

Shard paths are relative to the manifest's directory, so a run directory can move. Reading a
manifest needs no tokenizer library: the trainer's loader reads it too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

MANIFEST_VERSION = 1
MANIFEST_FILE = "manifest.json"
TOKEN_DTYPES = ("uint16", "uint32")


class ManifestError(ValueError):
    """A manifest that cannot be read, in one line naming the file and key."""


def build_manifest(*, tokenizer_path: str, tokenizer_sha256: str, vocab_size: int, end_of_text_id: int,
                   pad_id: int, dtype: str, shards: Sequence[Mapping[str, Any]],
                   dropped: Mapping[str, int] | None = None, failed: Mapping[str, int] | None = None) -> dict:
    """The manifest of token shards; shards are {path, documents, tokens}, listed in path order."""
    listed = sorted(({"path": str(s["path"]), "documents": int(s["documents"]), "tokens": int(s["tokens"])}
                     for s in shards), key=lambda s: s["path"])
    manifest = {
        "version": MANIFEST_VERSION,
        "tokenizer": {"path": tokenizer_path, "sha256": tokenizer_sha256, "vocab_size": vocab_size,
                      "end_of_text_id": end_of_text_id, "pad_id": pad_id},
        "dtype": dtype,
        "documents": sum(s["documents"] for s in listed),
        "tokens": sum(s["tokens"] for s in listed),
        "dropped": dict(sorted((dropped or {}).items())),
        "failed": dict(sorted((failed or {}).items())),
        "shards": listed,
    }
    return parse_manifest(manifest, "manifest")


def _require(table: Mapping, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in table:
        raise ManifestError(f"{where}: missing key {key!r}")
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ManifestError(f"{where}.{key}: expected {names}, got {value!r}")
    if isinstance(value, int) and value < 0:
        raise ManifestError(f"{where}.{key}: must not be negative, got {value}")
    return value


def parse_manifest(document: Any, source: str) -> dict:
    """Check a manifest's content; returns it unchanged. Problems are ManifestErrors naming `source` and the key."""
    if not isinstance(document, Mapping):
        raise ManifestError(f"{source}: expected a JSON object")
    version = document.get("version")
    if version != MANIFEST_VERSION:
        raise ManifestError(f"{source}: version {version!r} is not supported; this version of winnow reads "
                            f"{MANIFEST_VERSION} (re-run the tokenize step)")
    tokenizer = _require(document, "tokenizer", Mapping, source)
    for key in ("path", "sha256"):
        _require(tokenizer, key, str, f"{source}: tokenizer")
    vocab_size = _require(tokenizer, "vocab_size", int, f"{source}: tokenizer")
    for key in ("end_of_text_id", "pad_id"):
        token_id = _require(tokenizer, key, int, f"{source}: tokenizer")
        if token_id >= vocab_size:
            raise ManifestError(f"{source}: tokenizer.{key} {token_id} is outside the vocabulary of {vocab_size}")
    dtype = _require(document, "dtype", str, source)
    if dtype not in TOKEN_DTYPES:
        raise ManifestError(f"{source}: dtype {dtype!r} is not one of {list(TOKEN_DTYPES)}")
    if dtype == "uint16" and vocab_size > 1 << 16:
        raise ManifestError(f"{source}: dtype uint16 cannot hold the ids of a vocabulary of {vocab_size}")
    shards = _require(document, "shards", list, source)
    for i, shard in enumerate(shards):
        where = f"{source}: shards[{i}]"
        if not isinstance(shard, Mapping):
            raise ManifestError(f"{where}: expected an object with path, documents and tokens")
        path = _require(shard, "path", str, where)
        if not path or path.startswith("/") or "://" in path or ".." in path.split("/"):
            raise ManifestError(f"{where}.path: {path!r} must be a file name relative to the manifest's directory")
        _require(shard, "documents", int, where)
        _require(shard, "tokens", int, where)
    paths = [s["path"] for s in shards]
    if len(set(paths)) != len(paths):
        raise ManifestError(f"{source}: shards lists a file twice")
    for key in ("documents", "tokens"):
        total = _require(document, key, int, source)
        if total != sum(s[key] for s in shards):
            raise ManifestError(f"{source}: {key} {total} is not the sum over the shards "
                                f"({sum(s[key] for s in shards)}); the manifest is inconsistent")
    for key in ("dropped", "failed"):
        counts = document.get(key, {})
        if not isinstance(counts, Mapping) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()):
            raise ManifestError(f"{source}: {key} must map reasons to document counts")
    return dict(document)


def read_manifest(path: str) -> dict:
    """Read and check the manifest.json at a local `path`."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ManifestError(f"{path}: not found; run the tokenize step (winnow tokenize) first") from None
    except OSError as error:
        raise ManifestError(f"{path}: cannot read ({error.strerror})") from None
    return parse_manifest_bytes(raw, path)


def parse_manifest_bytes(raw: bytes, source: str) -> dict:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{source}: not valid JSON ({error})") from None
    return parse_manifest(document, source)


__all__ = ["MANIFEST_FILE", "MANIFEST_VERSION", "ManifestError", "build_manifest", "parse_manifest",
           "parse_manifest_bytes", "read_manifest"]

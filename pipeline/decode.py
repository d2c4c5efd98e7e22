"""Bytes to text: the declared charset first (BOM, HTTP header, HTML meta), detection (uchardet) as the fallback."""

from __future__ import annotations

import codecs
import functools
import re
from dataclasses import dataclass

import cchardet


class DecodeReason:
    UNDECODABLE = "undecodable"
    BINARY_CONTENT = "binary_content"
    EMPTY_BODY = "empty_body"


class DecodeNote:
    DECLARED_CHARSET_WRONG = "decode.declared_charset_wrong"
    UNKNOWN_CHARSET_NAME = "decode.unknown_charset_name"
    DETECTED = "decode.detected_charset"
    REPLACED_BYTES = "decode.replaced_invalid_bytes"


@dataclass(frozen=True, kw_only=True)
class DecodeConfig:
    detect: bool = True  # fall back to charset detection when the declared charset fails
    max_invalid_fraction: float = 0.01  # above this share of undecodable bytes, detect instead of replacing
    max_control_fraction: float = 0.01  # above this share of control characters, the payload is binary
    detect_bytes: int = 65536  # how much of the payload charset detection looks at
    min_detect_confidence: float = 0.5  # a detected charset below this confidence is not trusted


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    charset: str
    notes: tuple[str, ...] = ()


class DecodeError(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE
)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# Browsers decode these labels as their supersets (WHATWG Encoding Standard); so do we.
_WHATWG_ALIASES = {
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252",
    "iso-8859-9": "cp1254", "tis-620": "cp874", "gb2312": "gb18030", "gbk": "gb18030",
    "x-sjis": "shift_jis", "shift-jis": "shift_jis", "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
}
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


# File signatures of common binary payloads that servers label as anything, text/html included.
BINARY_MAGIC = (b"%PDF", b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"PK\x03\x04", b"RIFF", b"\x1f\x8b")


def has_binary_signature(payload: bytes | None) -> bool:
    return bool(payload) and payload[:16].lstrip().startswith(BINARY_MAGIC)


def is_textual(content_type: str | None, payload: bytes) -> bool:
    """Whether a payload should be decoded as text: no binary signature, and a textual media type."""
    if has_binary_signature(payload):
        return False
    if content_type is None:
        return True
    return content_type.startswith("text/") or content_type.endswith("xml")


def meta_charset(payload: bytes) -> str | None:
    """The charset an HTML <meta> tag declares in the first 4 KB, lower case."""
    match = _META_CHARSET.search(payload[:4096])
    return match.group(1).decode("ascii").lower() if match else None


def python_codec(label: str | None) -> str | None:
    """Python's codec name for a charset label, or None when the label is unknown."""
    if not label:
        return None
    label = _WHATWG_ALIASES.get(label.lower(), label.lower())
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_html(payload: bytes, http_charset: str | None, config: DecodeConfig) -> Decoded:
    """Decode an HTML payload; raises DecodeError with a named reason when it is not text."""
    if not payload.strip():
        raise DecodeError(DecodeReason.EMPTY_BODY, "the body is empty")
    notes: list[str] = []
    candidates: list[str] = []
    for bom, codec in _BOMS:
        if payload.startswith(bom):
            candidates.append(codec)
    if not candidates or candidates[0] != "utf-16":
        # No 8-bit or multi-byte text encoding uses C0 control bytes for text; binary does.
        sample = payload[: config.detect_bytes]
        controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
        if controls > config.max_control_fraction * len(sample):
            raise DecodeError(DecodeReason.BINARY_CONTENT, f"{controls} control bytes in the first {len(sample)}")
    for label in (http_charset, meta_charset(payload)):
        if label:
            codec = python_codec(label)
            if codec is None:
                if DecodeNote.UNKNOWN_CHARSET_NAME not in notes:
                    notes.append(DecodeNote.UNKNOWN_CHARSET_NAME)
            elif codec not in candidates:
                candidates.append(codec)
    declared = bool(candidates)
    if "utf-8" not in candidates:
        candidates.append("utf-8")
    for codec in candidates:
        try:
            text = payload.decode(codec)
        except UnicodeDecodeError:
            continue
        if declared and codec != candidates[0]:
            notes.append(DecodeNote.DECLARED_CHARSET_WRONG)
        return _checked(text, codec, notes, config)
    if declared:
        notes.append(DecodeNote.DECLARED_CHARSET_WRONG)
    # Nothing decodes cleanly. UTF-8 with a few stray bytes keeps its valid characters and
    # has the strays replaced; a legacy 8-bit page shows no valid multi-byte sequences at all,
    # so it goes to detection instead of losing every accented letter.
    as_utf8 = payload.decode("utf-8", errors="replace")
    invalid = as_utf8.count("\ufffd")
    valid_non_ascii = len(_NON_ASCII.findall(as_utf8)) - invalid
    few_invalid = invalid <= config.max_invalid_fraction * len(payload)
    if valid_non_ascii >= invalid and few_invalid:
        notes.append(DecodeNote.REPLACED_BYTES)
        return _checked(as_utf8, "utf-8", notes, config)
    if config.detect:
        guess = cchardet.detect(payload[: config.detect_bytes])
        codec = python_codec(guess.get("encoding"))
        if codec is not None and (guess.get("confidence") or 0.0) >= config.min_detect_confidence:
            text = payload.decode(codec, errors="replace")
            if text.count("\ufffd") <= config.max_invalid_fraction * len(payload):
                notes.append(DecodeNote.DETECTED)
                return _checked(text, codec, notes, config)
    if few_invalid:
        notes.append(DecodeNote.REPLACED_BYTES)
        return _checked(as_utf8, "utf-8", notes, config)
    raise DecodeError(DecodeReason.UNDECODABLE, f"no charset decodes the body (tried {', '.join(candidates)})")


@functools.lru_cache(maxsize=64)
def _ascii_compatible(codec: str) -> bool:
    """Whether the codec writes ASCII as ASCII bytes; then the raw control-byte check already covered it."""
    probe = "".join(map(chr, range(128)))
    try:
        return probe.encode(codec) == probe.encode("ascii")
    except (UnicodeError, LookupError):
        return False


def _checked(text: str, codec: str, notes: list[str], config: DecodeConfig) -> Decoded:
    if not _ascii_compatible(codec):
        sample = text[:65536]
        controls = len(_CONTROL.findall(sample))
        if controls > config.max_control_fraction * max(len(sample), 1):
            raise DecodeError(DecodeReason.BINARY_CONTENT,
                              f"{controls} control characters in the first {len(sample)} decoded")
    return Decoded(text=text.lstrip("\ufeff"), charset=codec, notes=tuple(notes))

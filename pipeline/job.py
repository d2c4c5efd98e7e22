"""Job files: TOML in, a frozen `Job` out, checked before any work starts."""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Literal

import tomli_w

from pipeline.configfile import ConfigError, coerce, parse_file_table, read_toml, to_table
from pipeline.decode import DecodeConfig
from pipeline.dedup import DedupConfig
from pipeline.extract import ExtractConfig
from pipeline.language import LanguageConfig, check_model_file
from pipeline.quality import QualityConfig
from pipeline.repair import RepairConfig
from pipeline.tokenizer import TokenizerConfig


@dataclass(frozen=True, kw_only=True)
class JobInfo:
    name: str  # a label for the run, shown in the summary
    output_dir: str  # the run directory: curated/, rejected/, stats.json and job.toml go here


@dataclass(frozen=True, kw_only=True)
class InputConfig:
    paths: tuple[str, ...]  # globs over any Beam filesystem: local, gs://, s3://
    format: Literal["auto", "warc", "wet", "jsonl", "parquet"] = "auto"  # auto: from each file name
    text_field: str = "text"  # JSONL/Parquet: field holding plain text
    html_field: str = "html"  # JSONL/Parquet: field holding HTML, used when there is no text field
    url_field: str = "url"  # JSONL/Parquet: field holding the URL
    date_field: str = "date"  # JSONL/Parquet: field holding the crawl date (ISO 8601)
    # Files are spread over workers one by one. Set true to also spread the records of each file
    # (for a few very large files on many workers); it shuffles every raw payload once.
    reshuffle: bool = False

    def __post_init__(self):
        if not self.paths:
            raise ValueError("paths must name at least one file or glob")


@dataclass(frozen=True, kw_only=True)
class OutputConfig:
    target_shard_bytes: int = 128 * 1024 * 1024  # approximate uncompressed text per shard; bounds writer memory
    row_group_bytes: int = 32 * 1024 * 1024  # approximate uncompressed text per Parquet row group
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    compression_level: int = 3  # zstd level

    def __post_init__(self):
        if self.target_shard_bytes <= 0 or self.row_group_bytes <= 0:
            raise ValueError("target_shard_bytes and row_group_bytes must be positive")


@dataclass(frozen=True, kw_only=True)
class DeadLetterConfig:
    enabled: bool = True  # write dropped and failed documents to rejected/
    sample_rate: float = 1.0  # share of rejected documents written (1.0 = all); chosen by a hash of the id
    max_payload_bytes: int = 1_000_000  # raw payload kept per rejected document; longer ones are cut and flagged

    def __post_init__(self):
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ValueError("sample_rate must lie between 0 and 1")


@dataclass(frozen=True, kw_only=True)
class Job:
    job: JobInfo
    input: InputConfig
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    repair: RepairConfig = field(default_factory=RepairConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    dead_letter: DeadLetterConfig = field(default_factory=DeadLetterConfig)
    # The [runner] table: Beam pipeline options by flag name, e.g. runner = "DataflowRunner".
    runner: Mapping[str, str | int | float | bool | tuple[str, ...]] = field(default_factory=dict)

    @property
    def run_dir(self) -> str:
        return self.job.output_dir


def parse_job(table: dict[str, Any], source: str) -> Job:
    """Build a Job from a parsed TOML table; errors are one line naming the file and key."""
    return parse_file_table(Job, table, source)


def load_job(path: str | os.PathLike) -> Job:
    """Read and check a job file; every problem is a ConfigError with a one-line message."""
    path = Path(path)
    job = resolve_paths(parse_job(read_toml(path), str(path)))
    try:
        check_model_file(job.language)
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: language.model_path: {error}") from None
    return job


def apply_profile(job: Job, path: str | os.PathLike) -> Job:
    """Merge a runner profile over the job's own [runner] table (the profile's keys win).

    A profile is a TOML file holding only a [runner] table of Beam options, such as
    deploy/dataflow/profile.toml: one job file runs anywhere by naming another profile, its
    own [runner] table being the default for local runs. Flags after `--` still win over both.
    """
    table = read_toml(path, "runner profile")
    other = sorted(set(table) - {"runner"})
    if other:
        raise ConfigError(f"{path}: a runner profile holds only a [runner] table, not {other[0]!r}")
    if "runner" not in table:
        raise ConfigError(f"{path}: a runner profile needs a [runner] table of Beam options")
    try:
        profile = coerce(table["runner"], typing.get_type_hints(Job)["runner"], "runner")
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return dataclasses.replace(job, runner={**job.runner, **profile})


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def resolve_paths(job: Job) -> Job:
    """Local paths become absolute (relative to the working directory), so every worker sees the same files."""
    return dataclasses.replace(
        job,
        job=dataclasses.replace(job.job, output_dir=_absolute(job.job.output_dir)),
        input=dataclasses.replace(job.input, paths=tuple(_absolute(p) for p in job.input.paths)),
        language=dataclasses.replace(
            job.language, model_path=_absolute(job.language.model_path) if job.language.model_path else ""),
    )


def job_toml(job: Job) -> str:
    """The resolved job as TOML, every default written out, so a run directory says exactly what ran."""
    return tomli_w.dumps(_drop_none(to_table(job)))


def _drop_none(table: Any) -> Any:
    if isinstance(table, dict):
        return {k: _drop_none(v) for k, v in table.items() if v is not None}
    return table

"""The curation pipeline: input files to curated shards, dead letters and stats.json."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

from pipeline.configfile import ConfigError
from pipeline.job import DeadLetterConfig, InputConfig, Job, job_toml
from pipeline.readers import detect_format
from pipeline.dedup import Deduplicate
from pipeline.dedup_report import WriteDedupReport
from pipeline.schema import CLUSTERS_SCHEMA, CURATED_SCHEMA, REJECTED_SCHEMA, curated_row, rejected_row
from pipeline.sinks import WriteShards, WriteStats, remove_tree
from pipeline.stages import (
    KEPT, NAMESPACE, REJECTED, TALLY, Decode, Extract, FilterQuality, IdentifyLanguage, InputFile, ReadDocuments, Repair,
)

TEMP_DIR = "_temporary"  # spill files while a run writes its shards; gone when it ends
_WILDCARD = re.compile(r"[*?\[]")
OUTPUT_NAMES = (
    "curated", "rejected", "dedup", "tokenizer", "tokens", "stats.json", "metrics.json", "job.toml", TEMP_DIR,
)


def _is_local(path: str) -> bool:
    return "://" not in path


def _fixed_prefix(pattern: str) -> str:
    """The directory part of a glob before its first wildcard, with a trailing slash."""
    match = _WILDCARD.search(pattern)
    head = pattern[: match.start()] if match else pattern
    return head[: head.rfind("/") + 1]


def match_files(pattern: str) -> tuple[str, list]:
    """The files (not directories) a glob matches on any Beam filesystem, local patterns made absolute.

    Returns the pattern as matched and Beam's file metadata; a ValueError says when the pattern
    cannot be listed or matches nothing.
    """
    if _is_local(pattern):
        pattern = os.path.abspath(pattern)
    try:
        metadata = FileSystems.match([pattern])[0].metadata_list
    except BeamIOError as error:
        raise ValueError(f"cannot list {pattern!r}: {error}") from None
    files = [m for m in metadata if not m.path.endswith("/")]
    if not files:
        raise ValueError(f"{pattern!r} matches no files; check the path or glob")
    return pattern, files


def match_inputs(config: InputConfig) -> list[InputFile]:
    """Every input file the globs match, sorted; a glob that matches nothing is a ConfigError."""
    found: dict[str, InputFile] = {}
    for pattern in config.paths:
        try:
            pattern, files = match_files(pattern)
        except ValueError as error:
            raise ConfigError(f"input.paths: {error}") from None
        prefix = _fixed_prefix(pattern)
        for m in files:
            fmt = config.format
            if fmt == "auto":
                try:
                    fmt = detect_format(m.path)
                except ValueError as error:
                    raise ConfigError(f"input.format: {error}") from None
            key = m.path[len(prefix):] if m.path.startswith(prefix) else m.path.rsplit("/", 1)[-1]
            found.setdefault(m.path, InputFile(path=m.path, key=key, format=fmt))
    return sorted(found.values(), key=lambda f: f.path)


def runner_flags(job: Job, extra: Sequence[str] = ()) -> list[str]:
    """Beam flags from the job's [runner] table, then the command line's, which win."""
    flags: list[str] = []
    for key, value in (job.runner or {}).items():
        if isinstance(value, bool):
            if value:
                flags.append(f"--{key}")
        elif isinstance(value, (list, tuple)):
            flags.extend(f"--{key}={v}" for v in value)
        else:
            flags.append(f"--{key}={value}")
    return flags + list(extra)


def local_runner(options: PipelineOptions):
    """The runner a DirectRunner job runs on: Beam's portable local runner (FnApiRunner), chosen here.

    Beam's DirectRunner would first try to download the Prism runner binary from GitHub at run
    time, and run on it when the download works. winnow pins the local runner instead, so a run
    needs no network and behaves the same on every machine; `--runner PrismRunner` still asks
    for Prism explicitly. Other runners (Dataflow, Flink, Portable) are left to Beam.
    """
    name = options.view_as(StandardOptions).runner
    if name not in (None, "DirectRunner", "direct", "Direct"):
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=provision)


def _sampled(doc_id: str, rate: float) -> bool:
    if rate >= 1.0:
        return True
    value = int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big")
    return value < rate * 2**64


class WriteRejected(beam.PTransform):
    def __init__(self, directory: str, config: DeadLetterConfig, job: Job, temp_dir: str):
        super().__init__()
        self._directory = directory
        self._temp_dir = temp_dir
        self._config = config
        self._output = job.output

    def expand(self, rejections: tuple):
        # Each stage's rejections become rows where they are made: the local runner would hold
        # a merged collection of whole rejected documents in memory between stages.
        config = self._config
        rows = tuple(
            rejected
            | f"SampleRejected{i}" >> beam.Filter(lambda r: _sampled(r.document.id, config.sample_rate))
            | f"ToRejectedRows{i}" >> beam.Map(rejected_row, config.max_payload_bytes)
            for i, rejected in enumerate(rejections)
        )
        return rows | "WriteRejectedShards" >> WriteShards(
            self._directory, "rejected", REJECTED_SCHEMA, self._output.target_shard_bytes,
            self._output.row_group_bytes, self._output.compression, self._output.compression_level,
            temp_dir=self._temp_dir)


def build_curation(p: beam.Pipeline, job: Job, files: list[InputFile]) -> None:
    """Wire the whole curation pipeline onto `p`."""
    run_dir = job.run_dir.rstrip("/")
    temp = f"{run_dir}/{TEMP_DIR}"
    tallies = [p | "CountInputFiles" >> beam.Create([{"input.files": len(files)}])]
    rejected = []
    config = job.input
    read = (
        p
        | "ListInputFiles" >> beam.Create(files)
        | "Read" >> ReadDocuments(config.text_field, config.html_field, config.url_field, config.date_field,
                                  config.reshuffle)
    )
    docs = read[KEPT]
    rejected.append(read[REJECTED])
    tallies.append(read[TALLY])
    for label, transform in (
        ("Decode", Decode(job.decode)),
        ("Extract", Extract(job.extract)),
        ("Repair", Repair(job.repair)),
        ("Language", IdentifyLanguage(job.language)),
        ("Quality", FilterQuality(job.quality)),
    ):
        out = docs | label >> transform
        docs = out[KEPT]
        rejected.append(out[REJECTED])
        tallies.append(out[TALLY])
    output = job.output
    dedup = docs | "Dedup" >> Deduplicate(job.dedup, temp_dir=f"{temp}/dedup")
    docs = dedup.kept
    rejected.append(dedup.rejected)
    tallies.append(dedup.tally)
    if dedup.cluster_rows is not None:
        tallies.append(
            dedup.cluster_rows
            | "WriteClusters" >> WriteShards(f"{run_dir}/dedup/clusters.parquet", "clusters", CLUSTERS_SCHEMA,
                                             output.target_shard_bytes, output.row_group_bytes, output.compression,
                                             output.compression_level, temp_dir=f"{temp}/clusters"))
        dedup.report["tally"] = dedup.tally
        dedup.report | "DedupReport" >> WriteDedupReport(f"{run_dir}/dedup", job.job.name, job.dedup)
    if job.tokenizer.enabled:
        from pipeline.tokenize_stage import Tokenize, TrainTokenizer

        tokenizer_path = docs | "TrainTokenizer" >> TrainTokenizer(job.tokenizer, f"{run_dir}/tokenizer")
        tokens = docs | "Tokenize" >> Tokenize(
            job.tokenizer, f"{run_dir}/tokens", tokenizer_path, target_shard_bytes=output.target_shard_bytes,
            row_group_bytes=output.row_group_bytes, compression=output.compression,
            compression_level=output.compression_level, temp_dir=f"{temp}/tokens")
        tallies.append(tokens.tally)
    tallies.append(
        docs
        | "ToCuratedRows" >> beam.Map(curated_row)
        | "WriteCurated" >> WriteShards(f"{run_dir}/curated", "curated", CURATED_SCHEMA, output.target_shard_bytes,
                                        output.row_group_bytes, output.compression, output.compression_level,
                                        temp_dir=f"{temp}/curated")
    )
    if job.dead_letter.enabled:
        tallies.append(tuple(rejected) | "WriteRejected" >> WriteRejected(f"{run_dir}/rejected", job.dead_letter, job,
                                                                      f"{temp}/rejected"))
    tuple(tallies) | "MergeAllTallies" >> beam.Flatten() | "Stats" >> WriteStats(f"{run_dir}/stats.json", job.job.name)


def prepare_run_dir(job: Job, overwrite: bool) -> None:
    """Refuse to mix runs: an existing run directory is cleared only when asked to."""
    run_dir = job.run_dir.rstrip("/")
    existing = []
    for name in OUTPUT_NAMES:
        pattern = f"{run_dir}/{name}" + ("/**" if "." not in name else "")
        try:
            existing += [m.path for m in FileSystems.match([pattern])[0].metadata_list]
        except BeamIOError:
            continue
    if existing and not overwrite:
        raise ConfigError(f"job.output_dir: {run_dir!r} already holds a run; pass --overwrite to replace it")
    if existing:
        FileSystems.delete(existing)
    if _is_local(run_dir):
        os.makedirs(run_dir, exist_ok=True)


def run_curation(job: Job, extra_flags: Sequence[str] = (), overwrite: bool = False) -> dict:
    """Check inputs, write job.toml, run the pipeline to the end, and return stats.json's content."""
    return run_curation_pipeline(job, extra_flags, overwrite)[0]


def run_curation_pipeline(job: Job, extra_flags: Sequence[str] = (), overwrite: bool = False, wait: bool = True):
    """As `run_curation`, also returning Beam's PipelineResult (for its metrics).

    With `--dry_run` (DataflowRunner builds the job without submitting it) nothing is written
    and the stats are None; the result's `job` holds the built Dataflow job. With wait=False
    the job is submitted and not waited for (stats None): the pipeline writes stats.json itself.
    """
    files = match_inputs(job.input)
    flags = runner_flags(job, extra_flags)
    options = PipelineOptions(flags)
    dry_run = options.view_as(TestOptions).dry_run
    run_dir = job.run_dir.rstrip("/")
    if not dry_run:
        prepare_run_dir(job, overwrite)
        with FileSystems.create(f"{run_dir}/job.toml") as f:
            f.write(("# The resolved job, every default written out.\n" + job_toml(job)).encode())
    p = beam.Pipeline(runner=local_runner(options), options=options)
    build_curation(p, job, files)
    result = p.run()
    if dry_run or not wait:
        return None, result
    result.wait_until_finish()
    remove_tree(f"{run_dir}/{TEMP_DIR}")  # each writer removed its own spill files; this is the empty rest
    write_metrics(f"{run_dir}/metrics.json", result)
    return read_stats(run_dir), result


def write_metrics(path: str, result) -> None:
    """Beam's metrics in namespace winnow as the runner reports them: counters and distributions.

    Unlike stats.json, these come from the runner (and include timing-dependent figures such
    as each stage's worker memory), so they may differ between runners and runs.
    """
    from apache_beam.metrics.metric import MetricsFilter

    from pipeline.sinks import write_json

    try:
        found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except (NotImplementedError, AttributeError):  # a runner without metrics support
        return
    counters = {c.key.metric.name: c.committed if c.committed is not None else c.attempted
                for c in found["counters"]}
    distributions = {}
    for d in found["distributions"]:
        value = d.committed if d.committed is not None else d.attempted
        if value is not None and value.count:
            distributions[d.key.metric.name] = {"count": value.count, "min": value.min, "max": value.max,
                                                "mean": round(value.sum / value.count, 3)}
    write_json(path, {"counters": dict(sorted(counters.items())), "distributions": dict(sorted(distributions.items()))})


def read_stats(run_dir: str) -> dict:
    with FileSystems.open(f"{run_dir.rstrip('/')}/stats.json") as f:
        return json.loads(f.read())


__all__ = ["build_curation", "match_inputs", "run_curation", "run_curation_pipeline", "read_stats", "runner_flags"]

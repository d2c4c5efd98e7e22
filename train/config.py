"""Training jobs: TOML in, a frozen `TrainJob` out, every key checked before any process starts."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from model.config import PRESETS
from pipeline.configfile import parse_file_table, read_toml, to_table


def _positive(section: Any, *names: str) -> None:
    for name in names:
        if getattr(section, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(section, name)}")


def _not_negative(section: Any, *names: str) -> None:
    for name in names:
        if getattr(section, name) < 0:
            raise ValueError(f"{name} must be 0 or more, got {getattr(section, name)}")


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    name: str  # a label for the run
    output_dir: str  # the run directory: job.toml, metrics.jsonl, checkpoints/ and model/ go here


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    path: str  # token directory (manifest.json + Parquet shards): local, gs://, s3://
    seq_len: int = 512  # tokens per training sequence; each read is seq_len + 1 for the shifted targets
    batch_size: int = 8  # sequences per rank per micro-batch
    workers: int = 1  # DataLoader worker processes per rank; 0 reads in the training process
    shuffle_buffer: int = 1024  # documents held and shuffled at a time (bounds loader memory)
    seed: int = 0  # shuffles the unit order each epoch and every shuffle buffer

    def __post_init__(self):
        _positive(self, "seq_len", "batch_size", "shuffle_buffer")
        _not_negative(self, "workers")


@dataclass(frozen=True, kw_only=True)
class ModelSection:
    preset: str = ""  # a name from model.PRESETS; the vocabulary size comes from the token manifest
    init_from: str = ""  # or: start from a model directory (model.json) or a Hugging Face Llama export
    # Preset fields to replace, e.g. max_seq_len = 1024 or tie_embeddings = false.
    overrides: Mapping[str, int | float | bool] = field(default_factory=dict)

    def __post_init__(self):
        if bool(self.preset) == bool(self.init_from):
            raise ValueError("set exactly one of preset (a new model) and init_from (a saved model)")
        if self.preset and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if self.init_from and self.overrides:
            raise ValueError("overrides apply to a preset; a model from init_from keeps its saved shape")


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    steps: int  # optimizer steps in the whole run (a resumed run continues up to this)
    grad_accum: int = 1  # micro-batches per optimizer step
    seed: int = 0  # weight initialisation

    def __post_init__(self):
        _positive(self, "steps", "grad_accum")


@dataclass(frozen=True, kw_only=True)
class OptimizerConfig:
    lr: float = 3e-4  # peak learning rate, reached after warm-up
    min_lr: float = 3e-5  # the cosine schedule ends here at the last step
    warmup_steps: int = 100  # linear warm-up from 0
    weight_decay: float = 0.1  # AdamW decay, on 2-D weights only (not norms)
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 turns clipping off

    def __post_init__(self):
        if not self.lr > 0 or not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1) or self.eps <= 0:
            raise ValueError("beta1 and beta2 must lie in [0, 1) and eps must be > 0")
        _not_negative(self, "warmup_steps", "weight_decay", "grad_clip")


@dataclass(frozen=True, kw_only=True)
class ParallelConfig:
    processes: int = 1  # processes per node that `winnow train` starts (torchrun --nproc_per_node)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when there is one
    # auto: bf16 parameters with fp32 gradient reduction on CUDA, fp32 throughout on CPU.
    mixed_precision: Literal["auto", "bf16", "fp32"] = "auto"
    # full: recompute each block in backward; selective: keep matmul and attention outputs, recompute the rest.
    activation_checkpointing: Literal["none", "full", "selective"] = "none"
    compile: bool = False  # torch.compile each transformer block

    def __post_init__(self):
        _positive(self, "processes")


@dataclass(frozen=True, kw_only=True)
class CheckpointConfig:
    every: int = 1000  # steps between checkpoints; the last step always writes one; 0: only the last
    keep: int = 2  # complete checkpoints kept; older ones are deleted
    resume: bool = True  # start from the newest complete checkpoint in output_dir/checkpoints

    def __post_init__(self):
        _not_negative(self, "every")
        _positive(self, "keep")


@dataclass(frozen=True, kw_only=True)
class MetricsConfig:
    every: int = 10  # steps between metrics lines (metrics.jsonl and the progress bar)
    # Peak FLOP/s of one device for MFU; 0 looks the device up (known GPUs), and MFU is left out otherwise.
    peak_flops: float = 0.0
    tensorboard: bool = False  # also write TensorBoard events to output_dir/tensorboard, if installed
    progress: bool = True  # a progress bar on rank 0

    def __post_init__(self):
        _positive(self, "every")
        _not_negative(self, "peak_flops")


@dataclass(frozen=True, kw_only=True)
class ValidationConfig:
    every: int = 0  # steps between validation passes; 0: never
    batches: int = 8  # batches per rank in each pass, the same ones every time
    path: str = ""  # a token directory to validate on; empty holds out the last shard of data.path

    def __post_init__(self):
        _not_negative(self, "every")
        _positive(self, "batches")


@dataclass(frozen=True, kw_only=True)
class TrainJob:
    job: RunInfo
    data: DataConfig
    model: ModelSection
    train: TrainingConfig
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self):
        if self.optimizer.warmup_steps > self.train.steps:
            raise ValueError(f"optimizer.warmup_steps={self.optimizer.warmup_steps} is more than "
                             f"train.steps={self.train.steps}")

    @property
    def run_dir(self) -> str:
        return self.job.output_dir


def parse_train_job(table: Mapping[str, Any], source: str) -> TrainJob:
    """Build a TrainJob from a parsed TOML table; errors are one line naming the file and key."""
    return parse_file_table(TrainJob, table, source)


def _absolute(path: str) -> str:
    return path if not path or "://" in path else os.path.abspath(path)


def resolve_paths(job: TrainJob) -> TrainJob:
    """Local paths become absolute (relative to the working directory), so every rank sees the same files."""
    return dataclasses.replace(
        job,
        job=dataclasses.replace(job.job, output_dir=_absolute(job.job.output_dir)),
        data=dataclasses.replace(job.data, path=_absolute(job.data.path)),
        model=dataclasses.replace(job.model, init_from=_absolute(job.model.init_from)),
        validation=dataclasses.replace(job.validation, path=_absolute(job.validation.path)),
    )


def load_train_job(path: str | os.PathLike) -> TrainJob:
    """Read and check a training job file; every problem is a one-line ConfigError."""
    path = Path(path)
    return resolve_paths(parse_train_job(read_toml(path), str(path)))


def train_job_toml(job: TrainJob) -> str:
    """The resolved job as TOML with every default written out: what a run directory records."""
    return tomli_w.dumps(to_table(job))

"""The training loop: process group, model, loaders, optimizer, checkpoints and metrics for one job.

Started once per process by torchrun (`python -m train JOB`). Every rank runs the same code
on its own slice of the data; FSDP2 shards parameters, gradients and optimizer state.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, set_model_state_dict
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from model.config import ModelConfig, ModelConfigError, flops_per_token, num_params, preset
from model.model_dir import CONFIG_FILE, build_from_state, read_model_config, save_model_dir
from model.transformer import Transformer
from train.checkpoint import CheckpointStore, rng_state, set_rng_state
from train.config import ParallelConfig, TrainJob, train_job_toml
from train.loader import PackedSequences, TokenLoader
from train.metrics import TRAIN, VALIDATION, MetricsSink, memory_gib, mfu, peak_flops
from train.optim import build_optimizer, learning_rate, set_learning_rate
from train.parallelize import parallelize
from train.shards import (
    TokenManifest,
    TokenShardError,
    hold_out,
    open_filesystem,
    read_manifest,
    row_group_sizes,
    split_units,
    whole_shards,
)
from train.step import evaluate, train_step

log = logging.getLogger(__name__)

MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"


class TrainSetupError(ValueError):
    """A job that cannot start training as written, in one line saying what to change."""


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    mesh: DeviceMesh

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(config: ParallelConfig) -> Distributed:
    """Join torchrun's process group (or make a group of one): nccl on CUDA, gloo on CPU."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise TrainSetupError("parallel.device = 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    use_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    if "RANK" not in os.environ:  # started without torchrun: a group of one
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(_free_port()))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        # gloo alongside nccl serves the few collectives on CPU tensors (checkpoint coordination).
        dist.init_process_group("cpu:gloo,cuda:nccl", device_id=device, timeout=timedelta(minutes=30))
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo", timeout=timedelta(minutes=30))
    rank, world = dist.get_rank(), dist.get_world_size()
    return Distributed(rank=rank, world_size=world, local_rank=local_rank, device=device,
                       mesh=init_device_mesh(device.type, (world,)))


def resolve_model_config(job: TrainJob, manifest: TokenManifest) -> ModelConfig:
    """The model's shape: a preset with the manifest's vocabulary, or the saved model's own."""
    vocab = manifest.tokenizer.vocab_size
    try:
        if job.model.preset:
            config = preset(job.model.preset, vocab_size=vocab, **dict(job.model.overrides))
        else:
            config = saved_model_config(Path(job.model.init_from))
    except ModelConfigError as error:
        raise TrainSetupError(f"model: {error}") from None
    if config.vocab_size < vocab:
        raise TrainSetupError(f"model.init_from: the model's vocab_size {config.vocab_size} is smaller than the "
                              f"tokenizer's {vocab} ({manifest.root}); train from a preset or re-tokenize")
    if job.data.seq_len > config.max_seq_len:
        raise TrainSetupError(f"data.seq_len={job.data.seq_len} exceeds the model's max_seq_len="
                              f"{config.max_seq_len}; lower seq_len or set [model.overrides] max_seq_len")
    return config


def saved_model_config(path: Path) -> ModelConfig:
    """The ModelConfig of a model directory (model.json) or a Hugging Face Llama export (config.json)."""
    from model.hf import HF_CONFIG_FILE, read_hf_config

    if (path / CONFIG_FILE).is_file():
        return read_model_config(path)
    if (path / HF_CONFIG_FILE).is_file():
        return read_hf_config(path)[0]
    raise TrainSetupError(f"model.init_from: {path} holds neither {CONFIG_FILE} (a model directory) nor "
                          f"{HF_CONFIG_FILE} (a Hugging Face export)")


def initial_state(job: TrainJob, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Full fp32 starting weights, made on one rank: the same for any number of ranks."""
    if job.model.init_from:
        from model.hf import open_model_dir

        return open_model_dir(job.model.init_from, device="cpu", dtype=torch.float32).model.state_dict()
    torch.manual_seed(job.train.seed)
    with torch.device("meta"):
        model = Transformer(config)
    model.to_empty(device="cpu")
    model.init_weights()
    return model.state_dict()


def build_model(job: TrainJob, config: ModelConfig, env: Distributed) -> nn.Module:
    """Build on the meta device, parallelise, materialise, then fill from rank 0's starting weights."""
    with torch.device("meta"):
        model = Transformer(config)
    parallelize(model, job.parallel, env.device, env.mesh)
    model.to_empty(device=env.device)
    state = initial_state(job, config) if env.is_main else {}
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    model.init_rope()
    model.train()
    return model


def mean_over_ranks(value: torch.Tensor) -> float:
    value = value.detach().clone()
    dist.all_reduce(value)
    return value.item() / dist.get_world_size()


def local_tokenizer(manifest: TokenManifest) -> Path:
    """The manifest's tokenizer.json as a local file (copied from a remote store), its hash checked."""
    source = manifest.tokenizer_path
    fs, path = open_filesystem(source)
    try:
        with fs.open_input_stream(path) as stream:
            data = stream.read()
    except (FileNotFoundError, OSError) as error:
        raise TokenShardError(f"{source}: the manifest's tokenizer cannot be read ({error}); the final model "
                              f"directory needs it") from None
    expected = manifest.tokenizer.sha256
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise TokenShardError(f"{source}: sha256 differs from the manifest's; the tokenizer changed after the "
                              f"shards were written, so token ids would not match it")
    if "://" not in source:
        return Path(source)
    local = Path(tempfile.mkdtemp(prefix="winnow-tokenizer-")) / "tokenizer.json"
    local.write_bytes(data)
    return local


class Trainer:
    """Runs one job on this process's rank, resuming from the newest complete checkpoint."""

    def __init__(self, job: TrainJob, env: Distributed) -> None:
        if "://" in job.run_dir:
            raise TrainSetupError(f"job.output_dir = {job.run_dir!r}: checkpoints are written with DCP's file "
                                  f"writer; use a local or mounted directory")
        self.job = job
        self.env = env
        data = job.data
        self.manifest = read_manifest(data.path)
        self.tokenizer_file = local_tokenizer(self.manifest)
        self.model_config = resolve_model_config(job, self.manifest)
        vocab = self.model_config.vocab_size

        if job.validation.every and job.validation.path:
            train_ranges = whole_shards(self.manifest)
            val_manifest = read_manifest(job.validation.path)
            val_ranges = whole_shards(val_manifest)
            if val_manifest.tokenizer.sha256 != self.manifest.tokenizer.sha256:
                raise TokenShardError(f"validation.path: {val_manifest.root} was tokenized with another tokenizer "
                                      f"than {self.manifest.root}; validate on shards from the same tokenizer")
        elif job.validation.every:
            train_ranges, val_ranges = hold_out(self.manifest)
            val_manifest = self.manifest
        else:
            train_ranges, val_ranges, val_manifest = whole_shards(self.manifest), [], None
        slots = env.world_size * max(1, data.workers)
        units = split_units(train_ranges, slots, lambda s: row_group_sizes(self.manifest.shards[s]))
        self.loader = TokenLoader(
            PackedSequences(self.manifest, units, seq_len=data.seq_len, vocab_size=vocab, rank=env.rank,
                            world_size=env.world_size, workers=data.workers, seed=data.seed,
                            shuffle_buffer=data.shuffle_buffer),
            data.batch_size, pin_memory=env.device.type == "cuda")
        self.validation_data = None
        if job.validation.every and val_ranges:
            val_units = split_units(val_ranges, env.world_size, lambda s: row_group_sizes(val_manifest.shards[s]))
            self.validation_data = PackedSequences(val_manifest, val_units, seq_len=data.seq_len, vocab_size=vocab,
                                                   rank=env.rank, world_size=env.world_size, shuffle=False)

        self.model = build_model(job, self.model_config, env)
        self.optimizer = build_optimizer(self.model, job.optimizer, env.device)
        self.checkpoints = CheckpointStore(Path(job.run_dir) / CHECKPOINT_DIR, job.checkpoint.keep)
        self.step = 0
        self.tokens_seen = 0
        self.tokens_per_step = data.batch_size * data.seq_len * job.train.grad_accum * env.world_size
        self.flops_per_token = flops_per_token(self.model_config, data.seq_len)
        self.peak = peak_flops(env.device, job.metrics.peak_flops)

    def resume(self) -> None:
        latest = self.checkpoints.latest() if self.job.checkpoint.resume else None
        if latest is None:
            return
        train_state, rank_state = self.checkpoints.load(latest, self.model, self.optimizer)
        self.loader.load_state_dict(rank_state["loader"])
        set_rng_state(rank_state["rng"])
        self.step = int(train_state["step"])
        self.tokens_seen = int(train_state.get("tokens", 0))
        log.info("resumed from %s at step %d", latest.path, self.step)

    def save_checkpoint(self) -> None:
        self.checkpoints.save(
            self.step, self.model, self.optimizer,
            train_state={"step": self.step, "tokens": self.tokens_seen},
            rank_state={"loader": self.loader.state_dict(), "rng": rng_state()},
            job_toml=train_job_toml(self.job),
            marker={"world_size": self.env.world_size, "workers": self.job.data.workers})

    def validate(self) -> float:
        batches = itertools.islice(iter(TokenLoader(self.validation_data, self.job.data.batch_size)),
                                   self.job.validation.batches)
        self.model.eval()
        try:
            return mean_over_ranks(evaluate(self.model, batches, self.env.device))
        finally:
            self.model.train()

    def write_model_dir(self) -> Path:
        """The final weights as a model directory (`winnow generate --checkpoint RUN/model`)."""
        state = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        out = Path(self.job.run_dir) / MODEL_DIR
        if self.env.is_main:
            model = build_from_state(self.model_config, state, source=out)
            save_model_dir(out, model, self.tokenizer_file)
            log.info("model directory written to %s", out)
        dist.barrier()
        return out

    def run(self) -> None:
        job, env = self.job, self.env
        run_dir = Path(job.run_dir)
        if env.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "job.toml").write_text(train_job_toml(job))
            log.info("model: %s, %s parameters; %d ranks on %s; %s tokens per step",
                     job.model.preset or job.model.init_from, f"{num_params(self.model_config):,}",
                     env.world_size, env.device.type, f"{self.tokens_per_step:,}")
        self.resume()
        sink = MetricsSink(run_dir, enabled=env.is_main, total_steps=job.train.steps, start_step=self.step,
                           progress=job.metrics.progress, tensorboard=job.metrics.tensorboard)
        try:
            self._loop(sink)
        finally:
            sink.close()
        latest = self.checkpoints.latest()
        if latest is None or latest.step < self.step:
            self.save_checkpoint()
        self.write_model_dir()

    def _loop(self, sink: MetricsSink) -> None:
        job, env = self.job, self.env
        batches = iter(self.loader)
        window_loss, window_steps = torch.zeros((), device=env.device), 0
        window_start, paused = time.perf_counter(), 0.0  # paused: validation and checkpoint time
        while self.step < job.train.steps:
            self.step += 1
            lr = learning_rate(self.step, job.optimizer, job.train.steps)
            set_learning_rate(self.optimizer, lr)
            micro = [next(batches) for _ in range(job.train.grad_accum)]
            loss, grad_norm = train_step(self.model, self.optimizer, micro, grad_clip=job.optimizer.grad_clip,
                                         device=env.device)
            self.tokens_seen += self.tokens_per_step
            window_loss += loss
            window_steps += 1
            if self.step % job.metrics.every == 0 or self.step == job.train.steps:
                if env.device.type == "cuda":
                    torch.cuda.synchronize(env.device)
                elapsed = time.perf_counter() - window_start - paused
                tokens_per_s = self.tokens_per_step * window_steps / elapsed
                record = {"kind": TRAIN, "step": self.step, "loss": mean_over_ranks(window_loss / window_steps),
                          "lr": lr, "grad_norm": grad_norm.item(), "tokens": self.tokens_seen,
                          "tokens_per_s": tokens_per_s, "tokens_per_s_per_device": tokens_per_s / env.world_size,
                          "step_time_s": elapsed / window_steps, **memory_gib(env.device)}
                utilisation = mfu(tokens_per_s, self.flops_per_token, self.peak, env.world_size)
                if utilisation is not None:
                    record["mfu"] = utilisation
                sink.write(record)
                window_loss.zero_()
                window_steps, window_start, paused = 0, time.perf_counter(), 0.0
            else:
                sink.advance(self.step)
            started = time.perf_counter()
            if self.validation_data is not None and self.step % job.validation.every == 0:
                sink.write({"kind": VALIDATION, "step": self.step, "loss": self.validate()})
            if job.checkpoint.every and self.step % job.checkpoint.every == 0:
                self.save_checkpoint()
            paused += time.perf_counter() - started


def run_job(job: TrainJob) -> None:
    """Train `job` on this process's rank; every process of the group calls this."""
    env = init_distributed(job.parallel)
    try:
        if not env.is_main:
            logging.getLogger().setLevel(logging.WARNING)
        Trainer(job, env).run()
    finally:
        dist.destroy_process_group()


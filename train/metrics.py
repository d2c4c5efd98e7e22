"""Training metrics: throughput and MFU arithmetic, memory, and where the numbers go.

Rank 0 appends one JSON object per line to `metrics.jsonl` (kind `train` or `validation`),
shows a progress bar and, when asked and installed, writes TensorBoard events.
"""

from __future__ import annotations

import json
import logging
import os
import resource
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
TRAIN = "train"
VALIDATION = "validation"

# Dense bf16 tensor-core peaks from the vendors' datasheets, in FLOP/s per device. Matched
# against torch.cuda.get_device_name() in this order, so the more specific names come first.
PEAK_FLOPS_BF16: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
)


def peak_flops(device: torch.device, configured: float) -> float | None:
    """Peak FLOP/s of one device: the job's figure, else the table for known GPUs, else None."""
    if configured > 0:
        return configured
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_FLOPS_BF16:
        if key in name:
            return flops
    log.warning("no peak FLOP/s known for %r; set metrics.peak_flops to report MFU", name)
    return None


def mfu(tokens_per_second: float, flops_per_token: float, peak: float | None, devices: int) -> float | None:
    """Model FLOPs utilisation: achieved training FLOP/s over the peak of all devices together."""
    if peak is None or peak <= 0:
        return None
    return tokens_per_second * flops_per_token / (peak * devices)


def memory_gib(device: torch.device) -> dict[str, float]:
    """Peak memory since the last call: GPU allocator figures on CUDA, the process's resident set on CPU."""
    if device.type == "cuda":
        stats = {"memory_gib": torch.cuda.max_memory_allocated(device) / 2**30,
                 "memory_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30}
        torch.cuda.reset_peak_memory_stats(device)
        return stats
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return {"memory_gib": resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**30,
            "memory_peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


class MetricsSink:
    """Where rank 0's metrics go: metrics.jsonl, the log, a progress bar and optional TensorBoard."""

    def __init__(self, run_dir: str | Path, *, enabled: bool, total_steps: int, start_step: int,
                 progress: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self._progress = None
        self._task = None
        self._tensorboard = None
        self._file = None
        if not enabled:
            return
        self._file = open(Path(run_dir) / METRICS_FILE, "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning("metrics.tensorboard is on but the tensorboard package is not installed; "
                            "writing metrics.jsonl only (pip install tensorboard)")
            else:
                self._tensorboard = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                      TimeRemainingColumn(), TextColumn("{task.fields[summary]}"))
            self._task = self._progress.add_task("train", total=total_steps, completed=start_step, summary="")
            self._progress.start()

    def write(self, record: dict[str, Any]) -> None:
        """Record one metrics line; `record` has `kind` and `step`."""
        if not self.enabled:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        log.info(" ".join(f"{k}={_short(v)}" for k, v in record.items()))
        if self._tensorboard is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self._tensorboard.add_scalar(f"{record['kind']}/{key}", value, record["step"])
        if self._progress is not None and record["kind"] == TRAIN:
            summary = f"loss {record['loss']:.4f}  {record['tokens_per_s']:,.0f} tok/s  lr {record['lr']:.2e}"
            self._progress.update(self._task, completed=record["step"], summary=summary)

    def advance(self, step: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._file is not None:
            self._file.close()


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

"""Peak resident memory of a process tree, sampled from /proc (Linux), grouped by role."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text()
            kids += [int(x) for x in text.split()]
    except OSError:
        pass
    return kids


def _tree(root: int) -> list[int]:
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo += _children(pid)
    return seen


def _status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        return None
    return None


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class TreeMemory:
    """Polls a process tree; `peaks` maps each pid seen to (role, peak RSS in MiB), `cpu` to (role, CPU seconds).

    CPU seconds are as last seen, up to one interval before a process exits.
    """

    def __init__(self, root: int, classify: Callable[[int, str], str], interval: float = 0.2,
                 phase: Callable[[], str] = lambda: "all"):
        self._root = root
        self._classify = classify
        self._interval = interval
        self._phase = phase
        self.peaks: dict[int, tuple[str, float]] = {}
        # Current resident size per (role, phase): VmHWM cannot tell phases apart, VmRSS can.
        self.phase_peaks: dict[tuple[str, str], float] = {}
        self.cpu: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            phase = self._phase()
            for pid in _tree(self._root):
                peak = _status_kib(pid, "VmHWM:")
                rss = _status_kib(pid, "VmRSS:")
                if peak is None or rss is None:
                    continue
                role = self.peaks.get(pid, (None, 0))[0] or self._classify(pid, _cmdline(pid))
                self.peaks[pid] = (role, max(peak / 1024, self.peaks.get(pid, (role, 0.0))[1]))
                cpu = _cpu_seconds(pid)
                if cpu is not None:
                    self.cpu[pid] = (role, cpu)
                key = (role, phase)
                self.phase_peaks[key] = max(self.phase_peaks.get(key, 0.0), rss / 1024)
            time.sleep(self._interval)

    def max_by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for role, peak in self.peaks.values():
            out[role] = max(out.get(role, 0.0), peak)
        return out

    def cpu_by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for role, seconds in self.cpu.values():
            out[role] = out.get(role, 0.0) + seconds
        return out


def classify_beam(pid: int, cmdline: str, root: int | None = None) -> str:
    """Roles in a local Beam run: the runner (driver), SDK harness workers, extractor children."""
    if "pipeline.extract" in cmdline:
        return "extractor"
    if "sdk_worker_main" in cmdline or "worker_pool_main" in cmdline or "sdk_worker" in cmdline:
        return "sdk_worker"
    if root is not None and pid == root:
        return "runner"
    return "runner" if "winnow" in cmdline or "pipeline.cli" in cmdline else "other"


__all__ = ["TreeMemory", "classify_beam", "os"]

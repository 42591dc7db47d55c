"""Wall time and peak memory of a command, its children included."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil


@dataclass
class Measurement:
    seconds: float
    peak_rss_bytes: int
    returncode: int

    @property
    def peak_gib(self) -> float:
        return self.peak_rss_bytes / 2**30


def tree_rss(proc: psutil.Process, exclude: Callable[[list[str]], bool] | None = None) -> int:
    """Summed RSS of `proc` and its descendants, less those whose command line `exclude` picks."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            if exclude is None or not exclude(p.cmdline()):
                total += p.memory_info().rss
    return total


def run_measured(
    cmd: list[str], interval: float = 0.2, exclude: Callable[[list[str]], bool] | None = None, **popen_kwargs
) -> Measurement:
    """Run `cmd`, sampling the summed RSS of it and all its children (a parallel generator's
    workers count too: that is what the machine has to hold), less the processes `exclude`
    picks by command line (a server standing in for a vendor, say)."""
    started = time.perf_counter()
    child = subprocess.Popen(cmd, **popen_kwargs)
    proc = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, tree_rss(proc, exclude))
        time.sleep(interval)
    return Measurement(time.perf_counter() - started, peak, child.returncode)

"""Wall time and peak memory of a command, its children included."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil


@dataclass
class Sample:
    """One look at the process tree: when (epoch seconds) and each process's RSS by its label."""

    at: float
    processes: list[tuple[str, int]]

    @property
    def total(self) -> int:
        return sum(rss for _, rss in self.processes)


@dataclass
class Measurement:
    seconds: float
    peak_rss_bytes: int
    returncode: int
    peak: Sample | None = None
    # Every sample, kept only when asked for (a timeline lets a caller find which step peaked).
    samples: list[Sample] = field(default_factory=list)

    @property
    def peak_gib(self) -> float:
        return self.peak_rss_bytes / 2**30


def process_label(cmdline: list[str]) -> str:
    """A short name for a process: `python -m orchestration.demo`, `dbt build`, `duckdb`."""
    words = [os.path.basename(cmdline[0])] if cmdline else ["?"]
    for i, arg in enumerate(cmdline[1:], start=1):
        if arg == "-m" and i + 1 < len(cmdline):
            return f"{words[0]} -m {cmdline[i + 1]}"
        if not arg.startswith("-"):
            words.append(os.path.basename(arg))
            if len(words) == 3:
                break
    if words[0].startswith("python") and len(words) > 1:
        words = words[1:]  # `python .../dbt build` is dbt
    return " ".join(words)


def tree_processes(proc: psutil.Process, exclude: Callable[[list[str]], bool] | None = None) -> list[tuple[str, int]]:
    """(label, RSS) of `proc` and each descendant, less those whose command line `exclude` picks."""
    found = []
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            cmdline = p.cmdline()
            if exclude is None or not exclude(cmdline):
                found.append((process_label(cmdline), p.memory_info().rss))
    return found


def tree_rss(proc: psutil.Process, exclude: Callable[[list[str]], bool] | None = None) -> int:
    """Summed RSS of `proc` and its descendants, less those whose command line `exclude` picks."""
    return sum(rss for _, rss in tree_processes(proc, exclude))


def run_measured(
    cmd: list[str],
    interval: float = 0.2,
    exclude: Callable[[list[str]], bool] | None = None,
    keep_samples: bool = False,
    **popen_kwargs,
) -> Measurement:
    """Run `cmd`, sampling the summed RSS of it and all its children (a parallel generator's
    workers count too: that is what the machine has to hold), less the processes `exclude`
    picks by command line (a server standing in for a vendor, say). `keep_samples` keeps the
    whole timeline, not just the peak."""
    started = time.perf_counter()
    child = subprocess.Popen(cmd, **popen_kwargs)
    proc = psutil.Process(child.pid)
    peak: Sample | None = None
    samples: list[Sample] = []
    while child.poll() is None:
        with contextlib.suppress(psutil.Error):
            sample = Sample(time.time(), tree_processes(proc, exclude))
            if keep_samples:
                samples.append(sample)
            if peak is None or sample.total > peak.total:
                peak = sample
        time.sleep(interval)
    return Measurement(
        time.perf_counter() - started, peak.total if peak else 0, child.returncode, peak=peak, samples=samples
    )

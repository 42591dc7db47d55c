"""Sandbox world benchmark: generation time and memory, and the server's streamed export.

Targets (issue: foundation): the default demo world generates in seconds; a world of 1M
customers (tens of millions of events) in under 10 minutes with under 4 GB peak memory; the
server streams a large Mixpanel export without holding it in memory. Each is judged on its own
line: the demo world (3,000 customers) in under a minute; the large world (`--customers`, judged
at 1M or more) on its time and the peak memory of the generator and its workers; the export (of
the large world, judged from 4 GiB streamed) on how much the server's memory grows while it
streams every event: under a tenth of what it streamed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import psutil
import requests

from benchmarks.measure import run_measured, tree_rss

DEMO_CUSTOMERS = 3000
# "In seconds": under a minute, i.e. not a wait counted in minutes.
DEMO_TARGET_SECONDS = 60
GEN_TARGET_CUSTOMERS = 1_000_000
GEN_TARGET_SECONDS = 600
GEN_TARGET_GIB = 4.0
# "Without holding it in memory": a server that held the export would grow by at least its
# size; one that streams it grows by its working set (a batch, DuckDB's buffers), a small
# share of a large export.
STREAM_TARGET_SHARE = 0.1
# That working set is a few hundred MiB whatever the size (about 190 MiB streaming 800 MiB):
# a smaller export than this could be held whole inside it, so streaming and holding look alike.
STREAM_JUDGED_MIB = 4096
# How often the server's memory is sampled during the export: often enough to catch a peak
# between two chunks, rarely enough not to slow the client it shares the machine with.
SAMPLE_SECONDS = 0.05


def _generate(customers: int, out: Path) -> dict:
    m = run_measured(
        [sys.executable, "-m", "sandbox", "generate", "--seed", "1", "--customers", str(customers), "--out", str(out)],
        stderr=subprocess.DEVNULL,
    )
    if m.returncode:
        raise SystemExit(f"generation of {customers:,} customers failed with exit code {m.returncode}")
    con = duckdb.connect()
    events = con.execute(f"SELECT count(*) FROM read_parquet('{out}/store/mixpanel_events.parquet')").fetchall()[0][0]
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {
        "customers": customers,
        "events": events,
        "seconds": round(m.seconds, 1),
        "peak_gib": round(m.peak_gib, 2),
        "world_gib": round(size / 2**30, 2),
    }


class PeakSampler:
    """The highest value `measure` returns, sampled by a thread every `interval` seconds while
    the `with` block runs, and once at each end: a sample per interval, not per line count,
    so the peak does not depend on where the chunks' line counts fall."""

    def __init__(self, measure: Callable[[], int], interval: float = SAMPLE_SECONDS) -> None:
        self._measure = measure
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.peak = 0

    def _sample(self) -> None:
        # the process may be between children (or gone at the very end): skip that sample
        with contextlib.suppress(psutil.Error):
            self.peak = max(self.peak, self._measure())

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> PeakSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _export(world: Path) -> dict:
    """Stream every event through the Mixpanel export and watch the server's memory."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--world", str(world), "--port", str(port)],
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                requests.get(f"{url}/_sandbox/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        meta = json.loads((world / "world.json").read_text())
        creds = meta["credentials"]["mixpanel"]
        proc = psutil.Process(server.pid)
        idle = tree_rss(proc)
        started = time.perf_counter()
        lines = nbytes = 0
        with (
            PeakSampler(lambda: tree_rss(proc)) as sampler,
            requests.get(
                f"{url}/mixpanel/api/2.0/export",
                stream=True,
                timeout=600,
                auth=(creds["service_account_username"], creds["service_account_secret"]),
                params={
                    "project_id": creds["project_id"],
                    "from_date": meta["start"][:10],
                    "to_date": meta["clock"][:10],
                },
            ) as resp,
        ):
            resp.raise_for_status()
            for chunk in resp.iter_content(chunk_size=1 << 20):
                nbytes += len(chunk)
                lines += chunk.count(b"\n")
        seconds = time.perf_counter() - started
        peak = sampler.peak
        return {
            "events": lines,
            "seconds": round(seconds, 1),
            "events_per_s": round(lines / seconds),
            "mb_per_s": round(nbytes / seconds / 2**20, 1),
            "streamed_mib": round(nbytes / 2**20, 1),
            "server_idle_gib": round(idle / 2**30, 2),
            "server_peak_gib": round(peak / 2**30, 2),
            "server_growth_mib": round(max(0, peak - idle) / 2**20, 1),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def demo_verdict(demo: dict) -> str:
    return _verdict(demo["seconds"] < DEMO_TARGET_SECONDS)


def large_verdict(big: dict) -> str:
    if big["customers"] < GEN_TARGET_CUSTOMERS:
        return f"n/a (the target is for {GEN_TARGET_CUSTOMERS:,} customers)"
    return _verdict(big["seconds"] <= GEN_TARGET_SECONDS and big["peak_gib"] <= GEN_TARGET_GIB)


def stream_verdict(export: dict) -> str:
    if export["streamed_mib"] < STREAM_JUDGED_MIB:
        return f"n/a (under {STREAM_JUDGED_MIB:,} MiB streamed, too small to tell)"
    return _verdict(export["server_growth_mib"] < STREAM_TARGET_SHARE * export["streamed_mib"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sandbox_world", description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000, help="size of the large world (default 1M)")
    parser.add_argument("--keep", type=Path, help="keep the large world in this directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        demo = _generate(DEMO_CUSTOMERS, Path(tmp) / "demo")
        print(f"demo world: {demo} -> target < {DEMO_TARGET_SECONDS}s: {demo_verdict(demo)}")
        big_dir = args.keep or Path(tmp) / "big"
        big = _generate(args.customers, big_dir)
        print(f"large world: {big} -> target {GEN_TARGET_SECONDS}s / {GEN_TARGET_GIB} GiB: {large_verdict(big)}")
        export = _export(big_dir)
        print(
            f"export of every visible event: {export} -> target server growth < {STREAM_TARGET_SHARE:.0%} "
            f"of the MiB streamed: {stream_verdict(export)}"
        )
    # As every benchmark here: the verdicts are printed, and the exit status only says whether
    # the run completed (a failed step exits non-zero on its own).
    return 0


if __name__ == "__main__":
    sys.exit(main())

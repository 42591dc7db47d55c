"""Sandbox world benchmark: generation time and memory, and the server's streamed export.

Targets (issue: foundation): the default demo world generates in seconds; a world of 1M
customers (tens of millions of events) in under 10 minutes with under 4 GB peak memory; the
server streams a large Mixpanel export without holding it in memory.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import psutil
import requests

from benchmarks.measure import run_measured, tree_rss

GEN_TARGET_SECONDS = 600
GEN_TARGET_GIB = 4.0


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
        lines = nbytes = peak = 0
        with requests.get(
            f"{url}/mixpanel/api/2.0/export",
            stream=True,
            timeout=600,
            auth=(creds["service_account_username"], creds["service_account_secret"]),
            params={"project_id": creds["project_id"], "from_date": meta["start"][:10], "to_date": meta["clock"][:10]},
        ) as resp:
            resp.raise_for_status()
            for chunk in resp.iter_content(chunk_size=1 << 20):
                nbytes += len(chunk)
                lines += chunk.count(b"\n")
                if lines % 64 == 0:
                    peak = max(peak, tree_rss(proc))
        seconds = time.perf_counter() - started
        peak = max(peak, tree_rss(proc))
        return {
            "events": lines,
            "seconds": round(seconds, 1),
            "events_per_s": round(lines / seconds),
            "mb_per_s": round(nbytes / seconds / 2**20, 1),
            "server_idle_gib": round(idle / 2**30, 2),
            "server_peak_gib": round(peak / 2**30, 2),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sandbox_world", description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000, help="size of the large world (default 1M)")
    parser.add_argument("--keep", type=Path, help="keep the large world in this directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        demo = _generate(3000, Path(tmp) / "demo")
        print(f"demo world: {demo}")
        big_dir = args.keep or Path(tmp) / "big"
        big = _generate(args.customers, big_dir)
        ok = big["seconds"] <= GEN_TARGET_SECONDS and big["peak_gib"] <= GEN_TARGET_GIB
        print(f"large world: {big} -> target {GEN_TARGET_SECONDS}s / {GEN_TARGET_GIB} GiB: {'met' if ok else 'MISSED'}")
        export = _export(big_dir)
        print(f"export of every visible event: {export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

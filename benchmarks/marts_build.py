"""Marts build benchmark: every dbt model on a world of 1M customers, full and one night later.

Steps (each kept under `--keep DIR` and reused by the next run):
1. generate the sandbox world (`python -m sandbox generate`, at least one future day);
2. write its raw tables as of the world's clock straight from the world's store, in the shape
   the loaders give them (`benchmarks.marts_raw`: loading 1M customers through the vendor APIs
   takes hours, and this benchmark measures dbt, not the loaders);
3. **full build**: `dbt build --full-refresh` on a copy of that warehouse, "now" at the clock;
4. the world advances one day: the Mixpanel events received that day are appended and every
   other raw table takes its state one day later (what the nightly loads leave);
5. **incremental build**: `dbt build` with "now" one day later, reusing the full build's parse
   as the nightly reuses the previous night's.

Each dbt run is one process; its wall time and the peak summed RSS of it and its children
(`benchmarks.measure`) are reported, with the slowest models from dbt's `run_results.json` and
where the run's node time went: incremental models, models rebuilt whole (tables, views and the
Python stitch) and data tests, in seconds summed over dbt's threads. Only the first of these can
shrink with the size of a day; the other two are what a one-day run still costs.
Target (issue 5): the one-day incremental run takes under 15% of the full build.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import duckdb

from benchmarks.marts_raw import world_clock, write_raw
from benchmarks.measure import run_measured
from orchestration.defs.transform.dbt import DBT_NOW_ENV

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT = PROJECT_ROOT / "dbt_project"
TARGET_RATIO = 0.15
SLOWEST = 8
KINDS = ("incremental models", "models rebuilt whole", "data tests")
# DuckDB's memory cap as the nightly runs it: the project profile's default
# (dbt_project/profiles.yml), or TESSERA_DUCKDB_MEMORY_LIMIT when set.
MEMORY_LIMIT = os.environ.get("TESSERA_DUCKDB_MEMORY_LIMIT", "6GB")


def _world(directory: Path, seed: int, customers: int, days: int) -> Path:
    world = directory / "world"
    meta = world / "world.json"
    if meta.exists():
        found = json.loads(meta.read_text())
        if (found["seed"], found["customers"], found["days"]) == (seed, customers, days):
            return world
        shutil.rmtree(world)
    subprocess.run(
        [sys.executable, "-m", "sandbox", "generate", "--seed", str(seed), "--customers", str(customers)]
        + ["--days", str(days), "--future-days", "2", "--out", str(world)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=PROJECT_ROOT,
    )
    return world


def _raw(directory: Path, world: Path) -> tuple[Path, float]:
    """The raw tables as of the world's clock, written once per world."""
    raw = directory / "raw.duckdb"
    stamp = directory / "raw.done"
    if stamp.exists() and stamp.read_text() == (world / "world.json").read_text():
        return raw, 0.0
    raw.unlink(missing_ok=True)
    started = time.perf_counter()
    with duckdb.connect(str(raw), config={"memory_limit": MEMORY_LIMIT}) as con:
        write_raw(con, world / "store", world_clock(world))
    stamp.write_text((world / "world.json").read_text())
    return raw, time.perf_counter() - started


def _slowest(results: list[dict]) -> list[tuple[str, float]]:
    models = [
        (r["unique_id"].split(".")[-1], r["execution_time"]) for r in results if r["unique_id"].startswith("model.")
    ]
    return [(name, round(seconds, 1)) for name, seconds in sorted(models, key=lambda m: -m[1])[:SLOWEST]]


def _time_by_kind(results: list[dict], manifest: Path) -> dict[str, float]:
    """Node seconds (summed over dbt's threads) of incremental models, models rebuilt whole
    and data tests, from the run's results and the materializations in dbt's manifest."""
    nodes = json.loads(manifest.read_text())["nodes"]
    spent = dict.fromkeys(KINDS, 0.0)
    for result in results:
        unique_id = result["unique_id"]
        if unique_id.startswith("test."):
            spent["data tests"] += result["execution_time"]
        elif unique_id.startswith("model."):
            incremental = nodes[unique_id]["config"]["materialized"] == "incremental"
            spent["incremental models" if incremental else "models rebuilt whole"] += result["execution_time"]
    return {kind: round(seconds, 1) for kind, seconds in spent.items()}


def _profiles(directory: Path, warehouse: Path) -> Path:
    """The project's profile with the warehouse and a memory limit spelled out."""
    profiles = directory / "profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "profiles.yml").write_text(
        "tessera:\n  target: benchmark\n  outputs:\n    benchmark:\n      type: duckdb\n"
        f"      path: {json.dumps(str(warehouse))}\n      threads: 2\n"
        f"      settings:\n        memory_limit: {MEMORY_LIMIT}\n"
    )
    return profiles


def _dbt_build(warehouse: Path, now: str, target: Path, full_refresh: bool) -> dict:
    """One dbt build as the nightly asset runs it: "now" from the environment and one target
    folder for the warehouse, so a night after the first reuses dbt's parse. The run's
    results and log are kept in `target`."""
    dbt = Path(sys.executable).with_name("dbt")
    profiles = _profiles(target.parent, warehouse)
    shared = target.parent / "dbt_target"
    # Unit tests belong to the test suite, not to a night's build.
    cmd = [str(dbt), "build", "--exclude-resource-type", "unit_test"]
    cmd += ["--project-dir", str(DBT_PROJECT), "--profiles-dir", str(profiles)]
    cmd += ["--target-path", str(shared), "--log-path", str(target / "logs")]
    if full_refresh:
        cmd.append("--full-refresh")
    env = {**os.environ, "TESSERA_WAREHOUSE": str(warehouse), "TESSERA_NOW": now, DBT_NOW_ENV: now}
    log = target / "build.log"
    target.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        m = run_measured(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
    if m.returncode:
        raise SystemExit(f"dbt build failed with exit code {m.returncode}; see {log}")
    shutil.copyfile(shared / "run_results.json", target / "run_results.json")
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {
        "seconds": round(m.seconds, 1),
        "peak_gib": round(m.peak_gib, 2),
        "slowest_models": _slowest(results),
        "node_seconds": _time_by_kind(results, shared / "manifest.json"),
    }


def run(directory: Path, seed: int, customers: int, days: int) -> dict:
    """Prepare (or reuse) the world and its raw tables under `directory`, then time both builds."""
    world = _world(directory, seed, customers, days)
    raw, raw_seconds = _raw(directory, world)
    clock = world_clock(world)
    next_day = clock + timedelta(days=1)
    warehouse = directory / "warehouse.duckdb"
    shutil.copyfile(raw, warehouse)
    full = _dbt_build(warehouse, clock.isoformat(), directory / "target-full", full_refresh=True)
    with duckdb.connect(str(warehouse), config={"memory_limit": MEMORY_LIMIT}) as con:
        next_rows = write_raw(con, world / "store", next_day, since=clock)
        events = next_rows["raw_mixpanel.events"]
    incremental = _dbt_build(warehouse, next_day.isoformat(), directory / "target-incremental", full_refresh=False)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        marts = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts'").fetchall()[
            0
        ][0]
        customers_built = con.execute("SELECT count(*) FROM marts.dim_customers").fetchall()[0][0]
    return {
        "customers": customers,
        "events": events,
        "raw_write_seconds": round(raw_seconds, 1),
        "marts": marts,
        "dim_customers_rows": customers_built,
        "full": full,
        "incremental": incremental,
        "ratio": round(incremental["seconds"] / full["seconds"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.marts_build", description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000, help="world size (default 1M)")
    parser.add_argument("--seed", type=int, default=1, help="world seed (default 1)")
    parser.add_argument("--days", type=int, default=90, help="days of history (default 90)")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the world and its raw warehouse in this directory")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        report = run(directory.resolve(), args.seed, args.customers, args.days)
    if args.json:
        print(json.dumps(report))
        return 0
    ok = report["ratio"] < TARGET_RATIO
    print(f"{report['customers']:,} customers, {report['events']:,} Mixpanel events after the extra day")
    for run_name in ("full", "incremental"):
        r = report[run_name]
        print(f"{run_name:>12}: {r['seconds']:8.1f} s  peak {r['peak_gib']:.2f} GiB  slowest {r['slowest_models']}")
        spent = ", ".join(f"{kind} {seconds:.1f} s" for kind, seconds in r["node_seconds"].items())
        print(f"{'':>12}  node time (summed over dbt's threads): {spent}")
    print(f"incremental / full = {report['ratio']:.1%} -> target {TARGET_RATIO:.0%}: {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

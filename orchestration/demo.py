"""`python -m orchestration.demo`: the whole pipeline against a sandbox shop, end to end.

Generates a world (unless one with the same seed and size is already there), serves it, runs
the nightly job in process and prints what landed in the warehouse, and how well the identity
map matches the world's truth. `--advance-days 1` on a later run plays the next night: the
world's clock moves a day and its new activity appears in the vendor APIs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from orchestration.paths import PROJECT_ROOT, data_dir


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port")


def _world_matches(world: Path, seed: int, customers: int, days: int) -> bool:
    meta_file = world / "world.json"
    if not meta_file.exists():
        return False
    meta = json.loads(meta_file.read_text())
    return (meta.get("seed"), meta.get("customers"), meta.get("days")) == (seed, customers, days)


def generate_world(world: Path, seed: int, customers: int, days: int, **run_options) -> None:
    """`python -m sandbox generate` into `world`: the world a later demo run reuses."""
    cmd = [sys.executable, "-m", "sandbox", "generate", "--seed", str(seed), "--customers", str(customers)]
    subprocess.run([*cmd, "--days", str(days), "--out", str(world)], check=True, **run_options)


#: Which demo process ran a run: a run whose process is gone never finishes by itself.
DEMO_PID_TAG = "tessera/demo_pid"
DEMO_HOST_TAG = "tessera/demo_host"


def release_abandoned_runs(instance) -> list[str]:
    """Mark failed the runs an earlier demo started on this machine and never finished (its
    process was killed mid-run), and free their warehouse pool slots: a run keeps its slot
    until it ends, so the next run would otherwise wait for it forever, saying nothing. Runs
    of live processes and of other launchers (the daemon's) are left alone. Returns the ids."""
    import dagster as dg
    import psutil

    unfinished = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)
    released = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=list(unfinished))):
        pid, host = run.tags.get(DEMO_PID_TAG), run.tags.get(DEMO_HOST_TAG)
        if pid is None or host != socket.gethostname() or psutil.pid_exists(int(pid)):
            continue
        reason = f"the demo process ({pid}) that ran it ended before the run did"
        instance.report_run_failed(run, reason)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        print(f"      run {run.run_id} was left unfinished: {reason}; marked failed, its pool slot freed")
        released.append(run.run_id)
    return released


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the sandbox server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_sandbox/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the sandbox server did not answer at {url} within {timeout:.0f}s")


def _advance(url: str, days: int) -> None:
    request = urllib.request.Request(
        f"{url}/_sandbox/clock/advance",
        data=json.dumps({"days": days}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            clock = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise
        # Past the world's horizon: the sandbox says where it ends; say it without a traceback.
        reason = json.loads(exc.read() or b"{}").get("error", "past the world's horizon")
        raise SystemExit(f"--advance-days {days}: {reason} (--regenerate with more --days)") from None
    print(f"      world clock moved {days} day(s), now {clock.get('clock', clock)}")


def _print_identity_scores(warehouse: Path, world: Path) -> None:
    from sandbox.identity_report import build

    scores = build(warehouse, world)["scores"]
    print(
        f"Identity map against the world's truth: precision {scores['precision']:.4f}, "
        f"recall {scores['recall_linkable']:.4f} of linkable pairs "
        "(details: python -m sandbox identity-report)"
    )


def _summary(warehouse: Path) -> list[tuple[str, int]]:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('information_schema', 'pg_catalog') "
            "AND table_schema NOT LIKE '%\\_staging' ESCAPE '\\' "
            "AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\' "
            "ORDER BY table_schema, table_name"
        ).fetchall()
        return [(f"{s}.{t}", con.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchall()[0][0]) for s, t in tables]
    finally:
        con.close()


def _slowest_steps(result, top: int = 8) -> str:
    """The run's slowest steps with their seconds: where a night's time goes."""
    seconds = {
        event.step_key: event.event_specific_data.duration_ms / 1000
        for event in result.all_events
        if event.is_step_success and event.step_key
    }
    slowest = sorted(seconds.items(), key=lambda item: -item[1])[:top]
    return ", ".join(f"{step} {s:.1f}s" for step, s in slowest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=42, help="sandbox world seed (default 42)")
    parser.add_argument("--customers", type=int, default=3000, help="people in the world (default 3000)")
    parser.add_argument("--days", type=int, default=90, help="days of history (default 90)")
    parser.add_argument("--port", type=int, default=8700, help="sandbox port, if free (default 8700)")
    parser.add_argument(
        "--regenerate",
        action="store_true",
        help="make a new world and an empty warehouse even if a matching world exists",
    )
    parser.add_argument(
        "--advance-days",
        type=int,
        default=0,
        help="move the world's clock forward this many days before the run: the next night(s) (default 0)",
    )
    args = parser.parse_args(argv)

    data = data_dir()
    world = data / "sandbox"
    data.mkdir(parents=True, exist_ok=True)
    if args.regenerate or not _world_matches(world, args.seed, args.customers, args.days):
        for stale in (world, data / "warehouse.duckdb", data / "dlt"):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
        print(f"[1/4] Generating sandbox world (seed {args.seed}, {args.customers:,} customers, {args.days} days)")
        generate_world(world, args.seed, args.customers, args.days)
    else:
        print(f"[1/4] Reusing the sandbox world in {world} (same seed and size; --regenerate for a new one)")

    port = _free_port(args.port)
    url = f"http://127.0.0.1:{port}"
    print(f"[2/4] Starting the sandbox vendor APIs on {url}")
    server = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--world", str(world), "--port", str(port)], cwd=PROJECT_ROOT
    )
    try:
        _wait_healthy(url, server)
        if args.advance_days:
            _advance(url, args.advance_days)
        from sandbox.env import sandbox_env

        os.environ.update(sandbox_env(url, world))
        os.environ["TESSERA_DATA_DIR"] = str(data)
        home = data / "dagster_home"
        home.mkdir(exist_ok=True)
        shutil.copy(PROJECT_ROOT / "orchestration" / "dagster.yaml", home / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(home)

        print("[3/4] Running the nightly job (load -> staging -> marts)")
        import dagster as dg

        from orchestration.definitions import defs

        started = time.perf_counter()
        with dg.DagsterInstance.get() as instance:
            release_abandoned_runs(instance)
            result = defs.resolve_job_def("nightly").execute_in_process(
                instance=instance,
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
                tags={DEMO_PID_TAG: str(os.getpid()), DEMO_HOST_TAG: socket.gethostname()},
            )
        elapsed = time.perf_counter() - started
        if not result.success:
            failed = [e.step_key for e in result.all_events if e.is_step_failure]
            print(
                f"The nightly job failed in {elapsed:.1f}s at: {', '.join(failed) or 'see the log above'}",
                file=sys.stderr,
            )
            return 1
        print(f"      slowest steps: {_slowest_steps(result)}")
        print(f"[4/4] Done in {elapsed:.1f}s. Warehouse {data / 'warehouse.duckdb'}:")
        for table, rows in _summary(data / "warehouse.duckdb"):
            print(f"    {table:<45} {rows:>10,} rows")
        _print_identity_scores(data / "warehouse.duckdb", world)
        # Analysts query the read-only copy: a connection to the warehouse would stop the next load.
        print(
            f"Open the Dagster UI with `make sandbox` and `make dev` (two terminals); query the marts in the "
            f"read-only copy {data / 'analysts.duckdb'} (README: Querying the marts)."
        )
        return 0
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())

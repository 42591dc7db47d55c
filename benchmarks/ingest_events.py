"""Events load benchmark: Tessera's Mixpanel `events` load beside two references, on ~1M events.

(a) Tessera: `mixpanel_source` -> `load()` (blocks of lines parsed in bulk into Arrow, Parquet
    loader files, appended on a first load and merged on the insert id after), reading the
    sandbox's export over HTTP;
(b) dlt with its defaults: a plain resource yielding one parsed dict per line, the default
    `insert_values` loader files, append (dlt flattens `properties` into columns and makes a
    child table of `products`). Too slow for the whole export, so it loads the export's first
    `--dlt-events` events (the export's own `limit`) and its rate is what is compared;
(c) DuckDB alone: `CREATE TABLE AS SELECT * FROM read_json(...)` of the same export saved to a
    local JSONL file first, into a DuckDB file: the practical limit.

Each runs in its own process; its peak memory is the sampled RSS of that process (the sandbox
server is another process and is not counted). Target (issue: Ingestion): Tessera loads at
least 100k events/s or within 3x of (c), whichever is slower, under 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import requests

from benchmarks.measure import run_measured

TARGET_EVENTS_PER_S = 100_000
TARGET_RATIO = 3.0
TARGET_GIB = 2.0
# Customers for about 1M visible events with --future-days 0 (measured: 42,000 -> ~1.0M).
DEFAULT_CUSTOMERS = 42_000
DEFAULT_DLT_EVENTS = 100_000


# --------------------------------------------------------------------------------------------
# the three contenders, each run in a child process (`--child NAME`)
# --------------------------------------------------------------------------------------------


def _tessera(url: str, world: Path, work: Path) -> dict:
    from ingestion.mixpanel import mixpanel_source
    from ingestion.pipelines import load, make_pipeline

    meta = json.loads((world / "world.json").read_text())
    creds = meta["credentials"]["mixpanel"]
    pipeline = make_pipeline("mixpanel", work / "tessera.duckdb", work / "dlt")
    source = mixpanel_source(
        base_url=f"{url}/mixpanel",
        project_id=creds["project_id"],
        username=creds["service_account_username"],
        secret=creds["service_account_secret"],
        start_date=meta["start"][:10],
        end_date=meta["clock"][:10],
        gzip=False,  # the server is on this host: identity is its fast path
    )
    started = time.perf_counter()
    load(source, pipeline)
    seconds = time.perf_counter() - started
    steps = {s.step: round((s.finished_at - s.started_at).total_seconds(), 1) for s in pipeline.last_trace.steps}
    with duckdb.connect(str(work / "tessera.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM raw_mixpanel.events").fetchall()[0][0]
    return {"events": rows, "seconds": seconds, "steps": steps}


def _dlt_default(url: str, world: Path, work: Path, limit: int) -> dict:
    import dlt

    meta = json.loads((world / "world.json").read_text())
    creds = meta["credentials"]["mixpanel"]

    @dlt.resource(name="events")
    def events():
        with requests.get(
            f"{url}/mixpanel/api/2.0/export",
            auth=(creds["service_account_username"], creds["service_account_secret"]),
            params={
                "project_id": creds["project_id"],
                "from_date": meta["start"][:10],
                "to_date": meta["clock"][:10],
                "limit": limit,
            },
            headers={"Accept-Encoding": "identity"},
            stream=True,
            timeout=600,
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)

    pipeline = dlt.pipeline(
        pipeline_name="bench_dlt_default",
        destination=dlt.destinations.duckdb(credentials=str(work / "dlt_default.duckdb")),
        dataset_name="raw_mixpanel",
        pipelines_dir=str(work / "dlt_default"),
    )
    started = time.perf_counter()
    pipeline.run(events())
    seconds = time.perf_counter() - started
    with duckdb.connect(str(work / "dlt_default.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM raw_mixpanel.events").fetchall()[0][0]
    return {"events": rows, "seconds": seconds}


def _read_json(jsonl: Path, work: Path) -> dict:
    started = time.perf_counter()
    with duckdb.connect(str(work / "read_json.duckdb")) as con:
        con.execute(f"CREATE TABLE events AS SELECT * FROM read_json('{jsonl}', format = 'newline_delimited')")
        rows = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
    return {"events": rows, "seconds": time.perf_counter() - started}


def _child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", required=True, choices=["tessera", "dlt_default", "read_json"])
    parser.add_argument("--url")
    parser.add_argument("--world", type=Path)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--jsonl", type=Path)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child == "tessera":
        result = _tessera(args.url, args.world, args.work)
    elif args.child == "dlt_default":
        result = _dlt_default(args.url, args.world, args.work, args.limit)
    else:
        result = _read_json(args.jsonl, args.work)
    args.result.write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------------------------
# orchestration
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _measured(name: str, tmp: Path, extra: list[str], env: dict[str, str] | None = None, tag: str = "") -> dict:
    result_file = tmp / f"{name}{tag}.json"
    cmd = [sys.executable, "-m", "benchmarks.ingest_events", "--child", name, "--result", str(result_file), *extra]
    log = tmp / f"{name}{tag}.log"
    with log.open("wb") as err:
        m = run_measured(cmd, interval=0.1, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **(env or {})})
    if m.returncode:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{name} failed with exit code {m.returncode}:\n{tail}")
    result = json.loads(result_file.read_text())
    result.update(wall_seconds=m.seconds, peak_gib=m.peak_gib, events_per_s=result["events"] / result["seconds"])
    return result


def _save_export(url: str, world: Path, out: Path) -> tuple[int, float]:
    meta = json.loads((world / "world.json").read_text())
    creds = meta["credentials"]["mixpanel"]
    started = time.perf_counter()
    lines = 0
    with (
        requests.get(
            f"{url}/mixpanel/api/2.0/export",
            auth=(creds["service_account_username"], creds["service_account_secret"]),
            params={"project_id": creds["project_id"], "from_date": meta["start"][:10], "to_date": meta["clock"][:10]},
            headers={"Accept-Encoding": "identity"},
            stream=True,
            timeout=600,
        ) as response,
        out.open("wb") as f,
    ):
        response.raise_for_status()
        for chunk in response.iter_content(chunk_size=1 << 20):
            f.write(chunk)
            lines += chunk.count(b"\n")
    return lines, time.perf_counter() - started


def _serve(world: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--world", str(world), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/_sandbox/health", timeout=1).raise_for_status()
            return server, url
        except requests.RequestException:
            if server.poll() is not None:
                raise SystemExit(f"the sandbox server exited with code {server.returncode}") from None
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("the sandbox server did not start")


def _row(label: str, r: dict, reference: float) -> str:
    ratio = reference / r["events_per_s"]
    return (
        f"{label:<40} {r['events']:>10,} {r['seconds']:>8.1f} {r['events_per_s']:>12,.0f} "
        f"{r['peak_gib']:>9.2f} {ratio:>10.1f}x"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--child" in argv:
        return _child(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest_events", description=__doc__)
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS, help="world size (default ~1M events)")
    parser.add_argument("--dlt-events", type=int, default=DEFAULT_DLT_EVENTS, help="events for (b), at most 100000")
    parser.add_argument("--world", type=Path, help="use (or keep) the world in this directory")
    parser.add_argument("--runs", type=int, default=2, help="runs of (a) and (c); the fastest counts")
    args = parser.parse_args(argv)
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        world = args.world or tmp / "world"
        if not (world / "world.json").exists():
            gen = run_measured(
                [sys.executable, "-m", "sandbox", "generate", "--seed", "1", "--customers", str(args.customers)]
                + ["--future-days", "0", "--out", str(world)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if gen.returncode:
                raise SystemExit(f"world generation failed with exit code {gen.returncode}")
            print(f"world: {args.customers:,} customers generated in {gen.seconds:.0f}s")
        server, url = _serve(world)
        try:
            jsonl = tmp / "export.jsonl"
            lines, export_s = _save_export(url, world, jsonl)
            print(f"export saved for (c): {lines:,} events, {jsonl.stat().st_size / 2**20:,.0f} MB in {export_s:.1f}s")
            common = ["--url", url, "--world", str(world)]

            def best(name: str, runs: int, extra: list[str], env: dict[str, str] | None = None, tag: str = "") -> dict:
                # Other work on a shared machine slows single runs by up to 2x: keep the fastest.
                results = [
                    _measured(name, tmp, [*extra, "--work", str(tmp / f"{name}{tag}{i}")], env, f"{tag}{i}")
                    for i in range(runs)
                ]
                fastest = min(results, key=lambda r: r["seconds"])
                return {**fastest, "peak_gib": max(r["peak_gib"] for r in results)}  # memory: the worst run

            tessera = best("tessera", args.runs, common)
            dlt_default = best("dlt_default", 1, [*common, "--limit", str(args.dlt_events)])
            read_json = best("read_json", args.runs, ["--jsonl", str(jsonl)])
        finally:
            server.terminate()
            server.wait(timeout=30)

    reference = read_json["events_per_s"]
    print()
    header = ("load of the events export", "events", "seconds", "events/s", "peak GiB", "(c) is x")
    print(f"{header[0]:<40} {header[1]:>10} {header[2]:>8} {header[3]:>12} {header[4]:>9} {header[5]:>11}")
    print(_row("(a) Tessera mixpanel events", tessera, reference))
    print(_row("(b) dlt defaults (insert_values, dicts)", dlt_default, reference))
    print(_row("(c) DuckDB read_json, local file", read_json, reference))
    if dlt_default["events"] < tessera["events"]:
        projected = tessera["events"] / dlt_default["events_per_s"]
        print(
            f"    (b) ran on the export's first {dlt_default['events']:,} events (limit={args.dlt_events}); at its "
            f"rate the {tessera['events']:,} events would take about {projected:,.0f}s"
        )
    print("    (a) reads the export over HTTP from the sandbox on this host (Accept-Encoding: identity)")
    print(f"    (a) steps: {tessera['steps']}; the warehouse connection as .dlt/config.toml sets it")
    target = min(TARGET_EVENTS_PER_S, reference / TARGET_RATIO)
    ok = tessera["events_per_s"] >= target and tessera["peak_gib"] < TARGET_GIB
    print(
        f"target: >= {target:,.0f} events/s (the slower of {TARGET_EVENTS_PER_S:,}/s and (c)/{TARGET_RATIO:g}) "
        f"and < {TARGET_GIB} GiB: {'met' if ok else 'MISSED'} "
        f"({tessera['events_per_s']:,.0f} events/s, {tessera['peak_gib']:.2f} GiB, "
        f"{reference / tessera['events_per_s']:.1f}x of read_json)"
    )
    load_1m, _, _ = os.getloadavg()
    print(
        f"benchmark took {time.perf_counter() - begun:.0f}s on {os.cpu_count()} CPUs; best of {args.runs} runs "
        f"for (a) and (c); load average at the end {load_1m:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

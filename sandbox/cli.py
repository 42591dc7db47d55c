"""`python -m sandbox`: `generate` a world, `serve` it, `advance` its clock, print the `env` exports
that point Tessera at it, or score the warehouse's identity map against its truth (`identity-report`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

DEFAULT_WORLD = Path("data/sandbox")
DEFAULT_PORT = 8700
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def _generate(args: argparse.Namespace) -> int:
    from sandbox.world.generate import WorldConfig, generate_world

    config = WorldConfig(seed=args.seed, customers=args.customers, days=args.days, future_days=args.future_days)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(
            f"\r  people simulated: {done:,}/{total:,} ({time.perf_counter() - started:.0f}s)",
            end="",
            file=sys.stderr,
            flush=True,
        )

    print(
        f"Generating world seed={args.seed} customers={args.customers:,} days={args.days} -> {args.out}",
        file=sys.stderr,
    )
    generate_world(config, args.out, workers=args.workers, progress=progress)
    print(f"\nWorld written to {args.out} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from sandbox.server.app import serve

    if not (args.world / "world.json").exists():
        print(
            f"error: {args.world} is not a sandbox world (no world.json). "
            f"Create one with: python -m sandbox generate --out {args.world}",
            file=sys.stderr,
        )
        return 2
    print(
        f"Sandbox serving {args.world} on http://{args.host}:{args.port} (vendors under /<vendor>, "
        f"control under /_sandbox)",
        file=sys.stderr,
    )
    serve(args.world, host=args.host, port=args.port)
    return 0


def _advance(args: argparse.Namespace) -> int:
    req = urllib.request.Request(
        f"{args.url}/_sandbox/clock/advance",
        data=json.dumps({"days": args.days}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=300) as resp:
        print(resp.read().decode())
    return 0


def _env(args: argparse.Namespace) -> int:
    from sandbox.env import sandbox_env

    for key, value in sandbox_env(args.url, args.world).items():
        print(f"export {key}='{value}'")
    return 0


def _identity_report(args: argparse.Namespace) -> int:
    from sandbox.identity_report import build, render

    if not args.warehouse.exists():
        print(f"no warehouse at {args.warehouse}: run the pipeline first (make demo)", file=sys.stderr)
        return 2
    world = None if args.no_truth else args.world
    if world is not None and not (world / "truth" / "identities.parquet").exists():
        print(f"no truth at {world}/truth: pass --world, or --no-truth for cluster statistics only", file=sys.stderr)
        return 2
    print(render(build(args.warehouse, world)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="build a deterministic synthetic shop world with ground truth")
    gen.add_argument(
        "--seed", type=int, default=42, help="random seed; the same seed gives the same world (default 42)"
    )
    gen.add_argument("--customers", type=int, default=3000, help="number of people in the world (default 3000)")
    gen.add_argument("--days", type=int, default=90, help="days of history before the world clock (default 90)")
    gen.add_argument(
        "--future-days",
        type=int,
        default=14,
        help="days of activity generated past the clock, revealed as the clock advances (default 14)",
    )
    gen.add_argument("--out", type=Path, default=DEFAULT_WORLD, help=f"world directory (default {DEFAULT_WORLD})")
    gen.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes simulating people in parallel (default: up to 2)",
    )
    gen.set_defaults(func=_generate)

    srv = sub.add_parser("serve", help="serve a world through the six vendor APIs")
    srv.add_argument("--world", type=Path, default=DEFAULT_WORLD, help=f"world directory (default {DEFAULT_WORLD})")
    srv.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    srv.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    srv.set_defaults(func=_serve)

    adv = sub.add_parser("advance", help="move a running sandbox's clock forward (new activity appears)")
    adv.add_argument("--days", type=int, default=1, help="days to move the clock forward (default 1)")
    adv.add_argument("--url", default=DEFAULT_URL, help=f"the running sandbox's address (default {DEFAULT_URL})")
    adv.set_defaults(func=_advance)

    env = sub.add_parser("env", help="print the shell exports that point Tessera at a running sandbox")
    env.add_argument("--world", type=Path, default=DEFAULT_WORLD, help=f"world directory (default {DEFAULT_WORLD})")
    env.add_argument("--url", default=DEFAULT_URL, help=f"the running sandbox's address (default {DEFAULT_URL})")
    env.set_defaults(func=_env)

    rep = sub.add_parser(
        "identity-report",
        help="score the warehouse's identity map against the world's truth (precision, recall, clusters)",
    )
    rep.add_argument("--world", type=Path, default=DEFAULT_WORLD, help=f"world directory (default {DEFAULT_WORLD})")
    rep.add_argument(
        "--warehouse", type=Path, default=DEFAULT_WORLD.parent / "warehouse.duckdb", help="the DuckDB warehouse"
    )
    rep.add_argument("--no-truth", action="store_true", help="cluster statistics only (a warehouse of real data)")
    rep.set_defaults(func=_identity_report)

    args = parser.parse_args(argv)
    return args.func(args)

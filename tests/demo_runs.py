"""The README's demo as a test fixture: one whole pipeline run into a throwaway data directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from orchestration.paths import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(
    data: Path, seed: int, customers: int, days: int, *extra: str, settings: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m orchestration.demo` with its data under `data`, finding the sandbox on its own
    (no SOURCES__ settings inherited, only `settings`); fails the test with the output's tail if
    the run fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    env["TESSERA_DATA_DIR"] = str(data)
    env.update(settings or {})
    cmd = [sys.executable, "-m", "orchestration.demo", "--seed", str(seed), "--customers", str(customers)]
    cmd += ["--days", str(days), "--port", str(free_port()), *extra]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@dataclass
class Night:
    """One demo run's results kept for comparison with a later night in the same data dir
    (the warehouse itself is overwritten by the next night)."""

    data: Path
    identity_map: dict[tuple[str, str, str], str]
    # (destination, audience) -> addresses the ledger holds as delivered members
    pushed: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    # A copy of the warehouse as this night left it (the data dir's file belongs to the last night).
    snapshot: Path | None = None

    @property
    def warehouse(self) -> Path:
        return self.data / "warehouse.duckdb"

    @property
    def world(self) -> Path:
        return self.data / "sandbox"


def demo_night(data: Path, seed: int, customers: int, days: int, *extra: str) -> Night:
    """`run_demo`, then a snapshot of the identity map and the push ledger."""
    run_demo(data, seed, customers, days, *extra)
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT source, id_type, id_value, customer_id FROM marts.customer_identifiers").fetchall()
        ledger = con.execute(
            "SELECT destination, audience, lower(email) FROM activation.sync_ledger WHERE state = 'member'"
        ).fetchall()
    pushed: dict[tuple[str, str], set[str]] = {}
    for destination, audience, email in ledger:
        pushed.setdefault((destination, audience), set()).add(email)
    return Night(data, {(s, t, v): c for s, t, v, c in rows}, pushed)

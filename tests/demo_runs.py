"""The README's demo as a test fixture: one whole pipeline run into a throwaway data directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from orchestration.paths import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(data: Path, seed: int, customers: int, days: int, *extra: str) -> subprocess.CompletedProcess:
    """`python -m orchestration.demo` with its data under `data`, finding the sandbox on its own
    (no SOURCES__ settings inherited); fails the test with the output's tail if the run fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    env["TESSERA_DATA_DIR"] = str(data)
    cmd = [sys.executable, "-m", "orchestration.demo", "--seed", str(seed), "--customers", str(customers)]
    cmd += ["--days", str(days), "--port", str(free_port()), *extra]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result

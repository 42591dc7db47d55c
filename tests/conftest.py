"""Shared fixtures: a small sandbox world, generated once per test session, and live servers.

Tests talk to a real HTTP server on loopback (uvicorn in a thread), exactly as the loaders
and the vendors' own SDKs do, never to a mocked transport.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

TEST_SEED = 7
TEST_CUSTOMERS = 400
TEST_DAYS = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Sandbox:
    """A running sandbox server over one world directory."""

    url: str
    world: Path
    app: object

    def vendor_url(self, vendor: str) -> str:
        return f"{self.url}/{vendor}"

    def control(self, method: str, path: str, **kwargs) -> requests.Response:
        resp = requests.request(method, f"{self.url}/_sandbox/{path.lstrip('/')}", timeout=60, **kwargs)
        resp.raise_for_status()
        return resp

    def set_faults(self, **faults) -> None:
        self.control("PUT", "faults", json=faults)

    def reset(self) -> None:
        """Faults off, counters zeroed, default rate limits with fresh budgets."""
        self.control("DELETE", "faults")
        self.control("PUT", "limits", json={})
        self.control("POST", "counters/reset")


@contextmanager
def running_sandbox(world: Path) -> Iterator[Sandbox]:
    import uvicorn

    from sandbox.server.app import create_app

    app = create_app(world)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("sandbox server did not start")
        time.sleep(0.02)
    try:
        yield Sandbox(url=f"http://127.0.0.1:{port}", world=world, app=app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def world_template(tmp_path_factory) -> Path:
    """A small world generated once; tests that change a world copy it first."""
    from sandbox.world.generate import WorldConfig, generate_world

    out = tmp_path_factory.mktemp("world") / "world"
    return generate_world(WorldConfig(seed=TEST_SEED, customers=TEST_CUSTOMERS, days=TEST_DAYS), out)


@pytest.fixture()
def fresh_world(world_template, tmp_path) -> Path:
    """A private copy of the test world, for tests that advance its clock or write to it."""
    dest = tmp_path / "world"
    shutil.copytree(world_template, dest)
    return dest


@pytest.fixture(scope="session")
def _shared_sandbox(world_template, tmp_path_factory) -> Iterator[Sandbox]:
    world = tmp_path_factory.mktemp("served") / "world"
    shutil.copytree(world_template, world)
    with running_sandbox(world) as sandbox:
        yield sandbox


@pytest.fixture()
def sandbox(_shared_sandbox) -> Iterator[Sandbox]:
    """The session's sandbox server, with faults and counters reset around each test.

    Read-only tests share it; a test that moves the clock must use `private_sandbox`.
    """
    _shared_sandbox.reset()
    yield _shared_sandbox
    _shared_sandbox.reset()


@pytest.fixture()
def private_sandbox(fresh_world) -> Iterator[Sandbox]:
    """A sandbox server over a private copy of the world (free to advance or write)."""
    with running_sandbox(fresh_world) as sandbox:
        yield sandbox


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Spread over workers (`pytest -n`, as `make test` runs), each module stays on one worker,
    so its module fixtures (a world, a night of the demo) are built once. The modules that share
    the small world's two nights stay on one worker too, for the same reason."""
    shares_nights = {item.module.__name__ for item in items if "small_world_nights" in item.fixturenames}
    for item in items:
        module = item.module.__name__
        item.add_marker(pytest.mark.xdist_group("small_world_nights" if module in shares_nights else module))


SMALL_WORLD = (7, 400, 30)  # seed, customers, days


@pytest.fixture(scope="session")
def small_world_nights(tmp_path_factory):
    """The demo on a small world, then the next night (the clock advanced a day) in the same
    data directory: shared by the identity and the push tests, which both compare two nights."""
    from tests.demo_runs import demo_night

    root = tmp_path_factory.mktemp("small_world_nights")
    data = root / "data"
    first = demo_night(data, *SMALL_WORLD)
    # The whole data dir as the first night left it (world and its clock, warehouse, dlt state),
    # so a test can play the following nights another way (the catch-up test skips one).
    shutil.copytree(data, root / "first_night")
    first.snapshot = root / "first_night" / "warehouse.duckdb"
    second = demo_night(data, *SMALL_WORLD, "--advance-days", "1")
    return [first, second]

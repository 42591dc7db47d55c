"""The sandbox server: one Starlette app serving every vendor under `/<vendor>/...`.

A vendor module is `sandbox/server/vendors/<vendor>.py` defining

    def mount(state: SandboxState) -> starlette.routing.Mount | starlette.applications.Starlette
    def error_response(status: int, retry_after: float | None) -> starlette.responses.Response

`mount` returns the vendor's routes with paths relative to the vendor (e.g.
`Route("/crm/v3/objects/contacts", ...)`); the server mounts them under `/<vendor>` whatever
path a returned Mount had. `error_response` renders the vendor's own error body; the server
uses it for injected 429/500s and for unhandled exceptions in the vendor's handlers.

Write handlers as plain `def` functions: Starlette runs them in the thread pool, where
`state.db()` gives each thread its own DuckDB cursor (read a body with `auth.read_json`). A
streamed response (Mixpanel export) should read through its own `state.cursor()` and yield
chunks of many lines, e.g. one per Arrow batch: every chunk of a sync generator costs a hop
to the thread pool, so yielding line by line is about 100x slower.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.server.control import control_mount
from sandbox.server.state import SandboxState

log = logging.getLogger(__name__)

VENDORS = ("mixpanel", "hubspot", "shopify", "klaviyo", "mailchimp", "instagram")
#: Worker threads for sync handlers; loaders run parallel requests and streams hold a thread.
THREADS = 64


class VendorModule(Protocol):
    """What a vendor module provides (a module object satisfies this structurally)."""

    def mount(self, state: SandboxState) -> Mount | Starlette: ...

    def error_response(self, status: int, retry_after: float | None) -> Response: ...


def load_vendor_modules(names: tuple[str, ...] = VENDORS) -> dict[str, VendorModule]:
    """Import `sandbox.server.vendors.<name>` for each name that exists; a missing module is
    skipped with a warning, a module that exists but fails to import raises (fail loudly)."""
    modules: dict[str, VendorModule] = {}
    for name in names:
        qualified = f"sandbox.server.vendors.{name}"
        if importlib.util.find_spec(qualified) is None:
            log.warning("sandbox vendor %r is not available (no module %s); skipping", name, qualified)
            continue
        module: Any = importlib.import_module(qualified)
        for attr in ("mount", "error_response"):
            if not callable(getattr(module, attr, None)):
                raise TypeError(f"{qualified} must define {attr}()")
        modules[name] = module
    return modules


class VendorGateway:
    """ASGI middleware in front of every vendor path (`/_sandbox` and unknown prefixes pass
    through untouched): counts requests and final statuses, injects request-level faults, and
    turns unhandled exceptions into the vendor's own 500 so loaders see a vendor-shaped error.
    Pure ASGI rather than BaseHTTPMiddleware so streamed responses are not buffered."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        vendor = scope["path"].split("/", 2)[1] if scope["type"] == "http" else ""
        if vendor not in self.state.vendors:
            await self.app(scope, receive, send)
            return
        state = self.state
        state.counters.request(vendor)
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            fault = state.faults.decide_request(vendor)
            if fault.delay:
                await anyio.sleep(fault.delay)
            if fault.status is not None:
                response = state.error_response(vendor, fault.status, fault.retry_after)
                await response(scope, receive, send_wrapper)
                return
            try:
                await self.app(scope, receive, send_wrapper)
            except Exception:
                log.exception("unhandled error in sandbox vendor %s at %s", vendor, scope["path"])
                if started:
                    raise  # headers already sent: nothing vendor-shaped can be said now
                await state.error_response(vendor, 500, None)(scope, receive, send_wrapper)
        finally:
            state.counters.response(vendor, status)


def create_app(world_dir: Path | str, *, vendors: Mapping[str, VendorModule] | None = None) -> Starlette:
    """Build the server for a world. `vendors` maps vendor name -> module (or any object with
    `mount` and `error_response`); by default the modules found in `sandbox/server/vendors/`.
    The state is available as `app.state.sandbox`."""
    state = SandboxState(Path(world_dir))
    modules = dict(load_vendor_modules() if vendors is None else vendors)

    routes: list[BaseRoute] = [control_mount(state)]
    for name, module in modules.items():
        state.register_error_response(name, module.error_response)
        mounted = module.mount(state)
        inner: ASGIApp = mounted.app if isinstance(mounted, Mount) else mounted
        routes.append(Mount(f"/{name}", app=inner, name=name))
        state.vendors.append(name)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        try:
            yield
        finally:
            state.close()  # flush counters

    app = Starlette(routes=routes, middleware=[Middleware(VendorGateway, state=state)], lifespan=lifespan)
    app.state.sandbox = state
    return app


def _tune_gc() -> None:
    """A bulk job parses up to 5 MB of JSON into hundreds of thousands of short-lived objects.
    With the default thresholds they set off full collections that walk every object the
    server holds (pandas, pyarrow, DuckDB modules...): measured at seconds of a 100k-profile
    push. What exists once the app is built lives as long as the server, so it is frozen out
    of collection, and young collections run less often."""
    # pyarrow imports pandas on the first table it builds from Python rows (a second or so):
    # done here, that import is neither the first request's wait nor left to the collector.
    import pandas  # noqa: F401

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def serve(world_dir: Path | str, host: str = "127.0.0.1", port: int = 8700) -> None:
    """Serve a world until interrupted (one process; counters are flushed on shutdown)."""
    import uvicorn

    app = create_app(world_dir)
    _tune_gc()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    finally:
        # Frozen objects are never collected, not even at exit: DuckDB's bindings then report
        # each of theirs as a "leaked instance" on the terminal of whoever ran the server.
        gc.unfreeze()
        gc.collect()

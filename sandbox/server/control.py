"""Endpoints only the sandbox has, under `/_sandbox/` (no auth, no faults, no rate limits).

GET    /_sandbox/health           ok, world seed and size, clock, horizon, mounted vendors
GET    /_sandbox/clock            {"clock", "start", "horizon"}
POST   /_sandbox/clock/advance    body {"days": 1} (default 1); 409 past the horizon;
                                  rewrites truth/ for the new clock
GET    /_sandbox/faults           current fault config
PUT    /_sandbox/faults           replace it (omitted fields take defaults); 400 if invalid
DELETE /_sandbox/faults           all faults off
GET    /_sandbox/counters         requests, responses, rate_limited, writes, faults
POST   /_sandbox/counters/reset
GET    /_sandbox/received         ?vendor=&kind=&limit= the destinations' received log
GET    /_sandbox/objects          ?vendor=&kind=&prefix=&limit= destinations' current objects
GET    /_sandbox/limits           {"effective": rules, "overrides": limits.json}
PUT    /_sandbox/limits           replace overrides, e.g. {"hubspot": {"burst": {"limit": 5}}}
GET    /_sandbox/erasure-requests the shop's erasure requests received by the clock
                                  (no vendor API carries them; a shop gets them by email,
                                  a form or a platform's privacy webhook)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from sandbox.server.faults import FaultConfig
from sandbox.server.state import ClockError, SandboxState, format_ts


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_body(request: Request) -> dict[str, Any]:
    """The JSON object body; {} when the body is empty. Raises ValueError otherwise."""
    raw = await request.body()
    if not raw.strip():
        return {}
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    return int(value) if value not in (None, "") else None


def control_mount(state: SandboxState) -> Mount:
    """The `/_sandbox` mount for one state."""

    def clock_body() -> dict[str, Any]:
        return {
            "clock": format_ts(state.clock),
            "start": format_ts(state.start),
            "horizon": format_ts(state.horizon),
        }

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "ok": True,
                "seed": state.seed,
                "customers": state.meta.get("customers"),
                "days": state.meta.get("days"),
                **clock_body(),
                "vendors": state.vendors,
                "tables": state.tables,
            }
        )

    async def clock(request: Request) -> Response:
        return JSONResponse(clock_body())

    def _advance(days: float) -> Response:
        # The lock keeps two concurrent advances from interleaving clock and truth writes.
        with state.advance_lock:
            previous = state.clock
            try:
                new = state.advance(days)
            except ClockError as exc:
                return _error(409, str(exc))
            try:
                from sandbox.world.truth import write_truth  # heavy; only needed here

                write_truth(state.world_dir, new)
            except Exception as exc:
                state.clock = previous  # a clock without matching truth would mislead tests
                kept = format_ts(previous)
                return _error(500, f"truth could not be rewritten, clock left at {kept}: {exc!r}")
        return JSONResponse({**clock_body(), "previous": format_ts(previous)})

    async def advance(request: Request) -> Response:
        try:
            days = (await _json_body(request)).get("days", 1)
        except ValueError as exc:
            return _error(400, f"invalid JSON body: {exc}")
        if isinstance(days, bool) or not isinstance(days, int | float) or days <= 0:
            return _error(400, f"days must be a positive number, got {days!r}")
        return await run_in_threadpool(_advance, days)

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                config = FaultConfig.from_dict(await _json_body(request))
            except (ValueError, TypeError) as exc:
                return _error(400, str(exc))
            await run_in_threadpool(state.faults.set, config)
        elif request.method == "DELETE":
            await run_in_threadpool(state.faults.reset)
        return JSONResponse(state.faults.config.to_dict())

    async def counters(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(state.counters.snapshot))

    async def counters_reset(request: Request) -> Response:
        await run_in_threadpool(state.counters.reset)
        return JSONResponse(state.counters.snapshot())

    async def received(request: Request) -> Response:
        q = request.query_params
        try:
            limit = _int_param(request, "limit")
        except ValueError:
            return _error(400, "limit must be an integer")
        items = await run_in_threadpool(
            lambda: state.destinations.received(q.get("vendor"), q.get("kind"), limit=limit)
        )
        return JSONResponse({"count": len(items), "items": items})

    async def objects(request: Request) -> Response:
        q = request.query_params
        if not q.get("vendor") or not q.get("kind"):
            return _error(400, "vendor and kind are required")
        try:
            limit = _int_param(request, "limit")
        except ValueError:
            return _error(400, "limit must be an integer")
        rows = await run_in_threadpool(
            lambda: state.destinations.list_objects(q["vendor"], q["kind"], key_prefix=q.get("prefix"), limit=limit)
        )
        return JSONResponse({"count": len(rows), "items": [asdict(r) for r in rows]})

    async def limits(request: Request) -> Response:
        if request.method == "PUT":
            try:
                await run_in_threadpool(state.limits.configure, await _json_body(request))
            except ValueError as exc:
                return _error(400, str(exc))
        return JSONResponse({"effective": state.limits.config(), "overrides": state.limits.overrides})

    async def erasure_requests(request: Request) -> Response:
        rows = await run_in_threadpool(
            state.query,
            "SELECT request_id, email, requested_at FROM erasure_requests "
            "WHERE requested_at <= ? ORDER BY requested_at",
            [state.clock],
        )
        items = [{**r, "requested_at": format_ts(r["requested_at"])} for r in rows]
        return JSONResponse({"count": len(items), "items": items})

    return Mount(
        "/_sandbox",
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/clock", clock, methods=["GET"]),
            Route("/clock/advance", advance, methods=["POST"]),
            Route("/faults", faults, methods=["GET", "PUT", "DELETE"]),
            Route("/counters", counters, methods=["GET"]),
            Route("/counters/reset", counters_reset, methods=["POST"]),
            Route("/received", received, methods=["GET"]),
            Route("/objects", objects, methods=["GET"]),
            Route("/limits", limits, methods=["GET", "PUT"]),
            Route("/erasure-requests", erasure_requests, methods=["GET"]),
        ],
        name="sandbox",
    )

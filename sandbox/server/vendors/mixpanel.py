"""Mixpanel Raw Event Export API (`GET https://data.mixpanel.com/api/2.0/export`).

The export is newline-delimited JSON, one `{"event": ..., "properties": {...}}` per line, for
the events whose `time` falls within `from_date`..`to_date` (whole UTC days, both inclusive)
and that Mixpanel has received by the world clock (`arrived_at <= clock`). Late events (sent
hours or days after they happened) therefore show up in a later export of an earlier day,
which is why loaders re-export a look-back window.

A full export of a big world is hundreds of MB, so nothing is materialised in Python: DuckDB
filters and builds every line in SQL (with the trailing newline), and the response streams
Arrow record batches whose string data buffer already *is* the response body. Only when
JSONL faults are switched on are lines handled one by one.
"""

from __future__ import annotations

import json
import re
import weakref
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from sandbox.server.auth import basic_auth, matches
from sandbox.server.state import SandboxState

VENDOR = "mixpanel"
#: "Value cannot be over 100000." (the `limit` parameter of the export reference)
MAX_LIMIT = 100_000
#: Rows per Arrow batch: a few MB of JSON per chunk written to the socket.
BATCH_ROWS = 8_192
#: Fast gzip: the export is CPU-bound and a loader cares about MB/s more than ratio.
GZIP_LEVEL = 1

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
# One comparison of the supported `where` subset: properties["name"] <op> "string" | number.
_TERM_RE = re.compile(
    r'^\s*properties\s*\[\s*"(?P<name>(?:[^"\\]|\\.)*)"\s*\]\s*(?P<op>==|!=|>=|<=|>|<)\s*'
    r'(?:"(?P<str>(?:[^"\\]|\\.)*)"|(?P<num>-?\d+(?:\.\d+)?))\s*$'
)
# `and` between terms, not inside a quoted value (an even number of quotes follows it).
_AND_RE = re.compile(r'\s+and\s+(?=(?:[^"]*"[^"]*")*[^"]*$)', re.IGNORECASE)


class ExportError(Exception):
    """A request the export refuses, with the HTTP status Mixpanel answers it with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, retry_after: float | None = None) -> Response:
    """Mixpanel's documented error body `{"error": ..., "status": "error"}`."""
    messages = {
        400: "Bad request",
        401: "Unable to authenticate request",
        429: "Rate limit exceeded: the raw export API allows 60 queries per hour, 3 per second "
        "and 100 concurrent queries per project",
        500: "Internal server error, please retry",
    }
    return _error(status, messages.get(status, "Request failed"), retry_after)


def _error(status: int, message: str, retry_after: float | None = None) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return JSONResponse({"error": message, "status": "error"}, status_code=status, headers=headers)


# --------------------------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------------------------


def _authenticate(request: Request, creds: dict[str, Any]) -> str:
    """The project the request may read, or ExportError. Service accounts name the project in
    `project_id`; the legacy project API secret (basic user, empty password) implies it."""
    given = basic_auth(request)
    if given is None:
        raise ExportError(401, "Unable to authenticate request")
    user, password = given
    project = str(creds.get("project_id", ""))
    if matches(user, creds.get("service_account_username")) and matches(password, creds.get("service_account_secret")):
        requested = request.query_params.get("project_id")
        if not requested:
            raise ExportError(400, "project_id is required when authenticating with a service account")
        if requested != project:
            raise ExportError(401, "Unable to authenticate request")
        return project
    if password == "" and matches(user, creds.get("api_secret")):
        return project
    raise ExportError(401, "Unable to authenticate request")


def _parse_date(params: QueryParams, name: str) -> date:
    value = params.get(name)
    if not value:
        raise ExportError(400, f"'{name}' is a required parameter")
    try:
        if not _DATE_RE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise ExportError(400, f"'{name}' is not a valid date, expected yyyy-mm-dd: {value!r}") from None


def _where_sql(expression: str) -> tuple[str, list[Any]]:
    """SQL for the supported `where` subset: comparisons of one property with a string or
    number literal, joined by `and`. Anything else is refused rather than silently ignored."""
    clauses: list[str] = []
    params: list[Any] = []
    for term in _AND_RE.split(expression.strip()):
        found = _TERM_RE.match(term)
        if found is None:
            raise ExportError(
                400,
                f"unsupported where expression {term.strip()!r}: the sandbox supports "
                'properties["name"] <op> "string"|number, with op one of == != > >= < <=, joined by and',
            )
        name = found["name"].replace('\\"', '"')
        path = '$."' + name.replace('"', '\\"') + '"'
        op = found["op"]
        if found["num"] is not None:
            value: Any = float(found["num"])
            column = "TRY_CAST(json_extract_string(properties, ?) AS DOUBLE)"
        else:
            value = found["str"].replace('\\"', '"')
            column = "json_extract_string(properties, ?)"
        # Mixpanel treats a missing property as unequal to every value.
        sql_op = {"==": "=", "!=": "IS DISTINCT FROM"}.get(op, op)
        clauses.append(f"{column} {sql_op} ?")
        params += [path, value]
    return " AND ".join(clauses), params


def _parse_query(request: Request, clock: datetime, project_timezone: str | None = None) -> tuple[str, list[Any], str]:
    """(SQL, parameters, stream key) for the export the request asks for. A project created
    before 2023 (`project_timezone` set) has its days and `time` in its own time zone: "returned
    timestamps are expressed in seconds since January 1, 1970 in your project's timezone"."""
    q = request.query_params
    start, end = _parse_date(q, "from_date"), _parse_date(q, "to_date")
    if end < start:
        raise ExportError(400, "'to_date' cannot be earlier than 'from_date'")
    zone = ZoneInfo(project_timezone) if project_timezone else UTC
    if end > clock.astimezone(zone).date():
        # The data store answers this for a day that has not begun in the project's timezone.
        raise ExportError(400, "to_date cannot be later than today")
    properties = "properties"
    if project_timezone:
        # Whole seconds of the project's wall clock, as the stored `time` is of UTC's.
        local = f"floor(epoch(time AT TIME ZONE '{project_timezone}'))::BIGINT"
        properties = f"json_merge_patch(properties, json_object('time', {local}))::VARCHAR"
    sql = (
        f"SELECT '{{\"event\":' || to_json(event)::VARCHAR || ',\"properties\":' || {properties}"
        " || '}' || chr(10) AS line FROM mixpanel_events"
        " WHERE time >= ? AND time < ? AND arrived_at <= ?"
    )
    params: list[Any] = [
        datetime.combine(start, time(), zone),
        datetime.combine(end + timedelta(days=1), time(), zone),
        clock,
    ]
    if q.get("event"):
        try:
            events = _json_list(q["event"])
        except ValueError:
            raise ExportError(400, f"'event' must be a JSON array of event names: {q['event']!r}") from None
        sql += " AND list_contains(?, event)"
        params.append(events)
    if q.get("where"):
        clause, where_params = _where_sql(q["where"])
        sql += f" AND {clause}"
        params += where_params
    if q.get("limit"):
        try:
            limit = int(q["limit"])
        except ValueError:
            raise ExportError(400, f"'limit' must be an integer: {q['limit']!r}") from None
        if limit > MAX_LIMIT:
            raise ExportError(400, f"'limit' cannot be over {MAX_LIMIT}")
        if limit < 1:
            raise ExportError(400, "'limit' must be a positive integer")
        sql += " LIMIT ?"
        params.append(limit)
    stream_key = "|".join(q.get(k, "") for k in ("from_date", "to_date", "event", "where", "limit"))
    return sql, params, stream_key


def _json_list(text: str) -> list[str]:
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(text)
    return value


# --------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------


def _batch_body(column: pa.Array) -> memoryview:
    """The bytes of a batch's `line` column: every line ends with a newline in SQL, so the
    contiguous string data between the first and last offset is the body, with no copy."""
    if column.type not in (pa.string(), pa.large_string()):
        column = column.cast(pa.large_string())
    width = 4 if column.type == pa.string() else 8
    _, offsets_buf, data_buf = column.buffers()
    offsets = np.frombuffer(
        offsets_buf,
        dtype=np.int32 if width == 4 else np.int64,
        count=len(column) + 1,
        offset=column.offset * width,
    )
    return memoryview(data_buf)[int(offsets[0]) : int(offsets[-1])]


def _stream(
    state: SandboxState,
    sql: str,
    params: list[Any],
    stream_key: str,
    gzip: bool,
    release: Callable[[], None],
) -> Iterator[bytes | memoryview]:
    """The export body. Runs chunk by chunk in worker threads (on its own cursor) and releases
    the concurrency slot and the cursor when done, failed or abandoned by the client."""
    faults = state.faults
    mangle = faults.config.record_faults_on and faults.applies_to(VENDOR)
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if gzip else None
    cursor = state.cursor()
    try:
        reader = cursor.sql(sql, params=params).to_arrow_reader(BATCH_ROWS)
        index = 0
        for batch in reader:
            if batch.num_rows == 0:
                continue
            chunk: bytes | memoryview
            if mangle:
                out: list[str] = []
                for line in batch.column(0).to_pylist():
                    mangled = faults.mangle_jsonl_line(line[:-1], index, vendor=VENDOR, stream_key=stream_key)
                    out += [mangled] if isinstance(mangled, str) else mangled
                    index += 1
                chunk = ("\n".join(out) + "\n").encode()
            else:
                chunk = _batch_body(batch.column(0))
            if compressor is not None:
                chunk = compressor.compress(chunk)
                if not chunk:
                    continue
            yield chunk
        if compressor is not None:
            yield compressor.flush()
    finally:
        cursor.close()
        release()


def mount(state: SandboxState) -> Mount:
    def export(request: Request) -> Response:
        creds = state.credentials(VENDOR)
        clock = state.clock
        try:
            project = _authenticate(request, creds)
            allowed, retry_after, _ = state.limits.hit(VENDOR, ["export_hour", "export_second"], project)
            if not allowed:
                return error_response(429, retry_after)
            sql, params, stream_key = _parse_query(request, clock, creds.get("project_timezone"))
        except ExportError as exc:
            return _error(exc.status, exc.message)

        slots = ExitStack()
        if not slots.enter_context(state.limits.slot(VENDOR, "export_concurrent", project)).allowed:
            slots.close()
            return error_response(429, 1.0)
        gzip = "gzip" in request.headers.get("accept-encoding", "").lower()
        body = _stream(state, sql, params, stream_key, gzip, slots.close)
        # A body the client abandons before the first chunk never runs its `finally`; free
        # the slot when the generator is collected instead (ExitStack.close is idempotent).
        weakref.finalize(body, slots.close)
        headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"} if gzip else {}
        return StreamingResponse(body, media_type="text/plain; charset=utf-8", headers=headers)

    return Mount(
        f"/{VENDOR}",
        routes=[
            # Old clients (and Mixpanel's own examples from years ago) add a trailing slash.
            Route("/api/2.0/export", export, methods=["GET"]),
            Route("/api/2.0/export/", export, methods=["GET"]),
        ],
    )

"""Request plumbing shared by every Klaviyo endpoint: JSON:API errors, authentication, the
`revision` header, per-endpoint rate limits, and link building.

Klaviyo's server is Django REST Framework underneath, which is where its error `code`s
(`not_authenticated`, `authentication_failed`, `throttled`, `not_found`, `invalid`,
`parse_error`, `method_not_allowed`) and titles come from.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import duckdb
import orjson
import pyarrow as pa
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.server.auth import authorization, header, matches, read_body
from sandbox.server.ratelimit import LimitInfo
from sandbox.server.state import SandboxState

VENDOR = "klaviyo"
#: Klaviyo answers with the JSON:API media type.
MEDIA_TYPE = "application/vnd.api+json"
#: `revision: YYYY-MM-DD[.suffix]`, e.g. "2025-10-15" or "2024-10-15.pre".
_REVISION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")

_TITLES = {
    400: "Invalid input.",
    401: "Authentication credentials were not provided.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "Conflict.",
    413: "Request entity too large.",
    429: "Request was throttled.",
    500: "A server error occurred.",
}
_CODES = {400: "invalid", 404: "not_found", 405: "method_not_allowed", 409: "conflict", 429: "throttled"}


class KlaviyoError(Exception):
    """An error answered in Klaviyo's JSON:API error shape."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        title: str | None = None,
        pointer: str | None = None,
        parameter: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _CODES.get(status, "error")
        self.title = title or _TITLES.get(status, "Error.")
        self.source: dict[str, str] = {}
        if pointer is not None:
            self.source["pointer"] = pointer
        if parameter is not None:
            self.source["parameter"] = parameter
        self.headers = headers or {}

    def response(self) -> Response:
        item = {
            "id": str(uuid.uuid4()),
            "status": self.status,
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
            "source": self.source or {"pointer": "/data/"},
            "links": {},
            "meta": {},
        }
        return jsonapi({"errors": [item]}, self.status, self.headers)


def invalid(detail: str, *, pointer: str | None = None, parameter: str | None = None) -> KlaviyoError:
    """A 400 `invalid` error (DRF's ValidationError)."""
    return KlaviyoError(400, detail, pointer=pointer, parameter=parameter)


def not_found(detail: str) -> KlaviyoError:
    return KlaviyoError(404, detail)


def throttled(retry_after: float) -> KlaviyoError:
    """429 with `Retry-After` in whole seconds (the official SDK parses it with `int()`)."""
    wait = max(1, math.ceil(retry_after))
    unit = "second" if wait == 1 else "seconds"
    return KlaviyoError(
        429,
        f"Request was throttled. Expected available in {wait} {unit}.",
        headers={"Retry-After": str(wait)},
    )


def error_response(status: int, retry_after: float | None) -> Response:
    """Klaviyo's body for sandbox-injected 429/500s and unhandled errors."""
    if status == 429:
        return throttled(retry_after or 1.0).response()
    return KlaviyoError(status, _TITLES.get(status, "A server error occurred.")).response()


def jsonapi(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = b"" if body is None else json.dumps(body, separators=(",", ":"), default=str).encode()
    media = MEDIA_TYPE if body is not None else None
    return Response(content, status_code=status, headers=headers, media_type=media)


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


def iso(ts: datetime | None) -> str | None:
    """Klaviyo's datetime form: seconds precision with a numeric offset, e.g.
    "2024-01-01T12:00:00+00:00"."""
    if ts is None:
        return None
    return ts.astimezone(UTC).replace(microsecond=0).isoformat()


def parse_datetime(text: str) -> datetime:
    """An ISO-8601 datetime (`Z` or an offset; naive means UTC) or a date; ValueError if not."""
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


# --------------------------------------------------------------------------------------------
# Request context
# --------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a handler needs: the state, the request, and the vendor's base URL."""

    state: SandboxState
    request: Request
    api_key: str
    _cursor: duckdb.DuckDBPyConnection | None = None
    _raw: bytes | None = None

    def db(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB cursor owned by this request and closed when it ends. Not the state's
        per-thread cursor: one left alive in a worker thread is destroyed when the thread
        exits, and a thread exiting while the interpreter shuts down aborts the process."""
        if self._cursor is None:
            self._cursor = self.state.cursor()
        return self._cursor

    def overlay(self, name: str, table: pa.Table) -> None:
        """Make `table` queryable as `name` for the rest of the request (API writes joined
        with the store's views)."""
        self.db().register(name, table)

    def release(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None

    @property
    def query(self) -> QueryParams:
        return self.request.query_params

    @property
    def base(self) -> str:
        """`http://host:port/klaviyo`: absolute links include the mount prefix, as the real
        ones start with `https://a.klaviyo.com`."""
        url = self.request.url
        return f"{url.scheme}://{url.netloc}{self.request.scope.get('root_path', '')}"

    def link(self, path: str) -> str:
        """Klaviyo's links end with a slash: `.../api/profiles/<id>/`."""
        return f"{self.base}{path.rstrip('/')}/"

    def page_link(self, cursor: str) -> str:
        """The requested URL with `page[cursor]` replaced, all other parameters kept."""
        params = [(k, v) for k, v in self.query.multi_items() if k != "page[cursor]"]
        params.append(("page[cursor]", cursor))
        url = self.request.url
        return f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}/?{urlencode(params)}"

    def raw_body(self) -> bytes:
        """The request's bytes, read once (each read hops to the event loop)."""
        if self._raw is None:
            self._raw = read_body(self.request)
        return self._raw

    def body(self) -> dict[str, Any]:
        """The JSON object body; 400 `parse_error` when it is not JSON, 400 when not an object."""
        raw = self.raw_body()
        try:
            body = orjson.loads(raw or b"null")  # bulk jobs carry up to 5 MB
        except ValueError as exc:
            raise KlaviyoError(
                400, f"JSON parse error - {exc}", code="parse_error", title="Malformed request."
            ) from None
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict | list):
            raise invalid("The request body must be a JSON:API document with `data`.", pointer="/data")
        return body


Handler = Callable[[Ctx], Response]


def _authenticate(state: SandboxState, request: Request) -> str:
    """The private key of `Authorization: Klaviyo-API-Key <key>`; 401 otherwise."""
    key = authorization(request, "Klaviyo-API-Key")
    if key is None:
        raise KlaviyoError(
            401,
            "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.",
            code="not_authenticated",
        )
    if not matches(key, state.credentials(VENDOR).get("api_key")):
        raise KlaviyoError(
            401,
            "Incorrect authentication credentials.",
            code="authentication_failed",
            title="Incorrect authentication credentials.",
        )
    return key


def _check_revision(request: Request) -> None:
    revision = header(request, "revision")
    if revision is None or not _REVISION.match(revision):
        raise invalid(
            "Missing or invalid revision header. Provide the API revision as `revision: YYYY-MM-DD`.",
            parameter="revision",
        )


def _rate_limit(state: SandboxState, tier: str, endpoint: str, api_key: str) -> LimitInfo:
    """Count the request in the endpoint's burst (1 s) and steady (1 min) fixed windows.

    Limits are per account *and* endpoint, so the limiter key names both. The burst window
    is checked first and the steady one second, one at a time, because Klaviyo's
    `RateLimit-*` headers describe the steady window and `hit` reports only the tightest
    rule of a multi-rule check."""
    key = f"{api_key}:{endpoint}"
    for window in ("burst", "steady"):
        decision = state.limits.hit(VENDOR, f"{window}_{tier}", key)
        if not decision.allowed:
            raise throttled(decision.retry_after)
    return decision.info


def _limit_headers(info: LimitInfo) -> dict[str, str]:
    if info.limit == 0:  # rule switched off: nothing to report
        return {}
    return {
        "RateLimit-Limit": str(info.limit),
        "RateLimit-Remaining": str(info.remaining),
        "RateLimit-Reset": str(math.ceil(info.reset_seconds)),
    }


def endpoint(state: SandboxState, tier: str, name: str, handler: Handler) -> Callable[[Request], Response]:
    """Wrap a handler with auth, revision check and the endpoint's rate-limit tier
    ("xs", "s", "m", "l", "xl", as in Klaviyo's reference)."""

    def run(request: Request) -> Response:
        try:
            api_key = _authenticate(state, request)
            _check_revision(request)
            info = _rate_limit(state, tier, name, api_key)
        except KlaviyoError as exc:
            return exc.response()
        ctx = Ctx(state, request, api_key)
        try:
            response = handler(ctx)
        except KlaviyoError as exc:
            response = exc.response()
        finally:
            ctx.release()
        # Every response that was not throttled reports the steady window, errors included.
        response.headers.update(_limit_headers(info))
        return response

    return run


def route(path: str, **methods: Callable[[Request], Response]) -> list[Route]:
    """Routes for `path` with and without the trailing slash Klaviyo's own links carry,
    dispatching on method (`GET=..., POST=...`); other methods get Klaviyo's 405."""
    allowed = {m.upper(): h for m, h in methods.items()}

    def dispatch(request: Request) -> Response:
        handler = allowed.get(request.method)
        if handler is None:
            return KlaviyoError(405, f'Method "{request.method}" not allowed.').response()
        return handler(request)

    every = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [Route(path, dispatch, methods=every), Route(f"{path}/", dispatch, methods=every)]


def unknown_path(request: Request) -> Response:
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    return not_found(f"The path {path} was not found.").response()

"""Mailchimp Marketing API v3 conventions shared by every endpoint: problem+json errors, the
API-key check, query parameters, `fields`/`exclude_fields` projection and `_links`."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.server import auth
from sandbox.server.state import SandboxState

VENDOR = "mailchimp"
ERROR_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
PROBLEM_JSON = "application/problem+json; charset=utf-8"
#: The detail of a 400 "Invalid Resource" whose `errors` array names the fields.
NOT_VALID = "The resource submitted could not be validated. For field-specific details, see the 'errors' array."
#: Documented paging: `count` defaults to 10 and may be at most 1000.
DEFAULT_COUNT = 10
MAX_COUNT = 1000

_DEFAULT_DETAILS = {
    400: ("Bad Request", "The request could not be processed."),
    401: (
        "API Key Invalid",
        "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
    ),
    403: ("Forbidden", "You don't have permission to access this resource."),
    404: ("Resource Not Found", "The requested resource could not be found."),
    405: (
        "Method Not Allowed",
        "The requested method and resource are not compatible. See the Allow header for this "
        "resource's available methods.",
    ),
    429: ("Too Many Requests", "You have exceeded the limit of 10 simultaneous connections."),
    500: (
        "Internal Server Error",
        "An unexpected internal error has occurred. Please contact Support for more information.",
    ),
    503: ("Service Unavailable", "This service is temporarily unavailable. Please try again later."),
}


class ApiError(Exception):
    """An error answered as Mailchimp's problem document (`raise` it anywhere in a handler)."""

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        default_title, default_detail = _DEFAULT_DETAILS.get(status, ("Error", "An error occurred."))
        self.status = status
        self.title = title or default_title
        self.detail = detail or default_detail
        self.errors = errors
        super().__init__(f"{status} {self.title}: {self.detail}")

    def response(self) -> Response:
        return problem(self.status, self.title, self.detail, errors=self.errors)


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Mailchimp's RFC 7807 error body; `instance` is a fresh request id, as on the real API."""
    body: dict[str, Any] = {
        "type": ERROR_TYPE,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": str(uuid.uuid4()),
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def error_response(status: int, retry_after: float | None) -> Response:
    """The vendor error the server uses for injected faults and unhandled exceptions.

    Mailchimp itself sends no Retry-After (its only documented limit is on simultaneous
    connections); the sandbox adds one to injected 429s when the fault config asks for it."""
    title, detail = _DEFAULT_DETAILS.get(status, ("Error", "An error occurred."))
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return problem(status, title, detail, headers=headers)


# --------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------


def api_key(request: Request) -> str | None:
    """The API key from HTTP Basic (any user name, the key as password; what the SDKs send),
    the legacy `Authorization: apikey <key>`, or an OAuth-style Bearer token."""
    basic = auth.basic_auth(request)
    if basic is not None:
        return basic[1] or None
    return auth.authorization(request, "apikey") or auth.bearer_token(request)


def check_api_key(state: SandboxState, request: Request) -> str:
    """The caller's key if it is the world's; raises the 401 Mailchimp answers otherwise."""
    key = api_key(request)
    if key is None:
        raise ApiError(401, "API Key Missing", "Your request did not include an API key.")
    if not auth.matches(key, state.credentials(VENDOR).get("api_key")):
        raise ApiError(401)
    return key


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 of the lower-cased address."""
    return hashlib.md5(email.lower().encode()).hexdigest()


def ts(value: datetime | None) -> str:
    """Mailchimp's timestamp form, e.g. "2026-10-21T15:00:00+00:00"; "" when unset."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def to_second(value: datetime) -> datetime:
    """Served timestamps have whole seconds; filters compare at the same precision so that a
    loader's high-water mark taken from a response never skips or repeats a record."""
    return value.astimezone(UTC).replace(microsecond=0)


_EMAIL = re.compile(r"^[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
#: Domains reserved by RFC 2606/6761 never receive mail; Mailchimp refuses them as fake.
_RESERVED = {"example.com", "example.net", "example.org"}
_RESERVED_TLDS = {"test", "example", "invalid", "localhost"}


def valid_email(email: str) -> bool:
    if not _EMAIL.match(email):
        return False
    domain = email.rsplit("@", 1)[1].lower()
    return domain not in _RESERVED and domain.rsplit(".", 1)[-1] not in _RESERVED_TLDS


# --------------------------------------------------------------------------------------------
# Query parameters
# --------------------------------------------------------------------------------------------


def int_param(request: Request, name: str, default: int, *, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "Invalid Resource", f"The value for '{name}' must be an integer.") from None
    if value < 0:
        raise ApiError(400, "Invalid Resource", f"The value for '{name}' must be at least 0.")
    # Mailchimp serves at most `maximum` records whatever count asks for.
    return min(value, maximum) if maximum is not None else value


def paging(request: Request) -> tuple[int, int]:
    """(count, offset) with Mailchimp's defaults."""
    return int_param(request, "count", DEFAULT_COUNT, maximum=MAX_COUNT), int_param(request, "offset", 0)


def time_param(request: Request, name: str) -> datetime | None:
    """An ISO 8601 filter value ("2026-10-21T15:41:36+00:00", a trailing Z, or a date)."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace(" ", "+").replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "Invalid Resource", f"The value for '{name}' must be an ISO 8601 date-time.") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def choice_param(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    if raw not in allowed:
        raise ApiError(400, "Invalid Resource", f"The value for '{name}' must be one of: {', '.join(allowed)}.")
    return raw


def in_window(value: datetime | None, since: datetime | None, before: datetime | None) -> bool:
    """`since_*` is inclusive and `before_*` exclusive, both at whole seconds."""
    if since is None and before is None:
        return True
    if value is None:
        return False
    value = to_second(value)
    return (since is None or value >= since) and (before is None or value < before)


def second_bound(bound: datetime | None) -> datetime | None:
    """A window bound rounded up to a whole second, for `in_window` over many values: a time
    cut to its second is >= (or <) a bound exactly when the time itself is >= (or <) the bound
    rounded up, so each value is compared as it is instead of being cut first."""
    if bound is None:
        return None
    second = to_second(bound)
    return second if second == bound else second + timedelta(seconds=1)


# --------------------------------------------------------------------------------------------
# Response shaping
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ctx:
    """What a handler needs besides the request: the state and the API base URL the caller
    used (`http://host:port/mailchimp/3.0`), for `_links`."""

    state: SandboxState
    base: str

    def link(self, rel: str, path: str, method: str = "GET") -> dict[str, str]:
        return {"rel": rel, "href": f"{self.base}{path}", "method": method}


def _split(spec: str | None) -> list[list[str]]:
    return [p.strip().split(".") for p in (spec or "").split(",") if p.strip()]


def _keep(obj: Any, paths: list[list[str]]) -> Any:
    if isinstance(obj, list):
        return [_keep(item, paths) for item in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, value in obj.items():
        subs = [p[1:] for p in paths if p[0] == key]
        if subs:
            out[key] = value if any(not s for s in subs) else _keep(value, subs)
    return out


def _drop(obj: Any, paths: list[list[str]]) -> Any:
    if isinstance(obj, list):
        return [_drop(item, paths) for item in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, value in obj.items():
        subs = [p[1:] for p in paths if p[0] == key]
        if any(not s for s in subs):
            continue
        out[key] = _drop(value, subs) if subs else value
    return out


def respond(request: Request, body: dict[str, Any], status: int = 200) -> Response:
    """JSON with Mailchimp's `fields` / `exclude_fields` (comma-separated dot paths, e.g.
    `members.email_address,total_items`) applied."""
    fields = _split(request.query_params.get("fields"))
    if fields:
        body = _keep(body, fields)
    excluded = _split(request.query_params.get("exclude_fields"))
    if excluded:
        body = _drop(body, excluded)
    return JSONResponse(body, status_code=status)


def page_of(
    ctx: Ctx,
    resource: str,
    records: list[dict[str, Any]],
    offset: int,
    *,
    id_field: str = "id",
    timestamp_field: str | None = None,
) -> list[dict[str, Any]]:
    """One page after the sandbox's record-level faults (every served page goes through here)."""
    return ctx.state.faults.apply_record_faults(
        VENDOR, resource, records, f"offset={offset}", id_field=id_field, timestamp_field=timestamp_field
    )


def query(state: SandboxState, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows as dicts, with named parameters (`$clock`)."""
    cur = state.db().execute(sql, params)
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


Handler = Callable[[Ctx, Request], Response]

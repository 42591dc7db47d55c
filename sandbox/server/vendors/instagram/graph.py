"""Graph API conventions shared by every Instagram endpoint: the error envelope, the `fields`
parameter, opaque paging cursors and the rate-limit usage headers."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.responses import JSONResponse

from sandbox.server.ratelimit import LimitInfo
from sandbox.server.state import parse_ts

#: Message of error code 80002, the Instagram Business Use Case throttle.
THROTTLED_MESSAGE = (
    "(#80002) There have been too many calls to this Instagram account. Wait a bit and try again. "
    "For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting."
)


class GraphError(Exception):
    """A Graph API error: `{"error": {message, type, code, [error_subcode], [is_transient],
    fbtrace_id}}` with its HTTP status (the Graph API answers client errors with 400)."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        type_: str = "OAuthException",
        subcode: int | None = None,
        transient: bool | None = None,
        status: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.type, self.subcode = message, code, type_, subcode
        self.transient, self.status, self.headers = transient, status, dict(headers or {})

    def response(self, extra_headers: Mapping[str, str] | None = None) -> JSONResponse:
        body: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.transient is not None:
            body["is_transient"] = self.transient
        body["code"] = self.code
        if self.subcode is not None:
            body["error_subcode"] = self.subcode
        body["fbtrace_id"] = fbtrace_id()
        headers = {**self.headers, **(extra_headers or {})}
        return JSONResponse({"error": body}, status_code=self.status, headers=headers)


def fbtrace_id() -> str:
    """Meta's per-request support id (opaque, 11 characters)."""
    return secrets.token_urlsafe(8)[:11]


def missing_token() -> GraphError:
    return GraphError("An access token is required to request this resource.", code=104)


def invalid_token() -> GraphError:
    message = "Invalid OAuth access token - Cannot parse access token"
    return GraphError(
        message,
        code=190,
        headers={"WWW-Authenticate": f'OAuth "Facebook Platform" "invalid_token" "{message}"'},
    )


def no_such_object(object_id: str) -> GraphError:
    return GraphError(
        f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot be loaded due to "
        "missing permissions, or does not support this operation. Please read the Graph API "
        "documentation at https://developers.facebook.com/docs/graph-api",
        code=100,
        subcode=33,
        type_="GraphMethodException",
    )


def unknown_path(path: str) -> GraphError:
    return GraphError(f"Unknown path components: {path}", code=2500)


def invalid_parameter(message: str) -> GraphError:
    return GraphError(f"(#100) {message}", code=100)


# --------------------------------------------------------------------------------------------
# fields
# --------------------------------------------------------------------------------------------

#: Requested fields: name -> subfields (None when the field was named without braces).
Fields = dict[str, "Fields | None"]

_FIELD_TOKENS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\S")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_fields(text: str) -> Fields:
    """Parse `id,caption,from{id,username}` into {"id": None, "caption": None, "from": {...}}.
    Field modifiers such as `.limit(5)` are not supported (a syntax error)."""
    tokens = _FIELD_TOKENS.findall(text)
    pos = 0

    def syntax_error() -> GraphError:
        return invalid_parameter(f"Syntax error in fields: {text!r}")

    def parse_list(depth: int) -> Fields:
        nonlocal pos
        out: Fields = {}
        while pos < len(tokens):
            token = tokens[pos]
            if token == ",":
                pos += 1
                continue
            if token == "}":
                if depth == 0:
                    raise syntax_error()
                return out
            if not _NAME.fullmatch(token):
                raise syntax_error()
            pos += 1
            sub: Fields | None = None
            if pos < len(tokens) and tokens[pos] == "{":
                pos += 1
                sub = parse_list(depth + 1)
                if pos >= len(tokens) or tokens[pos] != "}":
                    raise syntax_error()
                pos += 1
            out[token] = sub
        if depth:
            raise syntax_error()
        return out

    return parse_list(0)


def project(row: Mapping[str, Any], fields: Fields, node_type: str, nested: Mapping[str, str]) -> dict[str, Any]:
    """The requested fields of a row, in request order, then `id` (the Graph API always returns
    the id). `nested` names the node type of object-valued fields, for error messages."""
    out: dict[str, Any] = {}
    for name, sub in fields.items():
        if name not in row:
            raise invalid_parameter(f"Tried accessing nonexisting field ({name}) on node type ({node_type})")
        value = row[name]
        if value is None:
            continue  # the Graph API omits fields that have no value
        if isinstance(value, Mapping):
            value = project(value, sub, nested.get(name, node_type), nested) if sub else dict(value)
        out[name] = value
    if "id" in row and "id" not in out:
        out["id"] = row["id"]
    return out


def graph_time(ts: datetime) -> str:
    """The Graph API's timestamp format, e.g. `2026-10-18T09:43:21+0000`."""
    return parse_ts(ts).strftime("%Y-%m-%dT%H:%M:%S+0000")


# --------------------------------------------------------------------------------------------
# cursors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position in a newest-first listing: the row's timestamp (epoch µs) and id."""

    epoch_us: int
    id: str

    def encode(self) -> str:
        raw = f"{self.epoch_us}:{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, param: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            epoch, _, row_id = raw.partition(":")
            if not row_id:
                raise ValueError(raw)
            return cls(int(epoch), row_id)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise invalid_parameter(f"The '{param}' cursor is not valid: {text!r}") from None


# --------------------------------------------------------------------------------------------
# rate-limit usage headers
# --------------------------------------------------------------------------------------------


def usage_headers(ig_user_id: str, info: LimitInfo, retry_after: float = 0.0) -> dict[str, str]:
    """`X-App-Usage` and `X-Business-Use-Case-Usage` as percentages of the call budget.
    The sandbox measures calls only, so CPU and total time are reported as 0%."""
    percent = 100 if retry_after else (min(100, math.ceil(100 * info.used / info.limit)) if info.limit else 0)
    regain = math.ceil(retry_after / 60) if retry_after else 0
    app = {"call_count": percent, "total_cputime": 0, "total_time": 0}
    buc = {
        ig_user_id: [
            {
                "type": "instagram",
                "call_count": percent,
                "total_cputime": 0,
                "total_time": 0,
                "estimated_time_to_regain_access": regain,
            }
        ]
    }
    return {
        "X-App-Usage": json.dumps(app, separators=(",", ":")),
        "X-Business-Use-Case-Usage": json.dumps(buc, separators=(",", ":")),
    }

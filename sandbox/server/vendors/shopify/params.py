"""Query parameters of Shopify's list endpoints and the opaque `page_info` cursor.

Shopify answers a bad parameter with 400 and `{"errors": {"<param>": "<message>"}}`;
`ParamError` carries exactly that.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DEFAULT_LIMIT = 50
MAX_LIMIT = 250
#: The only parameters a request with `page_info` may carry (Shopify's rule).
PAGE_INFO_COMPANIONS = ("page_info", "limit", "fields")
PAGINATION_DOC = "https://shopify.dev/api/usage/pagination-rest"


class ParamError(Exception):
    """A rejected query parameter: 400 with `{"errors": {param: message}}`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def choice(param: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ParamError(param, f"{param} must be one of: {', '.join(allowed)}")
    return value


def text_list(param: str, value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ParamError(param, f"{param} must not be empty")
    return items


def int_list(param: str, value: str) -> list[int]:
    try:
        return [int(v) for v in text_list(param, value)]
    except ValueError:
        raise ParamError(param, f"{param} must be a comma-separated list of ids") from None


def integer(param: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ParamError(param, f"{param} must be an integer") from None


def limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    n = integer("limit", value)
    if not 1 <= n <= MAX_LIMIT:
        raise ParamError("limit", f"limit must be between 1 and {MAX_LIMIT}")
    return n


def timestamp(param: str, value: str) -> datetime:
    """ISO 8601 with or without an offset, or a bare date. Without an offset Shopify reads the
    shop's time zone, which for the sandbox shop is UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ParamError(param, f"{param} must be an ISO 8601 date-time, got {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def fields(value: str | None) -> list[str] | None:
    """`fields=id,email`: the top-level keys to keep; None keeps all."""
    if value is None or not value.strip():
        return None
    return [f.strip() for f in value.split(",") if f.strip()]


def reject_with_page_info(query: list[tuple[str, str]]) -> None:
    """Shopify's rule: a request that pages with `page_info` may carry only `limit` and
    `fields`; the filters travel inside the cursor."""
    for name, _ in query:
        if name not in PAGE_INFO_COMPANIONS:
            raise ParamError(
                name,
                f"{name} cannot be passed when page_info is present. See {PAGINATION_DOC} for more information.",
            )


@dataclass(frozen=True)
class Cursor:
    """What a `page_info` value encodes: the resource, the direction, the id the page starts
    after (next) or before (previous), and the filters of the first request."""

    resource: str
    direction: str  # "next" | "prev"
    anchor: int
    filters: dict[str, str]

    def encode(self) -> str:
        raw = json.dumps(
            {"r": self.resource, "d": self.direction, "a": self.anchor, "f": self.filters},
            separators=(",", ":"),
            sort_keys=True,
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str, resource: str) -> Cursor:
        invalid = ParamError("page_info", "Invalid value.")
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            data: Any = json.loads(raw)
        except (binascii.Error, ValueError):
            raise invalid from None
        if (
            not isinstance(data, dict)
            or data.get("r") != resource
            or data.get("d") not in ("next", "prev")
            or not isinstance(data.get("a"), int)
            or not isinstance(data.get("f"), dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in data["f"].items())
        ):
            raise invalid
        return cls(resource, data["d"], data["a"], data["f"])

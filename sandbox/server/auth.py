"""Request helpers for vendor modules: credential extraction (each vendor checks credentials
its own way) and reading a body from a plain `def` handler.

Vendors differ: Mixpanel uses HTTP Basic (service account or API secret), HubSpot a Bearer
token, Shopify the `X-Shopify-Access-Token` header, Klaviyo `Authorization: Klaviyo-API-Key
<key>`, Mailchimp Basic with any user name and the API key as password, Instagram an
`access_token` query parameter or a Bearer token. These helpers only parse; compare the
result with the world's credentials (`state.credentials(vendor)`) using `matches()`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any

import anyio.from_thread
from starlette.requests import Request


def header(request: Request, name: str) -> str | None:
    """A request header (case-insensitive name), stripped; None when absent or empty."""
    value = request.headers.get(name)
    return value.strip() or None if value is not None else None


def authorization(request: Request, scheme: str) -> str | None:
    """The credential after `Authorization: <scheme> `, scheme matched case-insensitively
    (e.g. scheme "Klaviyo-API-Key"); None if the header is absent or uses another scheme."""
    value = header(request, "authorization")
    if value is None:
        return None
    found, _, credential = value.partition(" ")
    if found.lower() != scheme.lower():
        return None
    return credential.strip() or None


def bearer_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>`."""
    return authorization(request, "Bearer")


def basic_auth(request: Request) -> tuple[str, str] | None:
    """(user, password) of `Authorization: Basic base64(user:password)`; None if absent or
    not decodable. The password may be empty (Mixpanel's `-u SECRET:` form)."""
    encoded = authorization(request, "Basic")
    if encoded is None:
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; False when either side is missing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def read_body(request: Request) -> bytes:
    """The request body, from a plain `def` handler (which runs in a worker thread and so
    cannot `await request.body()`): hops to the event loop to read it."""
    return anyio.from_thread.run(request.body)


def read_json(request: Request) -> Any:
    """The JSON request body from a plain `def` handler; raises ValueError if not JSON."""
    return json.loads(read_body(request) or b"null")

"""Where the pushes go: each destination's base URL and credential, from the environment.

| variable | default |
|---|---|
| `ACTIVATION__KLAVIYO__BASE_URL` | `SOURCES__KLAVIYO__BASE_URL`, else `https://a.klaviyo.com` |
| `ACTIVATION__KLAVIYO__API_KEY` | `SOURCES__KLAVIYO__API_KEY` (a private key with write scopes) |
| `ACTIVATION__MAILCHIMP__BASE_URL` | `SOURCES__MAILCHIMP__BASE_URL`, else from the key's `-<dc>` suffix |
| `ACTIVATION__MAILCHIMP__API_KEY` | `SOURCES__MAILCHIMP__API_KEY` |
| `ACTIVATION__MAILCHIMP__LIST_ID` | required: the audience whose tags Tessera keeps |

Pushes usually use the same accounts the loaders read, hence the fallbacks; a separate
variable lets a shop give the pushes a key of their own (with write scopes only there).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from activation.destinations.base import Destination


class DestinationNotConfigured(RuntimeError):
    """A destination an audience asks for has no credential; says which variable to set."""


def _setting(destination: str, name: str) -> str | None:
    key = destination.upper()
    return os.environ.get(f"ACTIVATION__{key}__{name}") or os.environ.get(f"SOURCES__{key}__{name}") or None


def _require(destination: str, name: str) -> str:
    value = _setting(destination, name)
    if not value:
        raise DestinationNotConfigured(
            f"{destination}: set ACTIVATION__{destination.upper()}__{name} "
            f"(or SOURCES__{destination.upper()}__{name}) to push there"
        )
    return value


def klaviyo_from_env() -> Destination:
    from activation.destinations.klaviyo import KlaviyoDestination

    base_url = _setting("klaviyo", "BASE_URL") or "https://a.klaviyo.com"
    return KlaviyoDestination(base_url, _require("klaviyo", "API_KEY"))


def mailchimp_from_env() -> Destination:
    from activation.destinations.mailchimp import MailchimpDestination

    list_id = os.environ.get("ACTIVATION__MAILCHIMP__LIST_ID")
    if not list_id:
        raise DestinationNotConfigured("mailchimp: set ACTIVATION__MAILCHIMP__LIST_ID, the audience to keep tags on")
    return MailchimpDestination(_setting("mailchimp", "BASE_URL"), _require("mailchimp", "API_KEY"), list_id)


FACTORIES = {"klaviyo": klaviyo_from_env, "mailchimp": mailchimp_from_env}


def destinations_from_env(names: Iterable[str]) -> dict[str, Destination]:
    return {name: FACTORIES[name]() for name in names}

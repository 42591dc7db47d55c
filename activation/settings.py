"""Where the pushes go: each destination's base URL and credential, from dlt's configuration.

Settings are read the way the loaders read theirs, through dlt's providers: the environment
first, then the `.dlt` files (keys `activation.<destination>.<name>`, falling back to the
loaders' `sources.<destination>.<name>`). API keys come only from the environment or
`.dlt/secrets.toml`, never from `.dlt/config.toml`, which git tracks.

| setting (as an environment variable) | default |
|---|---|
| `ACTIVATION__KLAVIYO__BASE_URL` | `SOURCES__KLAVIYO__BASE_URL`, else `https://a.klaviyo.com` |
| `ACTIVATION__KLAVIYO__API_KEY` | `SOURCES__KLAVIYO__API_KEY` (a private key with write scopes) |
| `ACTIVATION__MAILCHIMP__BASE_URL` | `SOURCES__MAILCHIMP__BASE_URL`, else from the key's `-<dc>` suffix |
| `ACTIVATION__MAILCHIMP__API_KEY` | `SOURCES__MAILCHIMP__API_KEY` |
| `ACTIVATION__MAILCHIMP__LIST_ID` | required: the audience whose tags Tessera keeps |

Pushes usually use the same accounts the loaders read, hence the fallbacks; a separate
setting lets a shop give the pushes a key of their own (with write scopes only there).
A key kept in `.dlt/secrets.toml` for the loaders therefore serves the pushes too, and the
base URLs in the project's `.dlt/config.toml` (the sandbox) are theirs until overridden.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import dlt

from activation.destinations.base import Destination


class DestinationNotConfigured(RuntimeError):
    """A destination an audience asks for has no credential; says which setting to set."""


class SettingInvalid(DestinationNotConfigured):
    """A setting is there but cannot be used as it is (a key with a line break inside): the
    platform is meant to be used, unlike one with no settings at all."""


# Read through dlt's secrets accessor (the environment, then `.dlt/secrets.toml`): a credential
# is never taken from `.dlt/config.toml`, which git tracks.
SECRET_NAMES = frozenset({"API_KEY"})


def _variable(section: str, destination: str, name: str) -> str:
    return f"{section.upper()}__{destination.upper()}__{name.upper()}"


def _setting(destination: str, name: str, sections: tuple[str, ...] = ("activation", "sources")) -> str | None:
    """The first of `<section>.<destination>.<name>` that is set, in the order of `sections`,
    without surrounding whitespace: a CRLF env file or a Kubernetes secret made from a file
    leaves a trailing carriage return or line feed, which `requests` refuses in a header,
    quoting the header (the key) whole in its error. A control character left inside is
    refused here, naming the setting and never the value."""
    accessor = dlt.secrets if name in SECRET_NAMES else dlt.config
    for section in sections:
        value = accessor.get(f"{section}.{destination}.{name.lower()}")
        value = None if value is None else str(value).strip()
        if not value:
            continue
        if any(unicodedata.category(c) == "Cc" for c in value):
            raise SettingInvalid(
                f"{destination}: {_variable(section, destination, name)} (or {section}.{destination}."
                f"{name.lower()} in the .dlt files) holds a control character (a line break, a tab, ...) "
                "inside it; set it again without one"
            )
        return value
    return None


def _require(destination: str, name: str) -> str:
    value = _setting(destination, name)
    if not value:
        raise DestinationNotConfigured(
            f"{destination}: set {_variable('activation', destination, name)} "
            f"(or {_variable('sources', destination, name)}, or the same keys in .dlt/secrets.toml) to push there"
        )
    return value


def klaviyo_from_env() -> Destination:
    from activation.destinations.klaviyo import KlaviyoDestination

    base_url = _setting("klaviyo", "BASE_URL") or "https://a.klaviyo.com"
    return KlaviyoDestination(base_url, _require("klaviyo", "API_KEY"))


def mailchimp_from_env(*, to_push: bool = True) -> Destination:
    """The Mailchimp client; `to_push=False` for one that only erases, which needs no audience
    id (an erasure reaches every audience of the account holding the address)."""
    from activation.destinations.mailchimp import MailchimpDestination

    list_id = _setting("mailchimp", "LIST_ID", sections=("activation",))
    if not list_id and to_push:
        raise DestinationNotConfigured("mailchimp: set ACTIVATION__MAILCHIMP__LIST_ID, the audience to keep tags on")
    return MailchimpDestination(_setting("mailchimp", "BASE_URL"), _require("mailchimp", "API_KEY"), list_id)


FACTORIES = {"klaviyo": klaviyo_from_env, "mailchimp": mailchimp_from_env}


def destinations_from_env(names: Iterable[str]) -> dict[str, Destination]:
    return {name: FACTORIES[name]() for name in names}


def erasers_from_env(names: Iterable[str]) -> dict[str, Destination]:
    """The clients that erase people at each platform: the push clients, but for Mailchimp
    without the audience to tag on."""
    return {name: mailchimp_from_env(to_push=False) if name == "mailchimp" else FACTORIES[name]() for name in names}

"""The email platforms an erasure is sent to, built from their own settings.

The platforms are built the way the pushes build them (`activation.settings`), from settings read
at call time. A platform that is not configured is reported, never silently skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

from activation.destinations.base import Destination

PLATFORMS = ("klaviyo", "mailchimp")


class DestinationUnavailable(RuntimeError):
    pass


def configured_destinations(names: Sequence[str]) -> list[Destination]:
    """One `Destination` per platform name; raises `DestinationUnavailable` saying what to set."""
    from activation.settings import erasers_from_env

    try:
        return list(erasers_from_env(names).values())
    except Exception as exc:  # a missing setting: say which platform and why, once
        message = str(exc)
        if not message.startswith(tuple(f"{name}:" for name in names)):
            message = f"{', '.join(names)}: {message}"
        raise DestinationUnavailable(message) from None


def available_destinations() -> tuple[list[Destination], dict[str, str]]:
    """Every platform that can be built now, and why the others cannot."""
    built, missing = [], {}
    for name in PLATFORMS:
        try:
            built.extend(configured_destinations([name]))
        except DestinationUnavailable as exc:
            missing[name] = str(exc).removeprefix(f"{name}: ")  # keyed by the platform already
    return built, missing

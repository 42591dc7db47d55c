"""The email platforms an erasure is sent to, built from their own settings.

Each destination module (`activation.destinations.klaviyo`, `.mailchimp`) exposes
`from_env() -> Destination`, reading its base URL and credential at call time. A platform whose
module is missing or not configured is reported, not silently skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from activation.destinations.base import Destination

PLATFORMS = ("klaviyo", "mailchimp")


class DestinationUnavailable(RuntimeError):
    pass


def configured_destinations(names: Sequence[str]) -> list[Destination]:
    """One `Destination` per platform name; raises `DestinationUnavailable` saying what to set."""
    out = []
    for name in names:
        try:
            module = importlib.import_module(f"activation.destinations.{name}")
        except ImportError as exc:
            raise DestinationUnavailable(f"no destination module activation.destinations.{name}: {exc}") from None
        factory = getattr(module, "from_env", None)
        if factory is None:
            raise DestinationUnavailable(f"activation.destinations.{name} has no from_env() to build it from settings")
        out.append(factory())
    return out


def available_destinations() -> tuple[list[Destination], dict[str, str]]:
    """Every platform that can be built now, and why the others cannot."""
    built, missing = [], {}
    for name in PLATFORMS:
        try:
            built.extend(configured_destinations([name]))
        except Exception as exc:  # a missing setting of one platform must not stop the others
            missing[name] = str(exc)
    return built, missing

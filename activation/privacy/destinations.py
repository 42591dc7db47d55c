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


class MisconfiguredDestination:
    """A platform whose settings are there but unusable (a key with a line break inside). Its
    erasures fail, so they are kept in `privacy.platform_erasures_pending` and asked again once
    the setting is fixed: a platform the shop set up is never silently left holding the person."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def erase(self, emails: Sequence[str]) -> list:
        raise DestinationUnavailable(self.reason)

    def close(self) -> None:
        pass


def available_destinations() -> tuple[list[Destination], dict[str, str]]:
    """Every platform that can be built now (a misconfigured one as a stand-in whose deletions
    wait), and why the others, with no settings, cannot."""
    from activation.settings import SettingInvalid, erasers_from_env

    built, missing = [], {}
    for name in PLATFORMS:
        try:
            built.extend(erasers_from_env([name]).values())
        except SettingInvalid as exc:
            built.append(MisconfiguredDestination(name, str(exc)))
        except Exception as exc:  # no settings: the shop may not use this platform
            missing[name] = str(exc).removeprefix(f"{name}: ")
    return built, missing

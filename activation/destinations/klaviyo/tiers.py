"""Klaviyo's documented rate-limit tiers and batch sizes for the endpoints a push uses.

Every endpoint is limited per account on its own counters with two fixed windows, burst (1 s)
and steady (1 min). Sizes and batch limits from Klaviyo's API reference (revision 2025-10-15).
"""

from __future__ import annotations

from collections.abc import Mapping

from activation.destinations.pacing import Window

TIERS: dict[str, tuple[Window, Window]] = {
    size: (Window(burst, 1.0), Window(steady, 60.0))
    for size, burst, steady in (("xs", 1, 15), ("s", 3, 60), ("m", 10, 150), ("l", 75, 700), ("xl", 350, 3500))
}

#: Endpoint name -> (method, path template, tier).
ENDPOINTS: dict[str, tuple[str, str, str]] = {
    "get_lists": ("GET", "/api/lists", "l"),
    "create_list": ("POST", "/api/lists", "m"),
    "bulk_import_profiles": ("POST", "/api/profile-bulk-import-jobs", "m"),
    "get_bulk_import_job": ("GET", "/api/profile-bulk-import-jobs/{id}", "m"),
    "get_import_errors": ("GET", "/api/profile-bulk-import-jobs/{id}/import-errors", "m"),
    "bulk_create_events": ("POST", "/api/event-bulk-create-jobs", "m"),
    "get_list_profile_ids": ("GET", "/api/lists/{id}/relationships/profiles", "l"),
    "remove_profiles_from_list": ("DELETE", "/api/lists/{id}/relationships/profiles", "m"),
    "bulk_suppress_profiles": ("POST", "/api/profile-suppression-bulk-create-jobs", "l"),
    "request_profile_deletion": ("POST", "/api/data-privacy-deletion-jobs", "s"),
}

#: Bulk Import Profiles: 10,000 profiles and 5 MB per job.
IMPORT_MAX_PROFILES = 10_000
#: Bulk Create Events: 1,000 events and 5 MB per request.
EVENTS_MAX = 1_000
MAX_PAYLOAD_BYTES = 5 * 1024 * 1024
#: Remove Profiles from List: 1,000 profile ids per request.
REMOVE_MAX_PROFILES = 1_000
#: Bulk Suppress Profiles: 100 emails per request.
SUPPRESS_MAX_EMAILS = 100
#: Emails per `any(email,[...])` lookup (one page of list members, page[size] at most 100).
LOOKUP_MAX_EMAILS = 100


def windows(endpoint: str, tiers: Mapping[str, tuple[Window, Window]] | None = None) -> tuple[Window, Window]:
    """The endpoint's windows: its tier's size in `tiers` (overrides by size) or Klaviyo's."""
    size = ENDPOINTS[endpoint][2]
    return (tiers or {}).get(size, TIERS[size])

"""Klaviyo API (JSON:API, `https://a.klaviyo.com/api/...`) served under `/klaviyo`.

Reads: profiles, lists and list members, metrics, events, campaigns. Writes an audience push
needs: create list, create or update profile, bulk profile import jobs, add/remove list
members, create event, bulk create events, bulk suppress profiles, request profile deletion,
and bulk subscribe (recorded only). See sandbox/docs/klaviyo.md.

Every endpoint has the rate-limit tier Klaviyo's reference gives it (burst per second and
steady per minute, per account and endpoint).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from sandbox.server.state import SandboxState
from sandbox.server.vendors.klaviyo import event_jobs, events, jobs, lists, privacy, profiles
from sandbox.server.vendors.klaviyo.api import Handler, endpoint, error_response, route, unknown_path

__all__ = ["error_response", "mount"]


def mount(state: SandboxState) -> Mount:
    def ep(tier: str, name: str, handler: Handler) -> Callable[[Request], Response]:
        return endpoint(state, tier, name, handler)

    routes: list[BaseRoute] = [
        *route("/api/profiles", GET=ep("l", "get_profiles", profiles.get_profiles)),
        *route("/api/profiles/{id}", GET=ep("l", "get_profile", profiles.get_profile)),
        *route("/api/profile-import", POST=ep("l", "create_or_update_profile", profiles.profile_import)),
        *route("/api/profile-bulk-import-jobs", POST=ep("m", "bulk_import_profiles", jobs.create_bulk_import_job)),
        *route("/api/profile-bulk-import-jobs/{id}", GET=ep("m", "get_bulk_import_job", jobs.get_bulk_import_job)),
        *route(
            "/api/profile-bulk-import-jobs/{id}/import-errors",
            GET=ep("m", "get_import_errors", jobs.get_import_errors),
        ),
        *route(
            "/api/profile-subscription-bulk-create-jobs",
            POST=ep("l", "bulk_subscribe_profiles", jobs.create_subscription_job),
        ),
        *route(
            "/api/lists",
            GET=ep("l", "get_lists", lists.get_lists),
            POST=ep("m", "create_list", lists.create_list),
        ),
        *route("/api/lists/{id}", GET=ep("l", "get_list", lists.get_list)),
        *route("/api/lists/{id}/profiles", GET=ep("l", "get_list_profiles", lists.get_list_profiles)),
        *route(
            "/api/lists/{id}/relationships/profiles",
            GET=ep("l", "get_list_profile_ids", lists.get_list_profile_ids),
            POST=ep("m", "add_profiles_to_list", lists.add_list_profiles),
            DELETE=ep("m", "remove_profiles_from_list", lists.remove_list_profiles),
        ),
        *route("/api/metrics", GET=ep("m", "get_metrics", events.get_metrics)),
        *route("/api/metrics/{id}", GET=ep("m", "get_metric", events.get_metric)),
        *route(
            "/api/events",
            GET=ep("xl", "get_events", events.get_events),
            POST=ep("xl", "create_event", events.create_event),
        ),
        *route("/api/events/{id}", GET=ep("m", "get_event", events.get_event)),
        *route("/api/event-bulk-create-jobs", POST=ep("m", "bulk_create_events", event_jobs.create_event_bulk_job)),
        *route(
            "/api/profile-suppression-bulk-create-jobs",
            POST=ep("l", "bulk_suppress_profiles", privacy.create_suppression_job),
        ),
        *route(
            "/api/profile-suppression-bulk-create-jobs/{id}",
            GET=ep("l", "get_bulk_suppress_profiles_job", privacy.get_suppression_job),
        ),
        *route(
            "/api/data-privacy-deletion-jobs",
            POST=ep("s", "request_profile_deletion", privacy.create_deletion_job),
        ),
        *route("/api/campaigns", GET=ep("m", "get_campaigns", events.get_campaigns)),
        *route("/api/campaigns/{id}", GET=ep("m", "get_campaign", events.get_campaign)),
        Route("/{path:path}", unknown_path, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    return Mount("/klaviyo", routes=routes)

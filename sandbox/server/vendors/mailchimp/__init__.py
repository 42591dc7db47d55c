"""Mailchimp Marketing API v3, served under `/mailchimp/3.0/...` (the real API lives at
`https://<dc>.api.mailchimp.com/3.0/...`). See `sandbox/docs/mailchimp.md` for the endpoints,
limits and every place the sandbox departs from Mailchimp.

Every endpoint checks the API key first (HTTP Basic with the key as password, as the SDKs
send it), then holds one of the key's simultaneous-connection slots while it runs: Mailchimp's
only documented rate limit is 10 concurrent connections per key, and a request over it is
refused with 429 and counted as a rate-limit violation.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.server.state import SandboxState
from sandbox.server.vendors.mailchimp import lists, merge_fields, reports, writes
from sandbox.server.vendors.mailchimp.common import (
    VENDOR,
    ApiError,
    Ctx,
    Handler,
    check_api_key,
    error_response,
)

__all__ = ["error_response", "mount"]

_CONNECTIONS = "connections"


def _endpoint(state: SandboxState, handler: Handler):
    def endpoint(request: Request) -> Response:
        try:
            key = check_api_key(state, request)
            with state.limits.slot(VENDOR, _CONNECTIONS, key) as decision:
                if not decision.allowed:
                    limit = decision.info.limit
                    raise ApiError(429, None, f"You have exceeded the limit of {limit} simultaneous connections.")
                # `_links` are absolute and keep the sandbox prefix: http://host:port/mailchimp/3.0
                base = f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}/3.0"
                return handler(Ctx(state, base), request)
        except ApiError as exc:
            return exc.response()

    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods in Mailchimp's problem shape (with the Allow header)."""
    assert isinstance(exc, HTTPException)
    response = ApiError(exc.status_code).response()
    response.headers.update(exc.headers or {})
    return response


async def _server_error(request: Request, exc: Exception) -> Response:
    return error_response(500, None)


def mount(state: SandboxState) -> Starlette:
    def route(path: str, handler: Handler, method: str = "GET") -> Route:
        return Route(f"/3.0{path}", _endpoint(state, handler), methods=[method])

    member = "/lists/{list_id}/members/{subscriber_hash}"
    routes = [
        route("/", lists.root),
        route("/ping", lists.ping),
        route("/lists", lists.lists_index),
        route("/lists/{list_id}", lists.list_get),
        route("/lists/{list_id}", writes.list_batch, "POST"),
        route("/lists/{list_id}/merge-fields", merge_fields.merge_fields_index),
        route("/lists/{list_id}/merge-fields", merge_fields.merge_field_post, "POST"),
        route("/lists/{list_id}/merge-fields/{merge_id}", merge_fields.merge_field_get),
        route("/lists/{list_id}/members", lists.members_index),
        route("/lists/{list_id}/members", writes.members_post, "POST"),
        route(member, lists.member_get),
        route(member, writes.member_put, "PUT"),
        route(member, writes.member_patch, "PATCH"),
        route(member, writes.member_delete, "DELETE"),
        route(f"{member}/actions/delete-permanent", writes.member_delete_permanent, "POST"),
        route(f"{member}/tags", lists.member_tags_get),
        route(f"{member}/tags", writes.member_tags_post, "POST"),
        route(f"{member}/activity", reports.member_activity),
        route(f"{member}/activity-feed", reports.member_activity_feed),
        route("/lists/{list_id}/segments", lists.segments_index),
        route("/lists/{list_id}/segments", writes.segments_post, "POST"),
        route("/lists/{list_id}/segments/{segment_id}", lists.segment_get),
        route("/lists/{list_id}/segments/{segment_id}", writes.segment_batch, "POST"),
        route("/lists/{list_id}/segments/{segment_id}/members", lists.segment_members),
        route("/campaigns", reports.campaigns_index),
        route("/campaigns/{campaign_id}", reports.campaign_get),
        route("/reports/{campaign_id}/email-activity", reports.email_activity),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _server_error})

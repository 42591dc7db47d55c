"""Instagram Graph API (Instagram API with Facebook Login) on `graph.facebook.com/{version}`.

Served under `/instagram/{version}/...` (any `vNN.N`, or none, as the Graph API defaults an
unversioned call to the app's version):

    GET /{ig-user-id}               the brand's business account (username, name, media_count)
    GET /{ig-user-id}/media         the brand's own media, newest first; since/until filter
    GET /{ig-user-id}/tags          media by others that tag the brand, newest first
    GET /{ig-media-id}              one of the brand's media
    GET /{ig-media-id}/comments     comments on one of the brand's media, newest first
    GET /{ig-comment-id}            one comment

Auth is the `access_token` query parameter or `Authorization: Bearer`. Every authenticated
call counts against the account's Business Use Case budget (4,800 calls per impression of the
account's content in 24 hours; rule `instagram.calls`) and reports its use in `X-App-Usage` /
`X-Business-Use-Case-Usage`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from sandbox.server.auth import bearer_token, matches
from sandbox.server.state import SandboxState, parse_ts
from sandbox.server.vendors.instagram.graph import (
    THROTTLED_MESSAGE,
    Cursor,
    Fields,
    GraphError,
    invalid_parameter,
    invalid_token,
    missing_token,
    no_such_object,
    parse_fields,
    project,
    unknown_path,
    usage_headers,
)
from sandbox.server.vendors.instagram.queries import InstagramStore, Page

VENDOR = "instagram"
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
#: "Returns a maximum of 50 comments per query" (IG Media comments edge reference).
MAX_COMMENTS_LIMIT = 50
_VERSION = re.compile(r"v\d+\.\d+")
#: Node types (for error messages) of object-valued fields.
_NESTED = {"from": "IGCommentFromUser", "media": "IGMedia", "owner": "IGUser"}
#: Fields returned when a request names none (the Graph API's defaults per node type).
_DEFAULT_FIELDS = {"IGUser": "id", "IGMedia": "id", "IGComment": "timestamp,text,id"}


def error_response(status: int, retry_after: float | None = None) -> Response:
    """Graph errors for injected faults. A throttled Graph call really answers 400 with code
    80002; the injected 429 keeps that body but uses HTTP 429 with a Retry-After header."""
    if status == 429:
        headers = {"Retry-After": str(max(1, round(retry_after or 1)))}
        error = GraphError(THROTTLED_MESSAGE, code=80002, transient=True, status=429, headers=headers)
    elif status >= 500:
        message = "An unexpected error has occurred. Please retry your request later."
        error = GraphError(message, code=2, transient=True, status=status)
    else:
        error = GraphError("An unknown error has occurred.", code=1, status=status)
    return error.response()


def _fields(params: QueryParams, node_type: str) -> Fields:
    return parse_fields(params.get("fields") or _DEFAULT_FIELDS[node_type])


def _limit(params: QueryParams) -> int:
    text = params.get("limit")
    if not text:
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise invalid_parameter(f"Param limit must be a number, got {text!r}") from None
    if limit < 1:
        raise invalid_parameter("Param limit must be a positive number")
    return min(limit, MAX_LIMIT)


def _time_param(params: QueryParams, name: str) -> datetime | None:
    """`since`/`until`: a unix timestamp (or, as strtotime would accept, an ISO date)."""
    text = params.get(name)
    if not text:
        return None
    try:
        return datetime.fromtimestamp(int(text), tz=UTC) if text.isdigit() else parse_ts(text)
    except (ValueError, OverflowError, OSError):
        raise invalid_parameter(f"Param {name} must be a unix timestamp, got {text!r}") from None


class _Handler:
    """Resolves one Graph request to a JSON body (raising GraphError for Graph errors)."""

    def __init__(self, state: SandboxState, store: InstagramStore, request: Request) -> None:
        self.state, self.store, self.request = state, store, request
        self.params = request.query_params

    def node(self, node_id: str) -> dict[str, Any]:
        if node_id == self.store.ig_user_id:
            return project(self.store.user(), _fields(self.params, "IGUser"), "IGUser", _NESTED)
        media = self.store.media(node_id)
        if media is not None:
            return project(media, _fields(self.params, "IGMedia"), "IGMedia", _NESTED)
        comment = self.store.comment(node_id)
        if comment is not None:
            return project(comment, _fields(self.params, "IGComment"), "IGComment", _NESTED)
        raise no_such_object(node_id)

    def edge(self, node_id: str, edge: str) -> dict[str, Any]:
        paging = self._paging_params()
        if node_id == self.store.ig_user_id and edge == "media":
            since, until = _time_param(self.params, "since"), _time_param(self.params, "until")
            page = self.store.media_page(**paging, since=since, until=until)
            return self._page_body("media", page, "IGMedia")
        if node_id == self.store.ig_user_id and edge == "tags":
            return self._page_body("tags", self.store.tags_page(**paging), "IGMedia")
        if edge == "comments":
            if node_id == self.store.ig_user_id or self.store.media(node_id) is None:
                raise no_such_object(node_id)
            paging["limit"] = min(paging["limit"], MAX_COMMENTS_LIMIT)
            page = self.store.comments_page(node_id, **paging)
            return self._page_body(f"comments:{node_id}", page, "IGComment")
        if node_id != self.store.ig_user_id and self.store.media(node_id) is None:
            raise no_such_object(node_id)
        raise unknown_path(f"/{edge}")

    def _paging_params(self) -> dict[str, Any]:
        after, before = self.params.get("after"), self.params.get("before")
        return {
            "limit": _limit(self.params),
            "after": Cursor.decode(after, "after") if after else None,
            "before": Cursor.decode(before, "before") if before and not after else None,
        }

    def _page_body(self, resource: str, page: Page, node_type: str) -> dict[str, Any]:
        fields = _fields(self.params, node_type)
        records = [project(row, fields, node_type, _NESTED) for _, row in page.rows]
        after, before = self.params.get("after"), self.params.get("before")
        page_key = f"after:{after}" if after else f"before:{before}" if before else "first"
        records = self.state.faults.apply_record_faults(
            VENDOR, resource, records, page_key, id_field="id",
            timestamp_field="timestamp" if "timestamp" in fields else None,
        )  # fmt: skip
        if not page.rows:
            return {"data": records}
        first, last = page.rows[0][0].encode(), page.rows[-1][0].encode()
        paging: dict[str, Any] = {"cursors": {"before": first, "after": last}}
        backward = bool(before) and not after
        # Next (older rows) exists when a forward read found more, or always when reading
        # backward (we came from there); previous (newer rows) mirrors it.
        if page.has_more or backward:
            paging["next"] = self._link(after=last)
        if after or (backward and page.has_more):
            paging["previous"] = self._link(before=first)
        return {"data": records, "paging": paging}

    def _link(self, **cursor: str) -> str:
        """An absolute URL for the neighbouring page: this request with the cursor replaced."""
        url = self.request.url.remove_query_params(["after", "before"])
        return str(url.include_query_params(limit=_limit(self.params), **cursor))


def mount(state: SandboxState) -> Mount:
    def graph(request: Request) -> Response:
        creds = state.credentials(VENDOR)
        token = request.query_params.get("access_token") or bearer_token(request)
        if not token:
            return missing_token().response()
        if not matches(token, creds.get("access_token")):
            return invalid_token().response()
        ig_user_id = str(creds.get("ig_user_id", ""))
        allowed, retry_after, info = state.limits.hit(VENDOR, "calls", token)
        headers = usage_headers(ig_user_id, info, retry_after)
        try:
            if not allowed:
                raise GraphError(THROTTLED_MESSAGE, code=80002, transient=True)
            segments = [s for s in request.path_params["path"].split("/") if s]
            if segments and _VERSION.fullmatch(segments[0]):
                segments = segments[1:]
            handler = _Handler(state, InstagramStore(state, ig_user_id), request)
            if len(segments) == 1:
                body = handler.node(segments[0])
            elif len(segments) == 2:
                body = handler.edge(*segments)
            else:
                raise unknown_path("/" + "/".join(segments))
        except GraphError as exc:
            return exc.response(headers)
        return JSONResponse(body, headers=headers)

    return Mount(f"/{VENDOR}", routes=[Route("/{path:path}", graph, methods=["GET"])])

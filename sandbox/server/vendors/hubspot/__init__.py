"""HubSpot CRM v3 objects API (contacts, companies, deals) over the sandbox world.

    GET  /crm/v3/objects/{type}             list, cursor paging (`after` = next object id)
    GET  /crm/v3/objects/{type}/{id}        one record
    POST /crm/v3/objects/{type}/search      filters, sort, offset paging, `total`
    POST /crm/v3/associations/{from}/{to}/batch/read
                                            associations of up to 1,000 records; 207 when some
                                            have none (`NO_ASSOCIATIONS_FOUND`)

Auth is a private app's `Authorization: Bearer <token>`. Limits are those of a private app:
100 requests per rolling 10 seconds (`hubspot.burst`), reported in `X-HubSpot-RateLimit-*`
headers, and 5 search requests per second (`hubspot.search`); search requests are exempt from
the ten-secondly limit and carry no rate-limit headers, as on HubSpot. See the sandbox docs
(`hubspot.md`) for every departure from the real service.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from sandbox.server.auth import bearer_token, matches, read_json
from sandbox.server.ratelimit import LimitInfo
from sandbox.server.state import SandboxState
from sandbox.server.vendors.hubspot import errors
from sandbox.server.vendors.hubspot.errors import error_response
from sandbox.server.vendors.hubspot.objects import (
    OBJECT_TYPES,
    ObjectType,
    association_targets,
    associations,
    named_type,
)
from sandbox.server.vendors.hubspot.search import MAX_RESULTS, PastResultWindow, SearchError, parse_search

__all__ = ["error_response", "mount"]

VENDOR = "hubspot"
LIST_DEFAULT_LIMIT = 10
#: List pages hold at most 100 records; a larger `limit` is cut to 100.
LIST_MAX_LIMIT = 100
#: Associations batch read: at most 1,000 ids per request (HubSpot's limit since February 2025).
BATCH_READ_MAX_INPUTS = 1000


@dataclass(frozen=True)
class Admission:
    """Outcome of the auth and rate-limit checks: a refusal to send, or the headers to add."""

    refusal: Response | None
    headers: dict[str, str]


def _limit_headers(info: LimitInfo) -> dict[str, str]:
    if info.limit == 0:  # rule switched off
        return {}
    return {
        "X-HubSpot-RateLimit-Max": str(info.limit),
        "X-HubSpot-RateLimit-Remaining": str(info.remaining),
        "X-HubSpot-RateLimit-Interval-Milliseconds": str(round(info.interval_seconds * 1000)),
    }


def _list_param(request: Request, name: str) -> list[str]:
    """A list query parameter, comma-separated and/or repeated (the SDK repeats it)."""
    return [v.strip() for raw in request.query_params.getlist(name) for v in raw.split(",") if v.strip()]


def _retype_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drift "retyped_field" for HubSpot: every property value is a string, so the shared
    number-to-string retype has nothing to act on; the drift HubSpot's shape allows is the
    reverse, a property arriving as a JSON number (`hs_object_id` here)."""
    out = []
    for record in records:
        value = (record.get("properties") or {}).get("hs_object_id")
        if isinstance(value, str) and value.isdigit():
            record = copy.deepcopy(record)
            record["properties"]["hs_object_id"] = int(value)
        out.append(record)
    return out


def mount(state: SandboxState) -> Mount:
    def admit(request: Request, rule: str) -> Admission:
        token = bearer_token(request)
        if not matches(token, state.credentials(VENDOR).get("access_token")):
            return Admission(errors.unauthorized(), {})
        allowed, retry_after, info = state.limits.hit(VENDOR, rule, token or "")
        if rule == "search":
            # Search answers carry no X-HubSpot-RateLimit-* headers; its 429 names the
            # per-second policy.
            return Admission(None if allowed else errors.rate_limited("SECONDLY", retry_after), {})
        headers = _limit_headers(info)
        return Admission(
            None if allowed else errors.rate_limited("TEN_SECONDLY_ROLLING", retry_after, headers), headers
        )

    def object_type(request: Request, headers: dict[str, str]) -> ObjectType | Response:
        name = request.path_params["object_type"]
        obj = OBJECT_TYPES.get(name)
        return obj or errors.validation_error(f"Unable to infer object type from: {name}", headers)

    def rows(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        cur = state.db().execute(sql, {**params, "clock": state.clock})
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def with_faults(resource: str, records: list[dict[str, Any]], page_key: str) -> list[dict[str, Any]]:
        records = state.faults.apply_record_faults(
            VENDOR, resource, records, page_key, id_field="id", timestamp_field="updatedAt"
        )
        if state.faults.config.drift == "retyped_field" and state.faults.applies_to(VENDOR):
            records = _retype_ids(records)
        return records

    def render(obj: ObjectType, found: list[dict[str, Any]], names: list[str], targets: list[str]) -> list[dict]:
        """Records with the `associations` block for `targets` (search results have none)."""
        records = [obj.render(row, names) for row in found]
        if targets and found:
            linked = associations(state.db(), state.clock, obj, [r["id"] for r in found], targets)
            for record, row in zip(records, found, strict=True):
                if row["id"] in linked:
                    record["associations"] = linked[row["id"]]
        return records

    def list_objects(request: Request) -> Response:
        admission = admit(request, "burst")
        if admission.refusal:
            return admission.refusal
        headers = admission.headers
        obj = object_type(request, headers)
        if isinstance(obj, Response):
            return obj
        q = request.query_params
        try:
            limit = min(max(int(q.get("limit") or LIST_DEFAULT_LIMIT), 1), LIST_MAX_LIMIT)
            after = int(q.get("after") or 0)
        except ValueError:
            return errors.validation_error("limit and after must be integers", headers)
        found: list[dict[str, Any]] = []
        if q.get("archived", "false").lower() != "true":  # nothing is ever archived in the world
            found = rows(
                f"SELECT * FROM ({obj.visible_sql()}) WHERE id >= $after ORDER BY id LIMIT $n",
                {"after": after, "n": limit + 1},
            )
        page, more = found[:limit], len(found) > limit
        names = obj.property_names(_list_param(request, "properties"))
        records = render(obj, page, names, association_targets(_list_param(request, "associations"), obj))
        body: dict[str, Any] = {"results": with_faults(obj.name, records, str(after))}
        if more:
            # The cursor is the id the next page starts from; the link repeats this request.
            next_after = str(page[-1]["id"] + 1)
            link = str(request.url.include_query_params(after=next_after))
            body["paging"] = {"next": {"after": next_after, "link": link}}
        return errors.hubspot_json(body, headers=headers)

    def get_object(request: Request) -> Response:
        admission = admit(request, "burst")
        if admission.refusal:
            return admission.refusal
        headers = admission.headers
        obj = object_type(request, headers)
        if isinstance(obj, Response):
            return obj
        object_id = request.path_params["object_id"]
        archived = request.query_params.get("archived", "false").lower() == "true"
        found = []
        if object_id.isdigit() and not archived:
            found = rows(f"SELECT * FROM ({obj.visible_sql()}) WHERE id = $id", {"id": int(object_id)})
        if not found:
            return errors.not_found(object_id, headers)
        names = obj.property_names(_list_param(request, "properties"))
        targets = association_targets(_list_param(request, "associations"), obj)
        return errors.hubspot_json(render(obj, found, names, targets)[0], headers=headers)

    def search_objects(request: Request) -> Response:
        admission = admit(request, "search")
        if admission.refusal:
            return admission.refusal
        obj = object_type(request, {})
        if isinstance(obj, Response):
            return obj
        try:
            search = parse_search(obj, read_json(request))
        except PastResultWindow:
            return errors.validation_error()
        except SearchError as exc:
            return errors.validation_error(str(exc))
        except ValueError as exc:  # body is not JSON
            return errors.validation_error(f"Invalid input JSON: {exc}")
        view = f"({obj.visible_sql()}) WHERE {search.where}"
        total = rows(f"SELECT count(*) AS n FROM {view}", search.params)[0]["n"]
        # Results past the 10,000th are never served, whatever the page size.
        size = min(search.limit, MAX_RESULTS - search.after)
        found = rows(
            f"SELECT * FROM {view} ORDER BY {search.order} LIMIT $n OFFSET $offset",
            {**search.params, "n": size, "offset": search.after},
        )
        records = render(obj, found, obj.property_names(search.properties), [])
        page_key = json.dumps([search.where, search.params, search.order, search.after], default=str)
        body: dict[str, Any] = {
            "total": total,
            "results": with_faults(f"{obj.name}/search", records, page_key),
        }
        end = search.after + len(found)
        if end < total:
            body["paging"] = {"next": {"after": str(end)}}
        return errors.hubspot_json(body)

    def read_associations(request: Request) -> Response:
        admission = admit(request, "burst")
        if admission.refusal:
            return admission.refusal
        headers = admission.headers
        names = [request.path_params["from_type"], request.path_params["to_type"]]
        source, to_type = (named_type(name) for name in names)
        if source is None or to_type is None:
            unknown = names[0] if source is None else names[1]
            return errors.validation_error(f"Unable to infer object type from: {unknown}", headers)
        if to_type is source:
            return errors.validation_error(f"No associations are defined from {names[0]} to {names[1]}", headers)
        target = to_type.name
        try:
            body = read_json(request)
        except ValueError as exc:
            return errors.validation_error(f"Invalid input JSON: {exc}", headers)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(i, dict) and "id" in i for i in inputs):
            return errors.validation_error("inputs must be a list of objects with an id", headers)
        if len(inputs) > BATCH_READ_MAX_INPUTS:
            return errors.validation_error(
                f"Batch read accepts at most {BATCH_READ_MAX_INPUTS} inputs, got {len(inputs)}", headers
            )
        ids = [str(i["id"]) for i in inputs]
        # Only records that exist at the clock have associations (as a GET of one answers 404).
        asked = sorted({int(i) for i in ids if i.isdigit()})
        existing = rows(f"SELECT id FROM ({source.visible_sql()}) WHERE list_contains($ids, id)", {"ids": asked})
        numeric = [row["id"] for row in existing]
        linked = associations(state.db(), state.clock, source, numeric, [target]) if numeric else {}
        results, failures = [], []
        for object_id in dict.fromkeys(ids):
            block = linked.get(int(object_id)) if object_id.isdigit() else None
            if block:
                results.append({"from": {"id": object_id}, "to": block[target]["results"]})
            else:
                failures.append(errors.no_associations(source.singular, to_type.singular, object_id))
        return errors.batch_json(results, failures, headers)

    return Mount(
        "",
        routes=[
            Route("/crm/v3/associations/{from_type}/{to_type}/batch/read", read_associations, methods=["POST"]),
            Route("/crm/v3/objects/{object_type}/search", search_objects, methods=["POST"]),
            Route("/crm/v3/objects/{object_type}", list_objects, methods=["GET"]),
            Route("/crm/v3/objects/{object_type}/{object_id}", get_object, methods=["GET"]),
        ],
    )

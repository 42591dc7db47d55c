"""Merge fields (audience fields) of a list: `GET`/`POST /lists/{list_id}/merge-fields` and
`GET /lists/{list_id}/merge-fields/{merge_id}`.

Every list has Mailchimp's default fields FNAME, LNAME, ADDRESS and PHONE (merge ids 1-4, the
ones the generated members carry); fields created through the API are destination objects
(vendor "mailchimp", kind "merge_field", key "<list_id>:<merge_id>") and get the next merge id.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.server.vendors.mailchimp.audience import WRITE_LOCK
from sandbox.server.vendors.mailchimp.common import NOT_VALID, VENDOR, ApiError, Ctx, page_of, paging, respond
from sandbox.server.vendors.mailchimp.lists import audience
from sandbox.server.vendors.mailchimp.merge_schema import TYPES, list_merge_fields
from sandbox.server.vendors.mailchimp.writes import read_body, record

#: A merge tag: letters, digits and underscores, at most 10 characters (stored upper case).
_TAG = re.compile(r"^[A-Za-z0-9_]{1,10}$")
#: EMAIL is the address itself (merge id 0); it can never be created as a field.
_RESERVED_TAGS = {"EMAIL"}


def _json(ctx: Ctx, list_id: str, field: dict[str, Any]) -> dict[str, Any]:
    path = f"/lists/{list_id}/merge-fields"
    return {
        "merge_id": field["merge_id"],
        "tag": field["tag"],
        "name": field["name"],
        "type": field["type"],
        "required": bool(field.get("required", False)),
        "default_value": field.get("default_value", ""),
        "public": bool(field.get("public", False)),
        "display_order": field.get("display_order", field["merge_id"] + 1),
        "options": field.get("options", {}),
        "help_text": field.get("help_text", ""),
        "list_id": list_id,
        "_links": [ctx.link("self", f"{path}/{field['merge_id']}"), ctx.link("parent", path)],
    }


def merge_fields_index(ctx: Ctx, request: Request) -> Response:
    list_id = request.path_params["list_id"]
    audience(ctx, list_id)
    count, offset = paging(request)
    kind = request.query_params.get("type")
    fields = [f for f in list_merge_fields(ctx.state, list_id) if not kind or f["type"] == kind]
    page = [_json(ctx, list_id, f) for f in fields[offset : offset + count]]
    return respond(
        request,
        {
            "merge_fields": page_of(ctx, f"merge-fields:{list_id}", page, offset, id_field="merge_id"),
            "list_id": list_id,
            "total_items": len(fields),
            "_links": [ctx.link("self", f"/lists/{list_id}/merge-fields"), ctx.link("parent", f"/lists/{list_id}")],
        },
    )


def merge_field_get(ctx: Ctx, request: Request) -> Response:
    list_id = request.path_params["list_id"]
    audience(ctx, list_id)
    wanted = request.path_params["merge_id"]
    for field in list_merge_fields(ctx.state, list_id):
        if str(field["merge_id"]) == wanted:
            return respond(request, _json(ctx, list_id, field))
    raise ApiError(404)


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "Invalid Resource", NOT_VALID, errors=[{"field": field, "message": message}])


def merge_field_post(ctx: Ctx, request: Request) -> Response:
    """Add a merge field: `name` and `type` required; `tag` optional (Mailchimp then names it
    MMERGE<id>); a tag already used on the list is refused."""
    list_id = request.path_params["list_id"]
    audience(ctx, list_id)
    body = read_body(request)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _invalid("name", "This value should not be blank.")
    if body.get("type") not in TYPES:
        raise _invalid("type", "Data did not match any of the schemas described in anyOf.")
    tag = body.get("tag")
    if tag is not None and (not isinstance(tag, str) or not _TAG.match(tag)):
        raise _invalid("tag", "Merge tags may hold letters, digits and underscores, at most 10 characters.")
    with WRITE_LOCK:
        fields = list_merge_fields(ctx.state, list_id)
        merge_id = max(f["merge_id"] for f in fields) + 1
        tag = (tag or f"MMERGE{merge_id}").upper()
        if tag in _RESERVED_TAGS or tag in {f["tag"] for f in fields}:
            raise ApiError(400, "Invalid Resource", f'A Merge Field with the tag "{tag}" already exists for this list.')
        field = {
            "merge_id": merge_id,
            "tag": tag,
            "name": name.strip(),
            "type": body["type"],
            "required": bool(body.get("required", False)),
            "default_value": str(body.get("default_value") or ""),
            "public": bool(body.get("public", False)),
            "display_order": int(body.get("display_order") or merge_id + 1),
            "options": body.get("options") if isinstance(body.get("options"), dict) else {},
            "help_text": str(body.get("help_text") or ""),
        }
        ctx.state.destinations.upsert(VENDOR, "merge_field", f"{list_id}:{merge_id}", field)
    record(ctx, "merge_field_create", f"{list_id}:{merge_id}", body)
    return respond(request, _json(ctx, list_id, field))

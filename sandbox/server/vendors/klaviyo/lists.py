"""Lists and list membership: the world's lists and members overlaid with API writes.

Membership written through the API is stored per (list, profile) as kind "list_member" with
`member` true (added) or false (removed) and the world clock of the write. A store member
removed through the API stays removed unless the store shows it joining again later.
"""

from __future__ import annotations

import os
from collections.abc import Set
from typing import Any

from starlette.responses import Response

from sandbox.server.vendors.klaviyo import overlays
from sandbox.server.vendors.klaviyo.api import VENDOR, Ctx, invalid, iso, jsonapi, not_found
from sandbox.server.vendors.klaviyo.profiles import (
    PROFILE_FILTERS,
    VISIBLE,
    WRITE_LOCK,
    profile_source,
    render_profiles,
    resource_body,
    take_visible,
    visible_order,
    visible_profiles,
)
from sandbox.server.vendors.klaviyo.query import Collection, Row, fetch_one, ff, list_response, sparse
from sandbox.server.vendors.klaviyo.windows import Slice, Windowed

_ALNUM = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
#: Add/Remove Profiles to/from List take at most this many profiles per request.
MAX_MEMBERS_PER_REQUEST = 1000


def new_list_id() -> str:
    """Six alphanumerics, like Klaviyo's list and metric ids."""
    return "".join(_ALNUM[b % len(_ALNUM)] for b in os.urandom(6))


# --------------------------------------------------------------------------------------------
# Lists
# --------------------------------------------------------------------------------------------


def _list_source(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    overlays.use(ctx, overlays.LISTS)
    sql = f"""
        SELECT list_id AS id, name, opt_in_process,
            date_trunc('second', created_at) AS created, date_trunc('second', updated_at) AS updated
        FROM klaviyo_lists WHERE created_at <= $clock
        UNION ALL
        SELECT id, name, opt_in_process, date_trunc('second', created), date_trunc('second', updated)
        FROM {overlays.LISTS.name}
    """
    return sql, {"clock": ctx.state.clock}


def _render_lists(ctx: Ctx, rows: list[Row]) -> list[dict[str, Any]]:
    return [
        {
            "type": "list",
            "id": row["id"],
            "attributes": sparse(
                ctx,
                "list",
                {
                    "name": row["name"],
                    "created": iso(row["created"]),
                    "updated": iso(row["updated"]),
                    "opt_in_process": row["opt_in_process"],
                },
            ),
            "relationships": {
                rel: {
                    "links": {
                        "self": ctx.link(f"/api/lists/{row['id']}/relationships/{rel}"),
                        "related": ctx.link(f"/api/lists/{row['id']}/{rel}"),
                    }
                }
                for rel in ("profiles", "tags", "flow-triggers")
            },
            "links": {"self": ctx.link(f"/api/lists/{row['id']}")},
        }
        for row in rows
    ]


LISTS = Collection(
    name="lists",
    source=_list_source,
    render=_render_lists,
    filters={
        "id": ff("id", "string", "any", "equals"),
        "name": ff("name", "string", "any", "equals"),
        "created": ff("created", "datetime", "greater-than"),
        "updated": ff("updated", "datetime", "greater-than"),
    },
    sorts={"id": "id", "name": "name", "created": "created", "updated": "updated"},
    default_size=10,  # Get Lists returns at most 10 lists per page
    max_size=10,
    timestamp_field="attributes.updated",
)


def require_list(ctx: Ctx, list_id: str) -> Row:
    row = fetch_one(ctx, LISTS, list_id)
    if row is None:
        raise not_found(f"A list with id {list_id} does not exist.")
    return row


def get_lists(ctx: Ctx) -> Response:
    return list_response(ctx, LISTS)


def get_list(ctx: Ctx) -> Response:
    row = require_list(ctx, ctx.request.path_params["id"])
    return jsonapi({"data": _render_lists(ctx, [row])[0], "links": {"self": ctx.link(f"/api/lists/{row['id']}")}})


def create_list(ctx: Ctx) -> Response:
    """POST /api/lists: 201 with the new list. Klaviyo allows duplicate names."""
    body = ctx.body()
    attributes = resource_body(body, "list").get("attributes") or {}
    name = attributes.get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid("The list name is required.", pointer="/data/attributes/name")
    opt_in = attributes.get("opt_in_process") or "single_opt_in"
    if opt_in not in ("single_opt_in", "double_opt_in"):
        raise invalid(
            "opt_in_process must be single_opt_in or double_opt_in.",
            pointer="/data/attributes/opt_in_process",
        )
    list_id = new_list_id()
    overlays.put(ctx, overlays.LISTS, list_id, {"name": name, "opt_in_process": opt_in})
    ctx.state.destinations.record(VENDOR, "list_create", list_id, body)
    row = require_list(ctx, list_id)
    return jsonapi({"data": _render_lists(ctx, [row])[0], "links": {"self": ctx.link(f"/api/lists/{list_id}")}}, 201)


# --------------------------------------------------------------------------------------------
# Membership
# --------------------------------------------------------------------------------------------


#: Visible (list_id, profile_id, joined_group_at) rows, over the member overlay.
_MEMBERS_SQL = f"""
    SELECT s.list_id, s.profile_id, s.joined_at AS joined_group_at
    FROM klaviyo_list_members AS s
    LEFT JOIN {overlays.MEMBERS.name} AS o ON o.list_id = s.list_id AND o.profile_id = s.profile_id
    WHERE s.joined_at <= $clock AND (o.member IS NULL OR o.member OR s.joined_at > o.at)
    UNION ALL
    SELECT o.list_id, o.profile_id, o.at FROM {overlays.MEMBERS.name} AS o
    WHERE o.member AND NOT EXISTS (
        SELECT 1 FROM klaviyo_list_members AS s
        WHERE s.list_id = o.list_id AND s.profile_id = o.profile_id AND s.joined_at <= $clock)
"""


def _members_sql(ctx: Ctx) -> str:
    """Visible (list_id, profile_id, joined_group_at) rows; registers the member overlay."""
    overlays.use(ctx, overlays.MEMBERS)
    return _MEMBERS_SQL


def _list_profiles_source(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    profiles, params = profile_source(ctx)
    sql = f"""
        SELECT p.*, date_trunc('second', m.joined_group_at) AS joined_group_at
        FROM ({profiles}) AS p JOIN ({_members_sql(ctx)}) AS m ON m.profile_id = p.id
        WHERE m.list_id = $list_id
    """
    return sql, {**params, "list_id": ctx.request.path_params["id"]}


_WINDOW = "klaviyo_list_profile_window"
_MEMBERS = "klaviyo_list_members_in_order"


def _list_profile_windows(ctx: Ctx, sort_sql: str) -> Windowed | None:
    """The list's members in the sort's order, as positions among the visible profiles and
    their join times: computed once per list, sort and state of the profiles and the
    members, so a page takes only its own rows instead of joining every profile with every
    member (the whole-list read every night is thousands of pages at a million customers)."""
    visible = visible_profiles(ctx)
    (members,) = overlays.use(ctx, overlays.MEMBERS)
    list_id = ctx.request.path_params["id"]
    sql = f"""
        SELECT p._pos, p.id, date_trunc('second', m.joined_group_at) AS joined_group_at
        FROM {VISIBLE} AS p JOIN ({_MEMBERS_SQL}) AS m ON m.profile_id = p.id
        WHERE m.list_id = $list_id
    """
    # Over the member overlay just registered, which the version names, at the clock of the
    # visible profiles, which theirs does.
    params = {"clock": visible.clock, "list_id": list_id}
    order = visible.derived.get(
        ("members", list_id, sort_sql),
        (members,),
        lambda: visible_order(ctx, visible, sql, sort_sql, params, ("joined_group_at",)),
    )
    if order is None:
        return None
    ordered, keys = order

    def relation(slices: list[Slice]) -> tuple[str, dict[str, Any]]:
        ((lo, hi),) = slices
        rows = ordered.slice(lo, hi - lo)
        window = take_visible(visible, rows["_pos"]).append_column("joined_group_at", rows["joined_group_at"])
        ctx.overlay(_WINDOW, window)
        return f"SELECT * FROM {_WINDOW}", {}

    def whole() -> tuple[str, dict[str, Any]]:
        ctx.overlay(VISIBLE, visible.table)
        ctx.overlay(_MEMBERS, ordered)
        sql = f"SELECT p.* EXCLUDE (_pos), m.joined_group_at FROM {VISIBLE} AS p JOIN {_MEMBERS} AS m USING (_pos)"
        return sql, {}

    return Windowed([keys], relation, whole)


def _render_members(ctx: Ctx, rows: list[Row]) -> list[dict[str, Any]]:
    joined = {r["id"]: {"joined_group_at": iso(r["joined_group_at"])} for r in rows}
    return render_profiles(ctx, rows, joined)


_MEMBER_FILTERS = {
    "email": PROFILE_FILTERS["email"],
    "phone_number": PROFILE_FILTERS["phone_number"],
    "joined_group_at": ff(
        "joined_group_at", "datetime", "greater-or-equal", "greater-than", "less-or-equal", "less-than"
    ),
}

LIST_PROFILES = Collection(
    name="list_profiles",
    source=_list_profiles_source,
    render=_render_members,
    filters=_MEMBER_FILTERS,
    sorts={"id": "id", "joined_group_at": "joined_group_at"},
    timestamp_field="attributes.joined_group_at",
    windows=_list_profile_windows,
)

LIST_PROFILE_IDS = Collection(
    name="list_profile_ids",
    source=_list_profiles_source,
    render=lambda ctx, rows: [{"type": "profile", "id": r["id"]} for r in rows],
    filters=_MEMBER_FILTERS,
    sorts={"joined_group_at": "joined_group_at"},  # the only sort Klaviyo documents for it
    max_size=100,  # Get Profile IDs for List: `page[size]` at most 100, as Klaviyo's reference gives
    windows=_list_profile_windows,
)


def get_list_profiles(ctx: Ctx) -> Response:
    require_list(ctx, ctx.request.path_params["id"])
    return list_response(ctx, LIST_PROFILES)


def get_list_profile_ids(ctx: Ctx) -> Response:
    require_list(ctx, ctx.request.path_params["id"])
    return list_response(ctx, LIST_PROFILE_IDS)


def _current_members(ctx: Ctx, list_id: str, profile_ids: list[str]) -> set[str]:
    if not profile_ids:
        return set()
    cur = ctx.db().execute(
        f"SELECT profile_id FROM ({_members_sql(ctx)}) AS m"
        " WHERE list_id = $list_id AND profile_id IN (SELECT unnest($ids))",
        {"clock": ctx.state.clock, "list_id": list_id, "ids": profile_ids},
    )
    return {r[0] for r in cur.fetchall()}


def _existing_profiles(ctx: Ctx, profile_ids: list[str]) -> set[str]:
    relation, params = profile_source(ctx)
    cur = ctx.db().execute(
        f"SELECT id FROM ({relation}) AS p WHERE id IN (SELECT unnest($ids))", {**params, "ids": profile_ids}
    )
    return {r[0] for r in cur.fetchall()}


def set_membership(
    ctx: Ctx, list_id: str, profile_ids: list[str], member: bool, *, new_profiles: Set[str] = frozenset()
) -> int:
    """Add (or remove) visible profiles to (from) a list; returns how many changed.
    `new_profiles` are ids created by the caller's write just now: they belong to no list,
    so only the others are looked up."""
    with WRITE_LOCK:
        current = _current_members(ctx, list_id, [pid for pid in profile_ids if pid not in new_profiles])
        changing = [pid for pid in dict.fromkeys(profile_ids) if (pid in current) != member]
        payloads = [(f"{list_id}:{pid}", {"list_id": list_id, "profile_id": pid, "member": member}) for pid in changing]
        overlays.put_many(ctx, overlays.MEMBERS, payloads)
    return len(changing)


def _profile_ids(ctx: Ctx, body: dict[str, Any]) -> list[str]:
    data = body["data"]
    if not isinstance(data, list) or not data:
        raise invalid("`data` must be a non-empty array of profile identifiers.", pointer="/data")
    if len(data) > MAX_MEMBERS_PER_REQUEST:
        raise invalid(
            f"At most {MAX_MEMBERS_PER_REQUEST} profiles can be sent per request; got {len(data)}.",
            pointer="/data",
        )
    ids = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or item.get("type") != "profile" or not isinstance(item.get("id"), str):
            raise invalid('Each item must be {"type": "profile", "id": "..."}.', pointer=f"/data/{i}")
        ids.append(item["id"])
    existing = _existing_profiles(ctx, ids)
    for i, pid in enumerate(ids):
        if pid not in existing:
            raise invalid(f"A profile with id {pid} does not exist.", pointer=f"/data/{i}/id")
    return ids


def add_list_profiles(ctx: Ctx) -> Response:
    """POST /api/lists/{id}/relationships/profiles: 204; does not change consent."""
    list_id = require_list(ctx, ctx.request.path_params["id"])["id"]
    body = ctx.body()
    set_membership(ctx, list_id, _profile_ids(ctx, body), member=True)
    ctx.state.destinations.record(VENDOR, "list_add_profiles", list_id, body)
    return jsonapi(None, 204)


def remove_list_profiles(ctx: Ctx) -> Response:
    """DELETE /api/lists/{id}/relationships/profiles: 204."""
    list_id = require_list(ctx, ctx.request.path_params["id"])["id"]
    body = ctx.body()
    set_membership(ctx, list_id, _profile_ids(ctx, body), member=False)
    ctx.state.destinations.record(VENDOR, "list_remove_profiles", list_id, body)
    return jsonapi(None, 204)

"""Read endpoints of audiences: the API root, lists, members, member tags and segments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.server.vendors.mailchimp.audience import Audience
from sandbox.server.vendors.mailchimp.common import (
    ApiError,
    Ctx,
    choice_param,
    in_window,
    page_of,
    paging,
    respond,
    second_bound,
    subscriber_hash,
    time_param,
    ts,
)
from sandbox.server.vendors.mailchimp.model import Member, tag_id

_MEMBER_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived")


def audience(ctx: Ctx, list_id: str) -> Audience:
    """The list, or Mailchimp's 404 when it does not exist (yet) at the world clock."""
    found = Audience(ctx.state, list_id)
    if not found.exists():
        raise ApiError(404)
    return found


def member_json(ctx: Ctx, m: Member) -> dict[str, Any]:
    sent, opened, clicked = m.stats
    first, last = m.merge_fields.get("FNAME") or "", m.merge_fields.get("LNAME") or ""
    members_path = f"/lists/{m.list_id}/members"
    member_id = m.id  # an md5 each time it is read
    return {
        "id": member_id,
        "email_address": m.email_address,
        "unique_email_id": m.unique_email_id,
        "contact_id": m.contact_id,
        "full_name": " ".join(x for x in (first, last) if x),
        "web_id": m.web_id,
        "email_type": m.email_type,
        "status": m.status,
        "consents_to_one_to_one_messaging": True,
        "merge_fields": m.merge_fields,
        "stats": {
            "avg_open_rate": round(opened / sent, 4) if sent else 0,
            "avg_click_rate": round(clicked / sent, 4) if sent else 0,
        },
        "ip_signup": m.ip_signup,
        "timestamp_signup": ts(m.timestamp_signup),
        "ip_opt": m.ip_opt,
        "timestamp_opt": ts(m.timestamp_opt),
        "member_rating": 2,
        "last_changed": ts(m.last_changed),
        "language": m.language,
        "vip": m.vip,
        "email_client": "",
        "location": {
            "latitude": 0,
            "longitude": 0,
            "gmtoff": 0,
            "dstoff": 0,
            "country_code": "",
            "timezone": "",
        },
        "tags_count": len(m.tags),
        "tags": [{"id": tag_id(m.list_id, name), "name": name} for name in m.tags],
        "list_id": m.list_id,
        "_links": [ctx.link("self", f"{members_path}/{member_id}"), ctx.link("parent", members_path)],
    }


def root(ctx: Ctx, request: Request) -> Response:
    state = ctx.state
    total = sum(1 for list_id in _list_ids(ctx) for m in Audience(state, list_id).members() if m.status == "subscribed")
    meta = state.meta.get("ids", {})
    return respond(
        request,
        {
            "account_id": f"sandbox{state.seed}",
            "login_id": f"sandbox{state.seed}",
            "account_name": "Northwind Outfitters",
            "email": meta.get("support_email", ""),
            "first_name": "",
            "last_name": "",
            "username": "northwind-outfitters",
            "avatar_url": "",
            "role": "owner",
            "member_since": ts(state.start),
            "pricing_plan_type": "monthly",
            "account_timezone": "UTC",
            "account_industry": "eCommerce",
            "pro_enabled": False,
            "last_login": ts(state.clock),
            "total_subscribers": total,
            "_links": [ctx.link("self", "/")],
        },
    )


def ping(ctx: Ctx, request: Request) -> Response:
    return JSONResponse({"health_status": "Everything's Chimpy!"})


# --------------------------------------------------------------------------------------------
# Lists
# --------------------------------------------------------------------------------------------


def _list_rows(ctx: Ctx, list_id: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT list_id, web_id, name, created_at FROM mailchimp_lists WHERE created_at <= ?"
    params: list[Any] = [ctx.state.clock]
    if list_id is not None:
        sql += " AND list_id = ?"
        params.append(list_id)
    return ctx.state.query(sql + " ORDER BY created_at, list_id", params)


def _list_ids(ctx: Ctx) -> list[str]:
    return [row["list_id"] for row in _list_rows(ctx)]


def _campaign_stats(ctx: Ctx, list_id: str) -> tuple[int, Any]:
    rows = (
        ctx.state.db()
        .execute(
            "SELECT count(*), max(send_time) FROM mailchimp_campaigns WHERE list_id = ? AND send_time <= ?",
            [list_id, ctx.state.clock],
        )
        .fetchall()
    )
    return int(rows[0][0]), rows[0][1]


def list_json(ctx: Ctx, row: dict[str, Any], members: list[Member]) -> dict[str, Any]:
    list_id = row["list_id"]
    counts = {s: 0 for s in _MEMBER_STATUSES}
    for m in members:
        counts[m.status] += 1
    subscribed = [m.timestamp_opt for m in members if m.status == "subscribed" and m.timestamp_opt]
    unsubscribed = [m.last_changed for m in members if m.status == "unsubscribed"]
    campaign_count, last_sent = _campaign_stats(ctx, list_id)
    sent = sum(m.stats[0] for m in members)
    meta = ctx.state.meta.get("ids", {})
    return {
        "id": list_id,
        "web_id": int(row["web_id"]),
        "name": row["name"],
        "contact": {
            "company": "Northwind Outfitters",
            "address1": "",
            "address2": "",
            "city": "",
            "state": "",
            "zip": "",
            "country": "US",
            "phone": "",
        },
        "permission_reminder": "You are receiving this email because you opted in at our shop.",
        "use_archive_bar": True,
        "campaign_defaults": {
            "from_name": "Northwind Outfitters",
            "from_email": meta.get("support_email", ""),
            "subject": "",
            "language": "en",
        },
        "notify_on_subscribe": "",
        "notify_on_unsubscribe": "",
        "date_created": ts(row["created_at"]),
        "list_rating": 3,
        "email_type_option": False,
        "subscribe_url_short": f"https://eepurl.com/{list_id}",
        "subscribe_url_long": f"https://northwind-outfitters.us21.list-manage.com/subscribe?id={list_id}",
        "beamer_address": f"{list_id}@inbound.mailchimp.com",
        "visibility": "pub",
        "double_optin": False,
        "has_welcome": False,
        "marketing_permissions": False,
        "modules": [],
        "stats": {
            "member_count": counts["subscribed"],
            "total_contacts": sum(counts.values()) - counts["archived"],
            "unsubscribe_count": counts["unsubscribed"],
            "cleaned_count": counts["cleaned"],
            "member_count_since_send": 0,
            "unsubscribe_count_since_send": 0,
            "cleaned_count_since_send": 0,
            "campaign_count": campaign_count,
            "campaign_last_sent": ts(last_sent),
            "merge_field_count": 4,
            "avg_sub_rate": 0,
            "avg_unsub_rate": 0,
            "target_sub_rate": 0,
            "open_rate": round(100 * sum(m.stats[1] for m in members) / sent, 2) if sent else 0,
            "click_rate": round(100 * sum(m.stats[2] for m in members) / sent, 2) if sent else 0,
            "last_sub_date": ts(max(subscribed)) if subscribed else "",
            "last_unsub_date": ts(max(unsubscribed)) if unsubscribed else "",
        },
        "_links": [ctx.link("self", f"/lists/{list_id}"), ctx.link("parent", "/lists")],
    }


def lists_index(ctx: Ctx, request: Request) -> Response:
    count, offset = paging(request)
    since, before = time_param(request, "since_date_created"), time_param(request, "before_date_created")
    email = request.query_params.get("email")
    rows = [r for r in _list_rows(ctx) if in_window(r["created_at"], since, before)]
    lists = []
    for row in rows:
        members = Audience(ctx.state, row["list_id"]).members()
        if email and not any(m.id == subscriber_hash(email) for m in members):
            continue
        lists.append((row, members))
    if request.query_params.get("sort_dir", "ASC").upper() == "DESC":
        lists.reverse()
    page = [list_json(ctx, row, members) for row, members in lists[offset : offset + count]]
    return respond(
        request,
        {
            "lists": page_of(ctx, "lists", page, offset),
            "total_items": len(lists),
            "constraints": {"may_create": True, "max_instances": 1, "current_total_instances": len(rows)},
            "_links": [ctx.link("self", "/lists")],
        },
    )


def list_get(ctx: Ctx, request: Request) -> Response:
    list_id = request.path_params["list_id"]
    rows = _list_rows(ctx, list_id)
    if not rows:
        raise ApiError(404)
    return respond(request, list_json(ctx, rows[0], Audience(ctx.state, list_id).members()))


# --------------------------------------------------------------------------------------------
# Members
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberQuery:
    """Which members a listing shows and in what order; hashable, so that the pages of one
    query are cut from one listing (`Audience.listing`)."""

    status: str | None
    since_changed: datetime | None
    before_changed: datetime | None
    since_opt: datetime | None
    before_opt: datetime | None
    unique_email_id: str | None
    vip_only: bool
    sort_field: str | None
    descending: bool

    @classmethod
    def of(cls, request: Request) -> MemberQuery:
        q = request.query_params
        return cls(
            status=choice_param(request, "status", _MEMBER_STATUSES),
            since_changed=time_param(request, "since_last_changed"),
            before_changed=time_param(request, "before_last_changed"),
            since_opt=time_param(request, "since_timestamp_opt"),
            before_opt=time_param(request, "before_timestamp_opt"),
            unique_email_id=q.get("unique_email_id") or None,
            vip_only=q.get("vip_only") == "true",
            sort_field=choice_param(request, "sort_field", ("timestamp_opt", "timestamp_signup", "last_changed")),
            descending=(choice_param(request, "sort_dir", ("ASC", "DESC")) or "ASC") == "DESC",
        )

    def select(self, members: list[Member]) -> list[Member]:
        # Archived contacts are left out unless asked for, as in Mailchimp.
        out = (
            [m for m in members if m.status == self.status]
            if self.status
            else [m for m in members if m.status != "archived"]
        )
        out = _within(out, "last_changed", self.since_changed, self.before_changed)
        out = _within(out, "timestamp_opt", self.since_opt, self.before_opt)
        if self.unique_email_id:
            out = [m for m in out if m.unique_email_id == self.unique_email_id]
        if self.vip_only:
            out = [m for m in out if m.vip]
        if self.sort_field:
            out = _sorted_by(out, self.sort_field)
        if self.descending:
            out.reverse()
        return out


def _within(members: list[Member], field: str, since: datetime | None, before: datetime | None) -> list[Member]:
    """The members whose `field` is in the window, as `in_window` says, with the bounds rounded
    once instead of each of (at a million customers) some 400,000 values cut to its second."""
    if since is None and before is None:
        return members
    low, high = second_bound(since), second_bound(before)
    value = attrgetter(field)
    return [
        m for m in members if (v := value(m)) is not None and (low is None or v >= low) and (high is None or v < high)
    ]


def _sorted_by(members: list[Member], field: str) -> list[Member]:
    """Members without `field` first, by creation time, then the others by `field`, both stable:
    what one sort on (has field, field or created_at) gives, without a Python key per member."""
    value = attrgetter(field)
    unset = [m for m in members if value(m) is None]
    if not unset:  # last_changed, which every member has
        return sorted(members, key=value)
    unset.sort(key=attrgetter("created_at"))
    return unset + sorted([m for m in members if value(m) is not None], key=value)


def members_index(ctx: Ctx, request: Request) -> Response:
    list_id = request.path_params["list_id"]
    aud = audience(ctx, list_id)
    count, offset = paging(request)
    query = MemberQuery.of(request)
    members = aud.listing(query, query.select)
    page = [member_json(ctx, m) for m in members[offset : offset + count]]
    return respond(
        request,
        {
            "members": page_of(ctx, f"members:{list_id}", page, offset, timestamp_field="last_changed"),
            "list_id": list_id,
            "total_items": len(members),
            "_links": [
                ctx.link("self", f"/lists/{list_id}/members"),
                ctx.link("parent", f"/lists/{list_id}"),
            ],
        },
    )


def find_member(ctx: Ctx, request: Request) -> tuple[Audience, Member]:
    """The path's member (the hash may also be the address itself, which Mailchimp accepts)."""
    aud = audience(ctx, request.path_params["list_id"])
    key = request.path_params["subscriber_hash"]
    member = aud.member(subscriber_hash(key) if "@" in key else key.lower())
    if member is None:
        raise ApiError(404)
    return aud, member


def member_get(ctx: Ctx, request: Request) -> Response:
    _, member = find_member(ctx, request)
    return respond(request, member_json(ctx, member))


def member_tags_get(ctx: Ctx, request: Request) -> Response:
    aud, member = find_member(ctx, request)
    count, offset = paging(request)
    tags = [
        {"id": tag_id(aud.list_id, name), "name": name, "date_added": ts(added)} for name, added in member.tags.items()
    ]
    path = f"/lists/{aud.list_id}/members/{member.id}/tags"
    return respond(
        request,
        {
            "tags": page_of(
                ctx, f"tags:{member.id}", tags[offset : offset + count], offset, timestamp_field="date_added"
            ),
            "total_items": len(tags),
            "_links": [ctx.link("self", path)],
        },
    )


# --------------------------------------------------------------------------------------------
# Segments (tags are static segments)
# --------------------------------------------------------------------------------------------


def segment_json(ctx: Ctx, aud: Audience, name: str, created: Any, members: list[Member]) -> dict[str, Any]:
    seg_id = tag_id(aud.list_id, name)
    tagged = [m for m in members if name in m.tags]
    updated = max([created, *(m.tags[name] for m in tagged)])
    return {
        "id": seg_id,
        "name": name,
        "member_count": sum(1 for m in tagged if m.status == "subscribed"),
        "type": "static",
        "created_at": ts(created),
        "updated_at": ts(updated),
        "list_id": aud.list_id,
        "_links": [
            ctx.link("self", f"/lists/{aud.list_id}/segments/{seg_id}"),
            ctx.link("parent", f"/lists/{aud.list_id}/segments"),
        ],
    }


def find_segment(aud: Audience, segment_id: str) -> tuple[str, Any]:
    for name, created in aud.tag_names().items():
        if str(tag_id(aud.list_id, name)) == segment_id:
            return name, created
    raise ApiError(404, None, f"A Static Segment with an id of {segment_id} does not exist for this list.")


def segments_index(ctx: Ctx, request: Request) -> Response:
    aud = audience(ctx, request.path_params["list_id"])
    count, offset = paging(request)
    kind = choice_param(request, "type", ("saved", "static", "fuzzy"))
    members = aud.members()
    names = list(aud.tag_names().items()) if kind in (None, "static") else []
    page = [segment_json(ctx, aud, n, c, members) for n, c in names[offset : offset + count]]
    return respond(
        request,
        {
            "segments": page_of(ctx, f"segments:{aud.list_id}", page, offset, timestamp_field="updated_at"),
            "list_id": aud.list_id,
            "total_items": len(names),
            "_links": [ctx.link("self", f"/lists/{aud.list_id}/segments")],
        },
    )


def segment_get(ctx: Ctx, request: Request) -> Response:
    aud = audience(ctx, request.path_params["list_id"])
    name, created = find_segment(aud, request.path_params["segment_id"])
    return respond(request, segment_json(ctx, aud, name, created, aud.members()))


def segment_members(ctx: Ctx, request: Request) -> Response:
    aud = audience(ctx, request.path_params["list_id"])
    name, _ = find_segment(aud, request.path_params["segment_id"])
    count, offset = paging(request)
    # Like Mailchimp, only subscribed members unless the include_* flags ask for more.
    shown = {"subscribed"} | {
        s for s in ("cleaned", "transactional", "unsubscribed") if request.query_params.get(f"include_{s}") == "true"
    }
    tagged = [m for m in aud.members() if name in m.tags and m.status in shown]
    page = [member_json(ctx, m) for m in tagged[offset : offset + count]]
    seg_path = f"/lists/{aud.list_id}/segments/{request.path_params['segment_id']}"
    return respond(
        request,
        {
            "members": page_of(ctx, f"segment-members:{seg_path}", page, offset, timestamp_field="last_changed"),
            "total_items": len(tagged),
            "_links": [ctx.link("self", f"{seg_path}/members"), ctx.link("parent", seg_path)],
        },
    )

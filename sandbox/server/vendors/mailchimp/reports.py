"""Campaigns, campaign email-activity reports and a member's activity, all from the store's
`mailchimp_campaigns` and `mailchimp_activity` gated by the world clock (a campaign exists once
its `send_time` has passed, an activity row once its `timestamp` has)."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.server.cache import cache
from sandbox.server.state import SandboxState
from sandbox.server.vendors.mailchimp.common import (
    ApiError,
    Ctx,
    choice_param,
    in_window,
    page_of,
    paging,
    query,
    respond,
    time_param,
    ts,
)
from sandbox.server.vendors.mailchimp.lists import find_member

_CAMPAIGNS_SQL = """
WITH act AS (
    SELECT campaign_id,
           count(*) FILTER (WHERE action = 'sent') AS sent,
           count(*) FILTER (WHERE action = 'open') AS opens,
           count(DISTINCT email_address) FILTER (WHERE action = 'open') AS unique_opens,
           count(*) FILTER (WHERE action = 'click') AS clicks,
           count(DISTINCT email_address) FILTER (WHERE action = 'click') AS subscriber_clicks
    FROM mailchimp_activity WHERE timestamp <= $clock AND campaign_id IS NOT NULL GROUP BY 1
)
SELECT c.campaign_id, c.web_id, c.list_id, l.name AS list_name, c.title, c.subject_line, c.status,
       c.send_time, c.created_at, coalesce(a.sent, 0) AS sent, coalesce(a.opens, 0) AS opens,
       coalesce(a.unique_opens, 0) AS unique_opens, coalesce(a.clicks, 0) AS clicks,
       coalesce(a.subscriber_clicks, 0) AS subscriber_clicks
FROM mailchimp_campaigns c
LEFT JOIN mailchimp_lists l USING (list_id)
LEFT JOIN act a USING (campaign_id)
WHERE c.send_time <= $clock
ORDER BY c.created_at, c.campaign_id
"""

#: Store action -> (activity-feed `activity_type`, extra fields). A spam complaint
#: unsubscribes the contact, so the feed shows it as an unsubscribe.
_FEED_TYPES = {
    "sent": "sent",
    "open": "open",
    "click": "click",
    "bounce": "bounce",
    "unsub": "unsub",
    "abuse": "unsub",
}


#: The store is fixed while a world is served and no API call writes campaigns or activity, so
#: what these reads show changes only with the clock. At a million customers the campaigns'
#: stats took over a second and one campaign's report several, on every page: they are built
#: once per clock (the report once per `since` too) and kept. The campaigns go in the world's
#: shared cache; reports, one per campaign and `since`, are bounded here instead:
#: state -> (clock, campaign id, since) -> the report's recipients; a client pages through
#: one report at a time, and each holds a campaign's recipients (tens of MB at 1M).
_REPORTS: weakref.WeakKeyDictionary[SandboxState, OrderedDict[tuple, list[dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)
_REPORTS_KEPT = 2
_CACHE_LOCK = threading.Lock()


def _campaigns(ctx: Ctx) -> list[dict[str, Any]]:
    clock = ctx.state.clock  # read once: the key and the build must see the same clock
    return cache(ctx.state).get(
        "mailchimp_campaigns", (clock,), lambda: query(ctx.state, _CAMPAIGNS_SQL, {"clock": clock})
    )


def campaign_json(ctx: Ctx, row: dict[str, Any]) -> dict[str, Any]:
    sent = int(row["sent"])
    support = ctx.state.meta.get("ids", {}).get("support_email", "")
    return {
        "id": row["campaign_id"],
        "web_id": int(row["web_id"]),
        "parent_campaign_id": "",
        "type": "regular",
        "create_time": ts(row["created_at"]),
        "archive_url": f"https://mailchi.mp/northwind-outfitters/{row['campaign_id']}",
        "long_archive_url": f"https://us21.campaign-archive.com/?u=sandbox&id={row['campaign_id']}",
        "status": row["status"],
        "emails_sent": sent,
        "send_time": ts(row["send_time"]),
        "content_type": "template",
        "needs_block_refresh": False,
        "resendable": False,
        "recipients": {
            "list_id": row["list_id"],
            "list_is_active": True,
            "list_name": row["list_name"] or "",
            "segment_text": "",
            "recipient_count": sent,
        },
        "settings": {
            "subject_line": row["subject_line"],
            "preview_text": "",
            "title": row["title"],
            "from_name": "Northwind Outfitters",
            "reply_to": support,
            "use_conversation": False,
            "to_name": "*|FNAME|*",
            "folder_id": "",
            "authenticate": True,
            "auto_footer": False,
            "inline_css": False,
            "auto_tweet": False,
            "fb_comments": False,
            "timewarp": False,
            "template_id": 0,
            "drag_and_drop": True,
        },
        "tracking": {
            "opens": True,
            "html_clicks": True,
            "text_clicks": False,
            "goal_tracking": False,
            "ecomm360": False,
            "google_analytics": "",
            "clicktale": "",
        },
        "report_summary": {
            "opens": int(row["opens"]),
            "unique_opens": int(row["unique_opens"]),
            "open_rate": round(int(row["unique_opens"]) / sent, 4) if sent else 0,
            "clicks": int(row["clicks"]),
            "subscriber_clicks": int(row["subscriber_clicks"]),
            "click_rate": round(int(row["subscriber_clicks"]) / sent, 4) if sent else 0,
        },
        "delivery_status": {"enabled": False},
        "_links": [ctx.link("self", f"/campaigns/{row['campaign_id']}"), ctx.link("parent", "/campaigns")],
    }


def campaigns_index(ctx: Ctx, request: Request) -> Response:
    count, offset = paging(request)
    q = request.query_params
    since_send, before_send = time_param(request, "since_send_time"), time_param(request, "before_send_time")
    since_create, before_create = (
        time_param(request, "since_create_time"),
        time_param(request, "before_create_time"),
    )
    status = choice_param(request, "status", ("save", "paused", "schedule", "sending", "sent"))
    kind = choice_param(request, "type", ("regular", "plaintext", "absplit", "rss", "variate"))
    sort_field = choice_param(request, "sort_field", ("create_time", "send_time"))
    rows = [
        r
        for r in _campaigns(ctx)
        if in_window(r["send_time"], since_send, before_send)
        and in_window(r["created_at"], since_create, before_create)
        and (status is None or r["status"] == status)
        and kind in (None, "regular")
        and (not q.get("list_id") or r["list_id"] == q["list_id"])
    ]
    if sort_field == "send_time":
        rows.sort(key=lambda r: (r["send_time"], r["campaign_id"]))
    if (choice_param(request, "sort_dir", ("ASC", "DESC")) or "ASC") == "DESC":
        rows.reverse()
    page = [campaign_json(ctx, r) for r in rows[offset : offset + count]]
    return respond(
        request,
        {
            "campaigns": page_of(ctx, "campaigns", page, offset, timestamp_field="send_time"),
            "total_items": len(rows),
            "_links": [ctx.link("self", "/campaigns")],
        },
    )


def _campaign(ctx: Ctx, campaign_id: str) -> dict[str, Any]:
    for row in _campaigns(ctx):
        if row["campaign_id"] == campaign_id:
            return row
    raise ApiError(404)


def campaign_get(ctx: Ctx, request: Request) -> Response:
    return respond(request, campaign_json(ctx, _campaign(ctx, request.path_params["campaign_id"])))


def email_activity(ctx: Ctx, request: Request) -> Response:
    """One entry per recipient, with its opens, clicks and bounces (Mailchimp's report has no
    "sent" action: being listed means the campaign was sent to that address)."""
    campaign = _campaign(ctx, request.path_params["campaign_id"])
    count, offset = paging(request)
    since = time_param(request, "since")
    selected = _recipients(ctx, campaign, since)
    path = f"/reports/{campaign['campaign_id']}/email-activity"
    page = [
        {**e, "_links": [ctx.link("self", f"{path}/{e['email_id']}"), ctx.link("parent", path)]}
        for e in selected[offset : offset + count]
    ]
    return respond(
        request,
        {
            "emails": page_of(ctx, f"email-activity:{campaign['campaign_id']}", page, offset, id_field="email_id"),
            "campaign_id": campaign["campaign_id"],
            "total_items": len(selected),
            "_links": [ctx.link("self", path), ctx.link("parent", f"/reports/{campaign['campaign_id']}")],
        },
    )


def _recipients(ctx: Ctx, campaign: dict[str, Any], since: datetime | None) -> list[dict[str, Any]]:
    """The report's recipients in address order, each with their activity (since `since`)."""
    clock = ctx.state.clock  # read once: the key and the build must see the same clock
    key = (clock, campaign["campaign_id"], since)
    with _CACHE_LOCK:
        reports = _REPORTS.setdefault(ctx.state, OrderedDict())
        if key in reports:
            reports.move_to_end(key)
            return reports[key]
    selected = _build_recipients(ctx, campaign, since, clock)
    with _CACHE_LOCK:
        reports[key] = selected
        while len(reports) > _REPORTS_KEPT:
            reports.popitem(last=False)
    return selected


def _build_recipients(
    ctx: Ctx, campaign: dict[str, Any], since: datetime | None, clock: datetime
) -> list[dict[str, Any]]:
    rows = ctx.state.query(
        "SELECT md5(lower(email_address)) AS email_id, email_address, action, timestamp, url "
        "FROM mailchimp_activity WHERE campaign_id = ? AND timestamp <= ? "
        "ORDER BY lower(email_address), timestamp",
        [campaign["campaign_id"], clock],
    )
    emails: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = emails.setdefault(
            row["email_id"],
            {
                "campaign_id": campaign["campaign_id"],
                "list_id": campaign["list_id"],
                "list_is_active": True,
                "email_id": row["email_id"],
                "email_address": row["email_address"],
                "activity": [],
            },
        )
        if row["action"] in ("open", "click", "bounce") and in_window(row["timestamp"], since, None):
            action: dict[str, Any] = {"action": row["action"], "timestamp": ts(row["timestamp"]), "ip": ""}
            if row["action"] == "click":
                action["url"] = row["url"] or ""
            if row["action"] == "bounce":
                action["type"] = "hard"
            entry["activity"].append(action)
    # `since` keeps only recipients with activity in the window, which is what an
    # incremental loader wants.
    return [e for e in emails.values() if since is None or e["activity"]]


def _member_events(ctx: Ctx, list_id: str, email_id: str) -> list[dict[str, Any]]:
    return ctx.state.query(
        "SELECT a.action, a.timestamp, a.url, a.campaign_id, c.title FROM mailchimp_activity a "
        "LEFT JOIN mailchimp_campaigns c USING (campaign_id) "
        "WHERE a.list_id = ? AND md5(lower(a.email_address)) = ? AND a.timestamp <= ? "
        "ORDER BY a.timestamp DESC",
        [list_id, email_id, ctx.state.clock],
    )


def member_activity_feed(ctx: Ctx, request: Request) -> Response:
    aud, member = find_member(ctx, request)
    count, offset = paging(request)
    wanted = {f.strip() for f in request.query_params.get("activity_filters", "").split(",") if f.strip()}
    items = []
    for row in _member_events(ctx, aud.list_id, member.id):
        kind = _FEED_TYPES[row["action"]]
        if wanted and kind not in wanted:
            continue
        item: dict[str, Any] = {
            "activity_type": kind,
            "created_at_timestamp": ts(row["timestamp"]),
            "campaign_id": row["campaign_id"] or "",
            "campaign_title": row["title"] or "",
        }
        if kind == "click":
            item["link_clicked"] = row["url"] or ""
        elif kind == "bounce":
            item.update(bounce_type="hard", bounce_has_open_activity=False)
        items.append(item)
    path = f"/lists/{aud.list_id}/members/{member.id}/activity-feed"
    return respond(
        request,
        {
            "activity": page_of(
                ctx,
                f"activity-feed:{member.id}",
                items[offset : offset + count],
                offset,
                id_field="campaign_id",
                timestamp_field="created_at_timestamp",
            ),
            "email_id": member.id,
            "contact_id": member.contact_id,
            "list_id": aud.list_id,
            "total_items": len(items),
            "_links": [ctx.link("self", path)],
        },
    )


def member_activity(ctx: Ctx, request: Request) -> Response:
    """The older endpoint: the member's last 50 events, newest first, optional `action` filter."""
    aud, member = find_member(ctx, request)
    wanted = {f.strip() for f in request.query_params.get("action", "").split(",") if f.strip()}
    items = [
        {
            "action": row["action"],
            "timestamp": ts(row["timestamp"]),
            "url": row["url"] or "",
            "type": "regular" if row["campaign_id"] else "",
            "campaign_id": row["campaign_id"] or "",
            "title": row["title"] or "",
            "parent_campaign": "",
        }
        for row in _member_events(ctx, aud.list_id, member.id)
        if not wanted or row["action"] in wanted
    ][:50]
    return respond(
        request,
        {
            "activity": page_of(
                ctx, f"activity:{member.id}", items, 0, id_field="campaign_id", timestamp_field="timestamp"
            ),
            "email_id": member.id,
            "list_id": aud.list_id,
            "total_items": len(items),
            "_links": [ctx.link("self", f"/lists/{aud.list_id}/members/{member.id}/activity")],
        },
    )

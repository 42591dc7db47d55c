"""Mailchimp Marketing API v3 source: audiences, their members, campaigns and campaign email activity.

Resources, each merged on its primary key into `raw_mailchimp`:

- `lists` (audiences), pk `id`: read whole every run (a handful of rows whose `stats` always change).
- `members`, pk (`list_id`, `id`), `id` being the subscriber hash (MD5 of the lower-cased address);
  cursor `last_changed` sent as `since_last_changed`, minus `LOOKBACK_SECONDS`; an audience the
  last run did not read is read whole. Mailchimp lists archived members only when asked, so each
  run asks for them too. `tags` become the child table `members__tags` (the marts and the audience
  push work on tag membership); `merge_fields` (FNAME, LNAME, PHONE, ADDRESS), `stats` and
  `location` are flattened into columns.
- `campaigns` (sent ones), pk `id`; cursor `send_time` sent as `since_send_time`, minus
  `ENGAGEMENT_WINDOW_DAYS`: a campaign's `report_summary` keeps changing while recipients engage.
  First-level objects are flattened into columns; deeper ones (segment conditions, A/B settings)
  stay JSON.
- `email_activity`: one row per open, click or bounce in a campaign's email-activity report, pk
  `activity_id` (MD5 of campaign id, email id, action, timestamp and url); cursor `timestamp` sent
  as the report's `since`, minus `LOOKBACK_SECONDS`, to every campaign sent within
  `ENGAGEMENT_WINDOW_DAYS` before that. Activity on older campaigns is not revisited. Recipients
  without any event have no row (a campaign's `emails_sent` counts them).

Hand-written resources on a small offset pager rather than declarative `rest_api`: records must be
screened before their cursor is read (`rest_api` applies its cursor before any processing step, so
a corrupted `last_changed` would become the cursor), the activity report nests events per
recipient, and records quarantined in transit are read again on the next run, by id or from their
own time, even when that is older than the window. The API applies every window server-side, so
the resources advance their cursors themselves (`Incremental.advance`); dlt stores them only when
the load succeeds.

Offset paging while records change underneath: members and campaigns are read newest first
(`sort_field`, `sort_dir=DESC`), so a record that changes during a run moves to a page already
read; later pages then repeat a record (merge drops it) instead of skipping one, and the changed
record falls in the next run's window. A member archived or deleted mid-run shifts later pages the
other way; the archived one is read by the archived pass, and a skip is repaired by a reload.

Pacing: Mailchimp's one limit is 10 simultaneous connections per key; the loader makes one request
at a time, so no pacer is needed beyond the session's retries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import dlt
from dlt.sources import DltResource

from ingestion.common.http import RetryPolicy
from ingestion.mailchimp.helpers import (
    Repairs,
    activity_rows,
    api_root,
    days_before,
    earliest,
    get_json,
    latest,
    mailchimp_session,
    pages,
    screened,
    server_side,
    store_cursor,
    subscriber_hash,
    time_of,
)
from ingestion.mailchimp.settings import (
    CAMPAIGN_BLANKS,
    CAMPAIGN_DOUBLES,
    CAMPAIGN_RULES,
    ENGAGEMENT_WINDOW_DAYS,
    LIST_BLANKS,
    LIST_DOUBLES,
    LIST_RULES,
    LIST_TIMESTAMPS,
    LOOKBACK_SECONDS,
    MEMBER_BLANKS,
    MEMBER_DOUBLES,
    MEMBER_RULES,
    MEMBER_TIMESTAMPS,
    PAGE_SIZE,
    RECIPIENT_RULES,
    REPAIR_ATTEMPTS,
    START_DATE,
)


def _typed(
    timestamps: tuple[str, ...] = (), doubles: tuple[str, ...] = (), texts: tuple[str, ...] = ()
) -> dict[str, dict[str, str]]:
    """Column hints, so a column has its type even while every value is still null or 0, and
    exists before the first record carrying it (a shop whose emails nobody clicked yet)."""
    hints = {name: {"data_type": "timestamp"} for name in timestamps}
    hints |= {name: {"data_type": "text"} for name in texts}
    return hints | {name: {"data_type": "double"} for name in doubles}


@dlt.source(name="mailchimp")
def mailchimp_source(
    base_url: str = dlt.config.value,
    api_key: str = dlt.secrets.value,
    page_size: int = PAGE_SIZE,
    retry_policy: RetryPolicy | None = None,
) -> Sequence[DltResource]:
    """Audiences, members, campaigns and email activity from Mailchimp at `base_url`.

    Configure with `SOURCES__MAILCHIMP__BASE_URL` (`https://<dc>.api.mailchimp.com`, the data
    center being the key's suffix; `/3.0` is appended here) and `SOURCES__MAILCHIMP__API_KEY`, or the
    same keys in `.dlt/config.toml` / `.dlt/secrets.toml`. `page_size` and `retry_policy` are for
    tests; the defaults suit a real account.
    """
    api = api_root(base_url)
    session = mailchimp_session(api_key, retry_policy)

    @dlt.resource(
        name="lists", primary_key="id", write_disposition="merge", columns=_typed(LIST_TIMESTAMPS, LIST_DOUBLES)
    )
    def lists() -> Iterator[Any]:
        for page in pages(session, f"{api}/lists", "lists", {"sort_dir": "ASC"}, page_size, "wrong_url"):
            good, quarantined, _ = screened(page, "lists", LIST_RULES, LIST_BLANKS)
            if good:
                yield good
            yield from quarantined

    @dlt.resource(
        name="members",
        primary_key=("list_id", "id"),
        write_disposition="merge",
        columns=_typed(MEMBER_TIMESTAMPS, MEMBER_DOUBLES),
    )
    def members(
        last_changed=dlt.sources.incremental(  # noqa: B008 (dlt binds cursors given as defaults)
            "last_changed", initial_value=START_DATE, lag=LOOKBACK_SECONDS, on_cursor_value_missing="include"
        ),
    ) -> Iterator[Any]:
        since = server_side(last_changed)
        state = dlt.current.resource_state()
        repairs = Repairs(state, REPAIR_ATTEMPTS)
        # Audiences read completely by the last run; any other (new, or missed because the
        # listing came back corrupted) is read whole, since the cursor says nothing about it.
        read_before, read_now = set(state.get("lists_read", [])), []
        newest = None
        for list_id in audience_ids():
            ids, held = repairs.take(list_id)
            window = earliest(since if list_id in read_before else START_DATE, held[0] if held else None)
            url = f"{api}/lists/{list_id}/members"
            for status in (None, "archived"):
                params = {"since_last_changed": window, "sort_field": "last_changed", "sort_dir": "DESC"}
                for page in pages(
                    session, url, "members", params | ({"status": status} if status else {}), page_size, "skip"
                ):
                    good, quarantined, bad = screened(page, "members", MEMBER_RULES, MEMBER_BLANKS)
                    newest = latest(newest, *time_of(good, "last_changed"))
                    for record in bad:
                        note_member(repairs, list_id, record, window)
                    if good:
                        yield good
                    yield from quarantined
            for member_id, seen in ids.items():
                record = get_json(session, f"{url}/{member_id}", {"exclude_fields": "_links"}, "skip")
                if record is None:
                    continue
                good, quarantined, bad = screened([record], "members", MEMBER_RULES, MEMBER_BLANKS)
                for broken in bad:
                    note_member(repairs, list_id, broken, window, seen)
                if good:
                    yield good
                yield from quarantined
            read_now.append(list_id)
        state["lists_read"] = read_now
        repairs.finish()
        store_cursor(last_changed, newest)

    def audience_ids() -> list[str]:
        ids: dict[str, None] = {}
        for page in pages(session, f"{api}/lists", "lists", {"fields": "lists.id,total_items"}, page_size, "wrong_url"):
            ids.update((r["id"], None) for r in page if isinstance(r, dict) and r.get("id"))
        return list(ids)

    # Campaign objects nest deeply (segment conditions, A/B settings, e-commerce report figures):
    # their first level becomes columns, anything deeper stays JSON.
    @dlt.resource(
        name="campaigns",
        primary_key="id",
        write_disposition="merge",
        columns=_typed(("send_time", "create_time"), CAMPAIGN_DOUBLES),
        max_table_nesting=1,
    )
    def campaigns(
        send_time=dlt.sources.incremental(  # noqa: B008
            "send_time",
            initial_value=START_DATE,
            lag=ENGAGEMENT_WINDOW_DAYS * 86400,
            on_cursor_value_missing="include",
        ),
    ) -> Iterator[Any]:
        since = server_side(send_time)
        repairs = Repairs(dlt.current.resource_state(), REPAIR_ATTEMPTS)
        ids, held = repairs.take("")
        window = earliest(since, held[0] if held else None)
        newest = None
        params = {"since_send_time": window, "sort_field": "send_time", "sort_dir": "DESC"}
        for page in pages(session, f"{api}/campaigns", "campaigns", params, page_size, "wrong_url"):
            good, quarantined, bad = screened(page, "campaigns", CAMPAIGN_RULES, CAMPAIGN_BLANKS)
            newest = latest(newest, *time_of(good, "send_time"))
            for record in bad:
                note_campaign(repairs, record, window)
            if good:
                yield good
            yield from quarantined
        for campaign_id, seen in ids.items():
            record = get_json(session, f"{api}/campaigns/{campaign_id}", {"exclude_fields": "_links"}, "skip")
            if record is None:
                continue
            good, quarantined, bad = screened([record], "campaigns", CAMPAIGN_RULES, CAMPAIGN_BLANKS)
            for broken in bad:
                note_campaign(repairs, broken, window, seen)
            if good:
                yield good
            yield from quarantined
        repairs.finish()
        store_cursor(send_time, newest)

    @dlt.resource(
        name="email_activity",
        primary_key="activity_id",
        write_disposition="merge",
        columns=_typed(("timestamp",), texts=("url", "ip")),
    )
    def email_activity(
        timestamp=dlt.sources.incremental(  # noqa: B008
            "timestamp", initial_value=START_DATE, lag=LOOKBACK_SECONDS, on_cursor_value_missing="include"
        ),
    ) -> Iterator[Any]:
        since = server_side(timestamp)
        repairs = Repairs(dlt.current.resource_state(), REPAIR_ATTEMPTS)
        # "*": last run could not list every campaign, so all of them start from its window.
        _, held_all = repairs.take("*")
        since_all = earliest(since, held_all[0] if held_all else None)
        assert since_all is not None
        campaign_ids: dict[str, None] = {}
        listing = {
            "since_send_time": days_before(since_all, ENGAGEMENT_WINDOW_DAYS),
            "sort_field": "send_time",
            "sort_dir": "DESC",
            "fields": "campaigns.id,total_items",
        }
        for page in pages(session, f"{api}/campaigns", "campaigns", listing, page_size, "wrong_url"):
            for record in page:
                if isinstance(record, dict) and record.get("id"):
                    campaign_ids[record["id"]] = None
                else:
                    repairs.add_since("*", since_all, held_all[1] if held_all else 0)
        # Campaigns with recipients quarantined last run, even if they have left the window.
        campaign_ids.update((scope, None) for scope in repairs.scopes())
        newest = None
        for campaign_id in campaign_ids:
            _, held = repairs.take(campaign_id)
            window = earliest(since_all, held[0] if held else None)
            seen = held[1] if held else 0
            url = f"{api}/reports/{campaign_id}/email-activity"
            for page in pages(session, url, "emails", {"since": window}, page_size, "skip"):
                good, quarantined, bad = screened(page, "email_activity", RECIPIENT_RULES)
                for record in bad:
                    times = [e.get("timestamp") for e in record.get("activity") or [] if isinstance(e, dict)]
                    repairs.add_since(campaign_id, earliest(*times) or window, seen)
                rows = [row for recipient in good for row in activity_rows(recipient)]
                newest = latest(newest, *time_of(rows, "timestamp"))
                if rows:
                    yield rows
                yield from quarantined
        repairs.finish()
        store_cursor(timestamp, newest)

    return lists, members, campaigns, email_activity


def note_member(repairs: Repairs, list_id: str, record: Any, window: str, seen: int = 0) -> None:
    """Fetch a quarantined member by id next run (its id, or the hash of its address), else re-read its window."""
    record = record if isinstance(record, dict) else {}
    member_id = record.get("id") or subscriber_hash(record.get("email_address"))
    if member_id:
        repairs.add_id(list_id, member_id, seen)
    else:
        repairs.add_since(list_id, window, seen)


def note_campaign(repairs: Repairs, record: Any, window: str, seen: int = 0) -> None:
    """Fetch a quarantined campaign by id next run, else re-read from its send time (or the window)."""
    record = record if isinstance(record, dict) else {}
    if record.get("id"):
        repairs.add_id("", record["id"], seen)
    else:
        repairs.add_since("", earliest(record.get("send_time")) or window, seen)

"""Klaviyo source (JSON:API, revision `SOURCES__KLAVIYO__REVISION`): profiles with their email
marketing consent, lists and their members, metrics, email campaigns and events.

Resources, each merged on its primary key into `raw_klaviyo`:
- `profiles`, pk `id`; cursor `updated`, read with `filter=greater-than(updated,...)` and
  `sort=updated` from the stored cursor minus `LOOKBACK_SECONDS`, with
  `additional-fields[profile]=subscriptions`. Attributes are columns (`location__*` flattened);
  custom `properties` stay one JSON column (each account invents its own keys; staging picks
  `membership_tier` and the others it needs). Consent and suppressions are columns:
  `email_marketing_consent` (SUBSCRIBED, UNSUBSCRIBED, NEVER_SUBSCRIBED),
  `email_marketing_consent_timestamp`, `email_marketing_method`, `can_receive_email_marketing`,
  `email_suppression_reasons` (e.g. "HARD_BOUNCE,SPAM_COMPLAINT", null when none), with the
  suppressions' timestamps in the JSON column `email_suppression`; `sms_marketing_consent`.
  `last_event_date` is as of the run that last read the profile (it does not move `updated`).
- `lists`, pk `id`: read whole every run (a handful of rows).
- `list_memberships`, one row per (`list_id`, `profile_id`), with `joined_group_at`: Klaviyo has no feed
  of membership changes and a removal leaves no trace, so every run reads each list's members
  whole, as ids (`/api/lists/{id}/relationships/profiles`, 100 a page), and replaces that
  list's rows (merge key `list_id`). Join times come from the joins since the list's last read
  (`/api/lists/{id}/profiles` with `filter=greater-or-equal(joined_group_at,...)`, only
  `joined_group_at` requested) and, for earlier members, from the table as loaded; a list read
  for the first time is read whole from `/api/lists/{id}/profiles`. The table is the current
  membership: a removed member's row is gone after the next run; a list emptied or deleted in
  Klaviyo is cleared. A list whose read quarantined a member keeps its previous rows until a
  clean read (at most `REPAIR_RUNS` runs), which reads it whole.
- `metrics`, pk `id`: read whole every run; `integration__*` as columns.
- `campaigns` (email), pk `id`; cursor `updated_at`, filtered with
  `and(equals(messages.channel,'email'),greater-than(updated_at,...))` minus `LOOKBACK_SECONDS`.
  `audiences` (included/excluded list ids) is JSON; `send_strategy__*` and the options are columns.
- `events`, pk `id`; cursor `datetime`, read with `filter=greater-than(datetime,...)` from the
  stored cursor minus `EVENTS_LOOKBACK_SECONDS`. `metric_id` and `profile_id` come from the
  relationships; `message_id` is `event_properties.$message` (the campaign id for a campaign
  send, joining `campaigns.id`; a flow message id for flows); `event_properties` stay JSON.
- `quarantine`: records that could not be loaded, with the reason and the record as received.
  An incremental resource fetches a quarantined record that kept its id again by id in the same
  run, and holds its cursor at the `updated`/`datetime` of one that lost its id, so the next
  run's window reads it again; lists, metrics and members are read whole every run anyway.
No table has child tables: the few nested lists (suppressions, audiences) are JSON columns.
Profiles and events deleted in Klaviyo are not removed here.

Hand-written resources rather than declarative `rest_api`: dlt's REST client sends through
`Session.send`, which would bypass the `VendorSession` retries and per-endpoint pacing; every page
is screened before dlt's cursor sees it; and list membership needs whole-list replacement.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.sources import DltResource

from ingestion.common.http import RetryPolicy
from ingestion.klaviyo.helpers import (
    KlaviyoApi,
    all_records,
    campaign_row,
    changed_records,
    event_row,
    list_membership_rows,
    list_row,
    metric_row,
    profile_row,
)
from ingestion.klaviyo.settings import (
    CAMPAIGN_COLUMNS,
    CAMPAIGNS,
    EVENT_COLUMNS,
    EVENTS,
    EVENTS_LOOKBACK_SECONDS,
    EVENTS_PAGE_SIZE,
    LIST_COLUMNS,
    LIST_MEMBER_COLUMNS,
    LIST_MEMBER_IDS_PAGE_SIZE,
    LIST_MEMBERS_PAGE_SIZE,
    LISTS,
    LOOKBACK_SECONDS,
    METRIC_COLUMNS,
    METRICS,
    PROFILE_COLUMNS,
    PROFILES,
    PROFILES_PAGE_SIZE,
    REVISION,
    START_DATE,
)


def loaded_members(list_id: str) -> dict[str, Any]:
    """{profile_id: joined_group_at} of a list as the running pipeline last loaded it."""
    pipeline = dlt.current.pipeline()
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("list_memberships")
            rows = client.execute_sql(f"SELECT profile_id, joined_group_at FROM {table} WHERE list_id = %s", list_id)
    except DatabaseUndefinedRelation:
        return {}
    return dict(rows or [])


@dlt.source(name="klaviyo", max_table_nesting=1)
def klaviyo_source(
    base_url: str = dlt.config.value,
    api_key: str = dlt.secrets.value,
    revision: str = REVISION,
    profiles_page_size: int = PROFILES_PAGE_SIZE,
    events_page_size: int = EVENTS_PAGE_SIZE,
    list_members_page_size: int = LIST_MEMBERS_PAGE_SIZE,
    list_member_ids_page_size: int = LIST_MEMBER_IDS_PAGE_SIZE,
    retry_policy: RetryPolicy | None = None,
) -> tuple[DltResource, ...]:
    """Klaviyo's API at `base_url` (https://a.klaviyo.com for the real service).

    Configure with `SOURCES__KLAVIYO__BASE_URL`, `SOURCES__KLAVIYO__API_KEY` (a private API key
    with read scopes for profiles, lists, metrics, campaigns and events) and
    `SOURCES__KLAVIYO__REVISION`, or the same keys in `.dlt/config.toml` / `.dlt/secrets.toml`.
    Page sizes default to Klaviyo's maxima and `retry_policy` to the patient production policy.
    """
    api = KlaviyoApi(base_url, api_key, revision, retry_policy)

    # Cursors are argument defaults, which dlt binds to the pipeline state on each run.
    # The three long reads run in their own threads (`parallelized`): Klaviyo limits each
    # endpoint separately, so one read waiting out its budget need not hold up the others.
    @dlt.resource(write_disposition="merge", primary_key="id", columns=PROFILE_COLUMNS, parallelized=True)
    def profiles(
        updated: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008
            "updated", initial_value=START_DATE, lag=LOOKBACK_SECONDS, on_cursor_value_missing="include"
        ),
    ) -> Iterator[Any]:
        subscriptions = {"additional-fields[profile]": "subscriptions"}
        params = {**subscriptions, "page[size]": profiles_page_size}
        yield from changed_records(api, PROFILES, updated, params, profile_row, fetch_params=subscriptions)

    @dlt.resource(write_disposition="merge", primary_key="id", columns=LIST_COLUMNS)
    def lists() -> Iterator[Any]:
        yield from all_records(api, LISTS, {}, list_row)

    # Merge key only, no primary key: with both, dlt deletes a list's old rows where the primary
    # key OR the merge key matches, which DuckDB joins on `list_id` alone, every old member with
    # every new one (4,600 million pairs for a list of 460,000: it filled the disk). The
    # listing's screen yields each member of a list once, which the key's dedup did before.
    @dlt.resource(
        write_disposition="merge",
        primary_key=(),
        merge_key="list_id",
        columns=LIST_MEMBER_COLUMNS,
        parallelized=True,
    )
    def list_memberships() -> Iterator[Any]:
        yield from list_membership_rows(api, list_members_page_size, list_member_ids_page_size, loaded_members)

    @dlt.resource(write_disposition="merge", primary_key="id", columns=METRIC_COLUMNS)
    def metrics() -> Iterator[Any]:
        yield from all_records(api, METRICS, {}, metric_row)

    @dlt.resource(write_disposition="merge", primary_key="id", columns=CAMPAIGN_COLUMNS)
    def campaigns(
        updated_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008
            "updated_at", initial_value=START_DATE, lag=LOOKBACK_SECONDS, on_cursor_value_missing="include"
        ),
    ) -> Iterator[Any]:
        yield from changed_records(api, CAMPAIGNS, updated_at, {}, campaign_row, channel_filter=True)

    @dlt.resource(write_disposition="merge", primary_key="id", columns=EVENT_COLUMNS, parallelized=True)
    def events(
        occurred_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008
            "datetime", initial_value=START_DATE, lag=EVENTS_LOOKBACK_SECONDS, on_cursor_value_missing="include"
        ),
    ) -> Iterator[Any]:
        yield from changed_records(api, EVENTS, occurred_at, {"page[size]": events_page_size}, event_row)

    return profiles, lists, list_memberships, metrics, campaigns, events

"""What Tessera reads from Klaviyo's API: endpoints, page sizes, lookback, start date, record rules.

Paths are relative to `<base_url>/api/`. Klaviyo budgets every endpoint separately (burst per
second and steady per minute, by the endpoint's tier), so the loader paces each endpoint on its
own `RateLimit-*` headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dlt.common.schema.typing import TColumnSchema, TDataType

from ingestion.common.quarantine import RecordRules

VENDOR = "klaviyo"
REVISION = "2025-10-15"  # the default of SOURCES__KLAVIYO__REVISION; response shapes follow it
MEDIA_TYPE = "application/vnd.api+json"

# Budget headers on every answer that was not a 429: the steady (per-minute) window of the
# endpoint, with `RateLimit-Reset` in seconds. A burst 429 is retried on its `Retry-After`.
RATE_LIMIT_REMAINING = "RateLimit-Remaining"
RATE_LIMIT_RESET = "RateLimit-Reset"

PROFILES_PAGE_SIZE = 100  # Get Profiles' maximum `page[size]`
LIST_MEMBERS_PAGE_SIZE = 100  # Get List Profiles' maximum `page[size]`
LIST_MEMBER_IDS_PAGE_SIZE = 100  # Get Profile IDs for List's maximum `page[size]` (a larger one is a 400)
# Get Events serves at most 200 per page in every revision (recent ones accept up to 1000).
EVENTS_PAGE_SIZE = 200

# Before Klaviyo existed: the first run reads everything.
START_DATE = datetime(2012, 1, 1, tzinfo=UTC)
# Each run reads from the newest `updated` (profiles, campaigns) already loaded minus this: a
# write that lands in Klaviyo's index a little late, or clocks that disagree by a little.
LOOKBACK_SECONDS = 3600
# Events are read from the newest `datetime` loaded minus this: integrations (a shop platform,
# a back-office sync, Create Event with a past `time`) deliver events hours after they happened.
EVENTS_LOOKBACK_SECONDS = 86400
# A run that quarantined records holds its cursor (or, for a list's membership, keeps the
# previous snapshot) so the next runs read them again; they usually arrive clean. After this many
# runs in a row the records stay in quarantine for review and the loader moves on.
REPAIR_RUNS = 3

EMAIL_CHANNEL_FILTER = "equals(messages.channel,'email')"  # Get Campaigns requires a channel


@dataclass(frozen=True)
class Endpoint:
    """One collection: where it lives, the table it loads, and what its records must satisfy."""

    resource: str  # dlt resource and table name (and `resource` in the quarantine table)
    path: str  # under `<base_url>/api/`; `{list_id}` is filled in for list members
    rules: RecordRules
    cursor: str | None = None  # the JSON:API attribute an incremental read filters and sorts on

    @property
    def cursor_path(self) -> str | None:
        return f"attributes.{self.cursor}" if self.cursor else None


def _rules(*timestamps: str, numbers: tuple[str, ...] = ()) -> RecordRules:
    return RecordRules(primary_key=("id",), timestamps=tuple(f"attributes.{t}" for t in timestamps), numbers=numbers)


PROFILES = Endpoint("profiles", "profiles", _rules("created", "updated"), cursor="updated")
LISTS = Endpoint("lists", "lists", _rules("created", "updated"))
LIST_MEMBERS = Endpoint("list_memberships", "lists/{list_id}/profiles", _rules("joined_group_at"))
# The members' ids alone, ten times as many a page: who is in a list each run, with the join
# times of the members new since the last run from Get List Profiles (`joined_group_at` filter).
LIST_MEMBER_IDS = Endpoint("list_memberships", "lists/{list_id}/relationships/profiles", _rules())
METRICS = Endpoint("metrics", "metrics", _rules("created", "updated"))
CAMPAIGNS = Endpoint("campaigns", "campaigns", _rules("created_at", "updated_at", "send_time"), cursor="updated_at")
# `timestamp` is epoch seconds; a vendor that starts sending it as a string is coerced back.
EVENTS = Endpoint("events", "events", _rules("datetime", numbers=("attributes.timestamp",)), cursor="datetime")


def _typed(data_type: TDataType, *names: str) -> dict[str, TColumnSchema]:
    return {name: {"data_type": data_type, "nullable": True} for name in names}


# Columns declared with their type so a table has them even when every value of a load is null
# (no one has bounced yet), and JSON columns dlt must not unpack into tables.
PROFILE_COLUMNS: dict[str, TColumnSchema] = {
    **_typed("text", "email", "phone_number", "external_id", "first_name", "last_name", "organization", "title"),
    **_typed("text", "locale", "image", "location__address1", "location__address2", "location__city"),
    **_typed("text", "location__region", "location__country", "location__zip", "location__timezone", "location__ip"),
    **_typed("timestamp", "created", "updated", "last_event_date"),
    **_typed("text", "email_marketing_consent", "email_marketing_method", "email_marketing_method_detail"),
    **_typed("timestamp", "email_marketing_consent_timestamp", "email_marketing_last_updated"),
    **_typed("bool", "can_receive_email_marketing", "email_marketing_double_optin", "can_receive_sms_marketing"),
    **_typed("text", "email_suppression_reasons", "sms_marketing_consent"),
    **_typed("double", "location__latitude", "location__longitude"),
    **_typed("json", "properties", "email_suppression", "email_list_suppressions"),
}
LIST_COLUMNS: dict[str, TColumnSchema] = _typed("timestamp", "created", "updated")
# `list_emptied` is true only on a marker row that clears a list now empty or gone (see
# `helpers.list_membership_rows`); dlt deletes the list's rows and never stores the marker.
LIST_MEMBER_COLUMNS: dict[str, TColumnSchema] = {
    **_typed("timestamp", "joined_group_at"),
    "list_emptied": {"data_type": "bool", "nullable": True, "hard_delete": True},
}
METRIC_COLUMNS: dict[str, TColumnSchema] = _typed("timestamp", "created", "updated")
CAMPAIGN_COLUMNS: dict[str, TColumnSchema] = {
    **_typed("timestamp", "created_at", "scheduled_at", "updated_at", "send_time"),
    **_typed("json", "audiences", "tracking_options__custom_tracking_params"),
}
EVENT_COLUMNS: dict[str, TColumnSchema] = {
    **_typed("text", "metric_id", "profile_id", "message_id", "uuid"),
    **_typed("timestamp", "datetime"),
    **_typed("bigint", "timestamp"),
    **_typed("json", "event_properties"),
}

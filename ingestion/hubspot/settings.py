"""What Tessera reads from HubSpot: the objects and properties its models use, paging, limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ingestion.common.quarantine import RecordRules

VENDOR = "hubspot"
OBJECTS_PATH = "crm/v3/objects/{object_type}"
# The v3 batch read answers in the list endpoint's shape ({id, type} per association); v4's
# typeId/label pairs would need HubSpot's table of type ids to mean the same.
ASSOCIATIONS_BATCH_READ_PATH = "crm/v3/associations/{from_type}/{to_type}/batch/read"
ASSOCIATIONS_BATCH_SIZE = 1000  # the batch read's maximum inputs

PAGE_SIZE = 100  # the CRM v3 list endpoints' maximum
SEARCH_PAGE_SIZE = 200  # the search endpoints' maximum
# HubSpot allows 5 searches per second per token; stay a little under it, since a second
# process with the same token (a backfill, the Dagster UI) shares the budget.
SEARCHES_PER_SECOND = 4.0
# The list and get endpoints report their budget in these headers (100 or 190 per 10 s).
RATE_LIMIT_REMAINING = "X-HubSpot-RateLimit-Remaining"
RATE_LIMIT_INTERVAL_MS = "X-HubSpot-RateLimit-Interval-Milliseconds"

# Older than any HubSpot portal: the first run reads the whole CRM.
START_DATE = datetime(2006, 1, 1, tzinfo=UTC)
# Each run searches from the newest modification it loaded minus this, for writes that reach
# HubSpot's search index late and for clocks that disagree by a little.
LOOKBACK_SECONDS = 3600
# A run that quarantined records holds its cursor so the next runs read them again (they
# usually arrive clean); after this many runs in a row the records stay in quarantine for review.
REPAIR_RUNS = 3


@dataclass(frozen=True)
class CrmObject:
    name: str  # path segment and table name
    modified: str  # HubSpot's last-modified property, which searches filter and sort on
    properties: tuple[str, ...]
    associations: tuple[str, ...] = ()  # kept as the `<name>__associations` child table

    @property
    def rules(self) -> RecordRules:
        # Every HubSpot property value is a string, so there are no numeric fields to coerce.
        return RecordRules(primary_key=("id",), timestamps=("createdAt", "updatedAt", f"properties.{self.modified}"))


CONTACTS = CrmObject(
    "contacts",
    "lastmodifieddate",
    (
        "email",
        "firstname",
        "lastname",
        "phone",
        "city",
        "state",
        "country",
        "zip",
        "lifecyclestage",
        "membership_tier",
        "hs_email_optout",
        "associatedcompanyid",  # the contact's primary company, on list and search alike
        "createdate",
        "lastmodifieddate",
    ),
)
COMPANIES = CrmObject(
    "companies", "hs_lastmodifieddate", ("name", "domain", "industry", "city", "createdate", "hs_lastmodifieddate")
)
DEALS = CrmObject(
    "deals",
    "hs_lastmodifieddate",
    ("dealname", "amount", "dealstage", "pipeline", "closedate", "createdate", "hs_lastmodifieddate"),
    associations=("contacts", "companies"),
)

OBJECTS = (CONTACTS, COMPANIES, DEALS)

"""HubSpot CRM v3 source: contacts, companies and deals, merged on HubSpot's object id.

Each resource is incremental on `updatedAt` (HubSpot's last-modified time). The first run pages
the list endpoint; later runs use the search endpoint with a `GTE` filter on the object's
last-modified property (`lastmodifieddate` for contacts, `hs_lastmodifieddate` for companies
and deals) from the cursor minus `LOOKBACK_SECONDS`, paged by key rather than offset (see
`helpers`). dlt keeps the cursor and moves it only when a load succeeds.

Hand-written resources rather than declarative `rest_api`: a resource switches between list
and search, pages the search by key, and screens each page before dlt's cursor sees it.

Tables in `raw_hubspot` (`max_table_nesting=1`):
- `contacts`, `companies`, `deals`: `properties` flattened into `properties__<name>` columns,
  every value a string as HubSpot serves it (staging casts); `created_at`, `updated_at` as
  timestamps. A contact's primary company is `properties__associatedcompanyid`.
- `deals__associations`: one row per associated contact or company of a deal
  (`to_object_type`, `to_id`, `association_type`), child of `deals`.
- `quarantine`: records that could not be loaded, with the reason; the cursor is held so the
  next run reads them again.
Deleted (archived) objects are not removed from the warehouse.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dlt
from dlt.sources import DltResource

from ingestion.common.http import RetryPolicy
from ingestion.hubspot.helpers import HubSpotApi, changed_records
from ingestion.hubspot.settings import (
    COMPANIES,
    CONTACTS,
    DEALS,
    LOOKBACK_SECONDS,
    PAGE_SIZE,
    SEARCH_PAGE_SIZE,
    START_DATE,
)


@dlt.source(name="hubspot", max_table_nesting=1)
def hubspot_source(
    base_url: str = dlt.config.value,
    access_token: str = dlt.secrets.value,
    page_size: int = PAGE_SIZE,
    search_page_size: int = SEARCH_PAGE_SIZE,
    retry_policy: RetryPolicy | None = None,
) -> tuple[DltResource, ...]:
    """Objects from HubSpot's CRM v3 API at `base_url` (https://api.hubapi.com for the real service).

    Configure with `SOURCES__HUBSPOT__BASE_URL` and `SOURCES__HUBSPOT__ACCESS_TOKEN` (a private
    app token), or the same keys in `.dlt/config.toml` / `.dlt/secrets.toml`. The other arguments
    default to HubSpot's own limits and the patient production retry policy.
    """
    api = HubSpotApi(base_url, access_token, retry_policy, page_size, search_page_size)

    # Cursors are argument defaults, which dlt binds to the pipeline state on each run (hence B008).
    @dlt.resource(write_disposition="merge", primary_key="id")
    def contacts(
        updated_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008
            "updatedAt", initial_value=START_DATE, lag=LOOKBACK_SECONDS, on_cursor_value_missing="include"
        ),
    ) -> Iterator[Any]:
        yield from changed_records(api, CONTACTS, updated_at)

    @dlt.resource(write_disposition="merge", primary_key="id")
    def companies(
        updated_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008
            "updatedAt", initial_value=START_DATE, lag=LOOKBACK_SECONDS, on_cursor_value_missing="include"
        ),
    ) -> Iterator[Any]:
        yield from changed_records(api, COMPANIES, updated_at)

    @dlt.resource(write_disposition="merge", primary_key="id")
    def deals(
        updated_at: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008
            "updatedAt", initial_value=START_DATE, lag=LOOKBACK_SECONDS, on_cursor_value_missing="include"
        ),
    ) -> Iterator[Any]:
        yield from changed_records(api, DEALS, updated_at)

    return contacts, companies, deals

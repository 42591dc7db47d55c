"""Instagram Graph API source: the brand's media, the comments on them, and its mentions.

Resources, each merged on the Graph `id` and incremental on `timestamp` (dlt keeps the cursor
and moves it only when a load succeeds):
- `media`: the brand's own posts, read with the API's `since` filter from the cursor minus
  `LOOKBACK_SECONDS`;
- `comments`: comments on the brand's media (`media_id` added), newest first per media, read
  until a page reaches past the cursor minus `COMMENT_LOOKBACK_SECONDS`. Comments have no time
  filter, so only media published within `comment_window_days` (default `COMMENT_WINDOW_DAYS`, setting
  `SOURCES__INSTAGRAM__COMMENT_WINDOW_DAYS`) before the cursor are visited; the first run visits
  every media;
- `mentions`: media by others that tag the brand (`/{ig-user-id}/tags`), newest first, read
  until a page reaches past the cursor minus `MENTION_LOOKBACK_SECONDS`.

Hand-written resources rather than declarative `rest_api`: two edges have no time filter and
need a stop rule, comments are read per media, every page is screened before dlt's cursor sees
it, and Graph throttling (HTTP 400) needs the retries of `helpers.GraphSession`.

Tables in `raw_instagram` (`max_table_nesting=1`): `media`, `comments` (with `from__id`,
`from__username` columns), `mentions`, and `quarantine` for records that could not be loaded.
Engagement counts (`like_count`, `comments_count`) are as of the run that last read the record.
Deleted media and comments are not removed from the warehouse.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dlt
from dlt.sources import DltResource

from ingestion.common.http import RetryPolicy
from ingestion.instagram.helpers import GraphApi, comment_records, media_records, mention_records
from ingestion.instagram.settings import (
    API_VERSION,
    COMMENT_LOOKBACK_SECONDS,
    COMMENT_WINDOW_DAYS,
    LOOKBACK_SECONDS,
    MENTION_LOOKBACK_SECONDS,
    PAGE_SIZE,
    START_DATE,
)


@dlt.source(name="instagram", max_table_nesting=1)
def instagram_source(
    base_url: str = dlt.config.value,
    access_token: str = dlt.secrets.value,
    ig_user_id: str = dlt.config.value,
    api_version: str = API_VERSION,
    comment_window_days: int = COMMENT_WINDOW_DAYS,
    page_size: int = PAGE_SIZE,
    retry_policy: RetryPolicy | None = None,
) -> tuple[DltResource, ...]:
    """The brand's Instagram business account through the Graph API at `base_url`
    (https://graph.facebook.com for the real service).

    Configure with `SOURCES__INSTAGRAM__BASE_URL`, `SOURCES__INSTAGRAM__ACCESS_TOKEN` (a user
    access token with the instagram_basic, instagram_manage_comments and pages_read_engagement
    permissions), `SOURCES__INSTAGRAM__IG_USER_ID` (the Instagram business account id) and
    `SOURCES__INSTAGRAM__API_VERSION`, or the same keys in `.dlt/config.toml` / `.dlt/secrets.toml`.
    `comment_window_days` (`SOURCES__INSTAGRAM__COMMENT_WINDOW_DAYS`) bounds which media have their
    comments re-read; the other arguments default to the Graph API's limits and the patient
    production retry policy.
    """
    api = GraphApi(base_url, api_version, access_token, ig_user_id, retry_policy, page_size)

    # Cursors are argument defaults, which dlt binds to the pipeline state on each run (hence B008).
    @dlt.resource(write_disposition="merge", primary_key="id")
    def media(
        timestamp: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008
            "timestamp", initial_value=START_DATE, lag=LOOKBACK_SECONDS, on_cursor_value_missing="include"
        ),
    ) -> Iterator[Any]:
        yield from media_records(api, timestamp)

    @dlt.resource(write_disposition="merge", primary_key="id")
    def comments(
        timestamp: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008
            "timestamp", initial_value=START_DATE, lag=COMMENT_LOOKBACK_SECONDS, on_cursor_value_missing="include"
        ),
    ) -> Iterator[Any]:
        yield from comment_records(api, timestamp, comment_window_days)

    @dlt.resource(write_disposition="merge", primary_key="id")
    def mentions(
        timestamp: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008
            "timestamp", initial_value=START_DATE, lag=MENTION_LOOKBACK_SECONDS, on_cursor_value_missing="include"
        ),
    ) -> Iterator[Any]:
        yield from mention_records(api, timestamp)

    return media, comments, mentions

"""What Tessera reads from the Instagram Graph API: fields, paging, windows and Graph error codes."""

from __future__ import annotations

from datetime import UTC, datetime

from ingestion.common.quarantine import RecordRules

VENDOR = "instagram"
API_VERSION = "v21.0"

PAGE_SIZE = 100  # the Graph API's maximum `limit` on these edges (comments: it serves 50 at most)

# Own media (`/{ig-user-id}/media`); `media_url` is left out: it is a CDN link that expires.
MEDIA_FIELDS = (
    "id,caption,comments_count,like_count,media_product_type,media_type,permalink,shortcode,timestamp,"
    "username,is_comment_enabled"
)
# Media by others that tag the brand (`/{ig-user-id}/tags`).
MENTION_FIELDS = (
    "id,caption,comments_count,like_count,media_product_type,media_type,permalink,shortcode,timestamp,username"
)
COMMENT_FIELDS = "id,text,timestamp,username,like_count,from{id,username}"
# What the comments resource needs to know of a media it may visit.
MEDIA_TO_VISIT_FIELDS = "id,comments_count"

# Older than Instagram: the first run reads the account's whole history.
START_DATE = datetime(2010, 1, 1, tzinfo=UTC)
# Each run reads from the newest record it loaded minus this: media and comments show up at
# their own time, give or take moderation and clock skew.
LOOKBACK_SECONDS = 24 * 3600
# Comments arrive as they are written (a comment held for review shows when approved, minutes
# later); a day of them is the night's largest read, at most 50 a page (the comments edge's
# maximum). Re-reading a whole day more (the media lookback) would double it, to about the whole
# hourly budget of a token under the Graph API's platform limit at a million customers.
COMMENT_LOOKBACK_SECONDS = 2 * 3600
# A brand can be tagged in a post long after it was published (the author edits the tags), and
# tagged media carry the post's time: mentions look further back.
MENTION_LOOKBACK_SECONDS = 7 * 24 * 3600
# Comments have no time filter, so a run re-reads the comments of recent media only: media
# published up to this many days before the comments cursor (minus the lookback). A comment on
# an older post is missed until a run with a wider window (or a fresh pipeline) reads it.
COMMENT_WINDOW_DAYS = 30

# A run that quarantined records (or could not visit every media for comments) keeps its cursor
# where it was, so the next runs read them again; after this many runs in a row it moves on.
REPAIR_RUNS = 3

# Graph error codes: throttling (application, user, page, custom-rate, Instagram business use
# case, page business use case), retried with backoff although HTTP says 400;
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002})
# and a token that is missing, invalid, expired or lacks the permissions the call needs.
CREDENTIAL_CODES = frozenset({102, 104, 190, 10, 200})

MEDIA_RULES = RecordRules(primary_key=("id",), timestamps=("timestamp",), numbers=("comments_count", "like_count"))
MENTION_RULES = MEDIA_RULES
COMMENT_RULES = RecordRules(primary_key=("id",), timestamps=("timestamp",), numbers=("like_count",))

"""What Tessera reads from Mailchimp's Marketing API v3: paths, page size, windows and the record rules."""

from ingestion.common.quarantine import RecordRules

VENDOR = "mailchimp"
API_PATH = "/3.0"  # appended to SOURCES__MAILCHIMP__BASE_URL (https://<dc>.api.mailchimp.com)

PAGE_SIZE = 1000  # `count` is at most 1000 on every list endpoint
START_DATE = "2000-01-01T00:00:00+00:00"  # the first run reads everything after this

# How far back each run re-reads before the stored cursor, for changes that were committed or
# reported a little after the time they carry (Mailchimp records opens when the pixel loads).
LOOKBACK_SECONDS = 24 * 3600

# Opens and clicks keep arriving for a while after a campaign is sent. Each run re-reads the
# campaigns sent within this window (their `report_summary` changes) and asks their reports for
# new activity; older campaigns are not revisited, so activity more than this long after a send
# is not loaded (a full reload, with a fresh pipeline state, picks it up).
ENGAGEMENT_WINDOW_DAYS = 30

# A record quarantined in transit is read again (by id, or from its own time) on the next runs;
# after this many runs that still get it broken, it stays in quarantine and the run moves on.
REPAIR_ATTEMPTS = 3

# Mailchimp's hypermedia links are noise in a warehouse: leave them out of every response.
EXCLUDE_LINKS = "_links,{collection}._links"

LIST_RULES = RecordRules(
    primary_key=("id",),
    timestamps=("date_created",),
    numbers=(
        "web_id",
        "list_rating",
        "stats.member_count",
        "stats.total_contacts",
        "stats.unsubscribe_count",
        "stats.cleaned_count",
        "stats.campaign_count",
        "stats.merge_field_count",
        "stats.open_rate",
        "stats.click_rate",
    ),
)
MEMBER_RULES = RecordRules(
    primary_key=("list_id", "id"),
    timestamps=("last_changed", "timestamp_opt", "timestamp_signup"),
    numbers=("web_id", "member_rating", "tags_count", "stats.avg_open_rate", "stats.avg_click_rate"),
)
CAMPAIGN_RULES = RecordRules(
    primary_key=("id",),
    timestamps=("send_time", "create_time"),
    numbers=(
        "web_id",
        "emails_sent",
        "recipients.recipient_count",
        "settings.template_id",
        "report_summary.opens",
        "report_summary.unique_opens",
        "report_summary.open_rate",
        "report_summary.clicks",
        "report_summary.subscriber_clicks",
        "report_summary.click_rate",
    ),
)
# Fields Mailchimp serves as "" when unset; loaded as null so their columns keep one type.
LIST_BLANKS = ("date_created", "stats.campaign_last_sent", "stats.last_sub_date", "stats.last_unsub_date")
MEMBER_BLANKS = ("last_changed", "timestamp_opt", "timestamp_signup", "merge_fields.ADDRESS")
CAMPAIGN_BLANKS = ("send_time", "create_time")

LIST_TIMESTAMPS = ("date_created", "stats__campaign_last_sent", "stats__last_sub_date", "stats__last_unsub_date")
MEMBER_TIMESTAMPS = ("last_changed", "timestamp_opt", "timestamp_signup")

# Rates and coordinates: Mailchimp serves 0 until there is a fraction, so the type is declared.
LIST_DOUBLES = (
    "stats__open_rate",
    "stats__click_rate",
    "stats__avg_sub_rate",
    "stats__avg_unsub_rate",
    "stats__target_sub_rate",
)
MEMBER_DOUBLES = ("stats__avg_open_rate", "stats__avg_click_rate", "location__latitude", "location__longitude")
CAMPAIGN_DOUBLES = ("report_summary__open_rate", "report_summary__click_rate")

# One recipient of a campaign report, before its `activity` list is flattened into rows.
RECIPIENT_RULES = RecordRules(primary_key=("campaign_id", "email_id"))

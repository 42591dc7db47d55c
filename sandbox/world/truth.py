"""Ground truth as of the world clock, written to `<world>/truth/`.

Identities are derived from the very store columns the vendor APIs serve, each with the
person who used it, so every identifier an API exposes is in the truth by construction.
Rewritten whenever the clock moves, since a later clock exposes more.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb

# (source, id_type, store table, column, visible-from column)
IDENTIFIER_COLUMNS: tuple[tuple[str, str, str, str, str], ...] = (
    ("mixpanel", "device_id", "mixpanel_events", "device_id", "arrived_at"),
    ("mixpanel", "user_id", "mixpanel_events", "user_id", "arrived_at"),
    ("hubspot", "contact_id", "hubspot_contacts", "contact_id", "created_at"),
    ("hubspot", "email", "hubspot_contacts", "email", "created_at"),
    ("hubspot", "phone", "hubspot_contacts", "phone", "created_at"),
    ("shopify", "customer_id", "shopify_customers", "customer_id", "created_at"),
    ("shopify", "email", "shopify_customers", "email", "created_at"),
    ("shopify", "phone", "shopify_customers", "phone", "created_at"),
    ("shopify", "customer_id", "shopify_orders", "customer_id", "created_at"),
    ("shopify", "email", "shopify_orders", "email", "created_at"),
    ("shopify", "phone", "shopify_orders", "phone", "created_at"),
    ("shopify", "customer_id", "shopify_checkouts", "customer_id", "created_at"),
    ("shopify", "email", "shopify_checkouts", "email", "created_at"),
    ("shopify", "phone", "shopify_checkouts", "phone", "created_at"),
    ("klaviyo", "profile_id", "klaviyo_profiles", "profile_id", "created_at"),
    ("klaviyo", "email", "klaviyo_profiles", "email", "created_at"),
    ("klaviyo", "phone", "klaviyo_profiles", "phone_number", "created_at"),
    ("mailchimp", "email", "mailchimp_members", "email_address", "created_at"),
    ("mailchimp", "unique_email_id", "mailchimp_members", "unique_email_id", "created_at"),
    ("mailchimp", "phone", "mailchimp_members", "phone", "created_at"),
    ("instagram", "username", "instagram_comments", "username", "timestamp"),
    ("instagram", "user_id", "instagram_comments", "user_id", "timestamp"),
    ("instagram", "username", "instagram_mentions", "username", "timestamp"),
)


def _identities_sql(store: Path) -> str:
    parts = []
    for source, id_type, table, column, visible in IDENTIFIER_COLUMNS:
        parts.append(
            f"SELECT _person_id AS person_id, '{source}' AS source, '{id_type}' AS id_type, "
            f"CAST({column} AS VARCHAR) AS id_value FROM read_parquet('{store / table}.parquet') "
            f"WHERE _person_id IS NOT NULL AND {column} IS NOT NULL AND CAST({column} AS VARCHAR) <> '' "
            f"AND {visible} <= $clock"
        )
    return "SELECT DISTINCT * FROM (" + " UNION ALL ".join(parts) + ") ORDER BY ALL"


def write_truth(world: Path, clock: datetime) -> None:
    world = Path(world)
    store, truth = world / "store", world / "truth"
    truth.mkdir(exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        queries = {
            "identities": _identities_sql(store),
            "persons": f"""
                SELECT person_id, email, first_name, last_name, phone, street, city, region, country,
                       postal_code, membership_tier, household_id, instagram_username,
                       CASE WHEN consent_given_at IS NULL OR consent_given_at > $clock THEN 'never_subscribed'
                            WHEN consent_withdrawn_at <= $clock OR spam_complaint_at <= $clock THEN 'unsubscribed'
                            ELSE 'subscribed' END AS email_consent_status,
                       CASE WHEN consent_given_at <= $clock THEN consent_source END AS email_consent_source,
                       CASE WHEN consent_given_at <= $clock THEN consent_given_at END AS email_consent_given_at,
                       CASE WHEN consent_withdrawn_at <= $clock THEN consent_withdrawn_at END
                           AS email_consent_withdrawn_at,
                       CASE WHEN consent_withdrawn_at <= $clock THEN withdrawn_platform END
                           AS email_consent_withdrawn_in,
                       coalesce(bounced_at <= $clock, false) AS is_bounced,
                       coalesce(spam_complaint_at <= $clock, false) AS is_spam_complaint,
                       coalesce(erasure_requested_at <= $clock, false) AS erased,
                       CASE WHEN erasure_requested_at <= $clock THEN erasure_requested_at END AS erasure_requested_at,
                       is_guest_only, is_social_only,
                       CASE WHEN account_created_at <= $clock THEN account_created_at END AS account_created_at
                FROM read_parquet('{store}/_persons.parquet')
                WHERE active_from <= $clock ORDER BY person_id""",
            "checkouts": f"""
                SELECT checkout_id, person_id, started_at,
                       CASE WHEN completed_at > $clock THEN 'payment' ELSE furthest_step END AS furthest_step,
                       CASE WHEN completed_at <= $clock THEN completed_at END AS completed_at,
                       cart_value,
                       CASE WHEN completed_at > $clock THEN NULL ELSE exit_reason END AS exit_reason
                FROM read_parquet('{store}/_checkouts.parquet')
                WHERE started_at <= $clock ORDER BY checkout_id""",
        }
        for name, sql in queries.items():
            tmp = truth / f".{name}.parquet.tmp"
            con.execute(f"COPY ({sql}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)", {"clock": clock})
            tmp.replace(truth / f"{name}.parquet")  # atomic: readers never see half a file
    finally:
        con.close()

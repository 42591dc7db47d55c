"""Suites on the raw tables the loaders write: what reaches dbt must be whole, keyed and current.

Raw tables are merged on their primary keys and only ever grow, so a sharp drop in rows means a
table was replaced or truncated, and a duplicate key means a merge went wrong.
"""

from orchestration.defs.quality.expectations.suite import (
    TableSuite,
    at_least,
    between,
    fresh,
    no_sharp_drop,
    not_in_future,
    not_null,
    row_count_between,
    unique,
)

RAW_SUITES = [
    TableSuite(
        "raw_mixpanel/events",
        (
            row_count_between(1),
            no_sharp_drop(0.5),
            not_null("insert_id"),
            unique("insert_id"),
            not_null("time"),
            not_in_future("time"),
            # A shop tracks something every hour; a day of silence means the tracking broke.
            fresh("time", max_age_hours=24),
            at_least("price", 0),
            at_least("revenue", 0),
            at_least("total", 0),
        ),
        "Mixpanel events: present, keyed by insert_id, amounts not negative, newest within a day of now.",
    ),
    TableSuite(
        "raw_shopify/orders",
        (
            row_count_between(1),
            no_sharp_drop(0.5),
            not_null("id"),
            unique("id"),
            # Shopify sends money as decimal strings.
            at_least("total_price", 0, sql="try_cast(total_price AS DOUBLE)"),
            not_in_future("created_at"),
            # A small shop can go a day or two without an order; three days means the load stalled.
            fresh("created_at", max_age_hours=72),
        ),
        "Shopify orders: keyed by id, totals not negative, newest within three days of now.",
    ),
    TableSuite(
        "raw_shopify/abandoned_checkouts",
        (
            not_null("id"),
            unique("id"),
            at_least("total_price", 0, sql="try_cast(total_price AS DOUBLE)"),
            not_in_future("updated_at"),
        ),
        "Shopify abandoned checkouts: keyed by id, totals not negative.",
    ),
    TableSuite(
        "raw_hubspot/contacts",
        (
            row_count_between(1),
            no_sharp_drop(0.5),
            not_null("id"),
            unique("id"),
            not_in_future("updated_at"),
        ),
        "HubSpot contacts: present and keyed by id.",
    ),
    TableSuite(
        "raw_klaviyo/profiles",
        (
            row_count_between(1),
            no_sharp_drop(0.5),
            not_null("id"),
            unique("id"),
            not_in_future("updated"),
        ),
        "Klaviyo profiles: present and keyed by id (they carry the consent the pushes obey).",
    ),
    TableSuite(
        "raw_mailchimp/members",
        (
            row_count_between(1),
            no_sharp_drop(0.5),
            not_null("id"),
            unique("list_id", "id"),
            *between("stats__avg_open_rate", 0, 1),
            *between("stats__avg_click_rate", 0, 1),
        ),
        "Mailchimp members: present, keyed by audience and id, rates in [0, 1].",
    ),
]

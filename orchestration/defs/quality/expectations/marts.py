"""Suites on the marts the pushes read: one row per customer or checkout, sane amounts, current."""

from orchestration.defs.quality.expectations.suite import (
    TableSuite,
    at_least,
    no_sharp_drop,
    not_in_future,
    not_null,
    row_count_between,
    unique,
)

MART_SUITES = [
    TableSuite(
        "marts/dim_customers",
        (
            row_count_between(1),
            # Customers only leave through erasure, a handful a night.
            no_sharp_drop(0.2),
            not_null("customer_id"),
            unique("customer_id"),
            at_least("orders", 0),
            at_least("revenue", 0),
            at_least("average_order_value", 0),
            not_in_future("last_seen_at"),
        ),
        "Customers: one row per customer_id, amounts not negative, nobody seen after now.",
    ),
    TableSuite(
        "marts/fct_checkouts",
        (
            row_count_between(1),
            no_sharp_drop(0.5),
            not_null("checkout_token"),
            unique("checkout_token"),
            not_null("customer_id"),
            at_least("cart_value", 0),
            at_least("extra_costs_shown", 0),
            not_in_future("started_at"),
            not_in_future("last_activity_at"),
        ),
        "Checkouts: one row per checkout token, each with a customer, values not negative.",
    ),
    TableSuite(
        "marts/abandoned_checkouts",
        (
            # The audience may be empty on a quiet night; it is never mailed twice to one person.
            row_count_between(0),
            not_null("customer_id"),
            unique("customer_id"),
            not_null("email"),
            not_null("checkout_token"),
            at_least("cart_value", 0),
            at_least("free_shipping_gap", 0),
            not_in_future("last_activity_at"),
        ),
        "Abandoned-checkout audience: each customer once, with an email, values not negative.",
    ),
]

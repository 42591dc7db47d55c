"""Funnel and abandonment marts end to end against the sandbox truth: each checkout's furthest
step and completion, the planted exit causes, the analysts' one funnel query, and the
abandoned-cart audience recomputed from the truth with the rule in ARCHITECTURE.md."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

from orchestration.paths import PROJECT_ROOT
from sandbox.world.vocab import JUNK_EMAILS, JUNK_PHONES
from tests.demo_runs import run_demo

pytestmark = pytest.mark.slow

SEED, CUSTOMERS, DAYS = 11, 400, 30


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("funnel")
    run_demo(data, SEED, CUSTOMERS, DAYS)
    return data


def _connect(night: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(night / "warehouse.duckdb"), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    return con


def _world(night: Path) -> Path:
    return night / "sandbox"


def test_fct_checkouts_matches_the_truth_on_furthest_step_and_completion(night):
    truth = _world(night) / "truth" / "checkouts.parquet"
    with _connect(night) as con:
        total, agreeing, missing = con.execute(
            f"""
            SELECT count(*),
                   count(*) FILTER (WHERE f.furthest_step = t.furthest_step
                                    AND f.is_completed = (t.completed_at IS NOT NULL)),
                   count(*) FILTER (WHERE f.checkout_token IS NULL)
            FROM read_parquet('{truth}') AS t
            LEFT JOIN marts.fct_checkouts AS f ON f.checkout_token = t.checkout_id
            """
        ).fetchall()[0]
        unknown = con.execute(
            f"SELECT count(*) FROM marts.fct_checkouts WHERE checkout_token NOT IN "
            f"(SELECT checkout_id FROM read_parquet('{truth}'))"
        ).fetchall()[0][0]
    assert total > 100, "the world has checkouts"
    agreement = agreeing / total
    print(f"fct_checkouts agrees with the truth on {agreeing}/{total} checkouts ({agreement:.2%}), {missing} missing")
    assert agreement >= 0.995
    assert unknown == 0, "every checkout in the mart is a real one"


def test_exit_cause_marts_recover_the_planted_causes(night):
    truth = _world(night) / "truth" / "checkouts.parquet"
    with _connect(night) as con:
        planted = dict(
            con.execute(
                f"SELECT exit_reason, count(*) FROM read_parquet('{truth}') "
                "WHERE exit_reason IS NOT NULL GROUP BY exit_reason"
            ).fetchall()
        )
        measured = dict(con.execute("SELECT exit_cause, exits_measured FROM marts.fct_checkout_exit_causes").fetchall())
        rates = {
            cause: (exposed, not_exposed)
            for cause, exposed, not_exposed in con.execute(
                "SELECT exit_cause, exit_rate_when_exposed, exit_rate_when_not_exposed "
                "FROM marts.fct_checkout_exit_causes"
            ).fetchall()
        }
    print("planted vs measured exits:", {c: (planted.get(c, 0), measured.get(c)) for c in planted})
    assert set(measured) == set(planted)
    # Shipping and payment exits are read directly from the step left.
    for cause in ("extra_costs", "payment"):
        assert abs(measured[cause] - planted[cause]) <= max(2, 0.02 * planted[cause]), cause
    # The account wall's exits are an excess over a baseline rate: an estimate, close not exact.
    for cause in ("forced_account", "low_intent"):
        assert abs(measured[cause] - planted[cause]) <= max(8, 0.2 * planted[cause]), cause
    assert max(measured, key=measured.get) == max(planted, key=planted.get) == "extra_costs"
    # The observable signals point the right way: a shipping fee and a forced account lose more shoppers.
    assert rates["extra_costs"][0] > rates["extra_costs"][1]
    assert rates["forced_account"][0] > 2 * rates["forced_account"][1]


def test_the_documented_funnel_query_answers_where_and_whether_guest_checkout_helped(night):
    docs = yaml.safe_load(
        (PROJECT_ROOT / "dbt_project" / "models" / "marts" / "funnel" / "_funnel__models.yml").read_text()
    )
    description = next(m["description"] for m in docs["models"] if m["name"] == "fct_checkout_funnel_steps")
    query = description.split("```sql", 1)[1].split("```", 1)[0]
    with _connect(night) as con:
        rows = con.execute(query).fetchall()
        totals = con.execute(
            "SELECT sum(checkouts_reached) FILTER (WHERE step = 'contact'), "
            "sum(checkouts_reached) FILTER (WHERE step = 'completed') FROM marts.fct_checkout_funnel_steps"
        ).fetchall()[0]
        checkouts, completed = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_completed) FROM marts.fct_checkouts"
        ).fetchall()[0]
    assert totals == (checkouts, completed), "the funnel counts every checkout once"
    step, _guest, _reached, _dropped, _rate = rows[0]
    assert step == "shipping", "most shoppers are lost where extra costs appear"
    contact = {guest: rate for step, guest, _r, _d, rate in rows if step == "contact" and guest is not None}
    assert contact[True] < contact[False], "guest checkout lowered the drop-off at the account step"


def _abandoned_from_truth(con: duckdb.DuckDBPyConnection, world: Path) -> set[str]:
    """The rule of ARCHITECTURE.md applied to the truth, for the checkouts the shop can attribute.

    The truth knows who made every checkout; the shop only when the shopper said so: an email or
    phone typed into this checkout or its order, an account signed in during it, or a device on which
    exactly one person ever identified themselves (and it was them). Someone who never did on a
    shared or anonymous device cannot be mailed by any rule, so those checkouts are left out.
    """
    store = world / "store"
    now = "TIMESTAMPTZ '{}'".format(json.loads((world / "world.json").read_text())["clock"])
    # A placeholder typed as the email or phone says nothing about who the shopper is.
    junk_emails = ", ".join(f"'{e}'" for e in JUNK_EMAILS)
    junk_phones = ", ".join(f"'{p}'" for p in JUNK_PHONES)
    said_who = f"(lower(trim(email)) NOT IN ({junk_emails}) OR coalesce(phone NOT IN ({junk_phones}), false))"
    rows = con.execute(
        f"""
        WITH events AS (
            SELECT device_id, user_id, _person_id AS person_id,
                   json_extract_string(properties, '$.checkout_id') AS token
            FROM read_parquet('{store}/mixpanel_events.parquet') WHERE arrived_at <= {now}),
        checkout_devices AS (
            SELECT token, any_value(device_id) AS device_id FROM events WHERE token IS NOT NULL GROUP BY token),
        typed AS (
            SELECT token, _person_id AS person_id FROM read_parquet('{store}/shopify_checkouts.parquet')
            WHERE created_at <= {now} AND {said_who}
            UNION
            SELECT checkout_token, _person_id FROM read_parquet('{store}/shopify_orders.parquet')
            WHERE created_at <= {now} AND checkout_token IS NOT NULL AND {said_who}),
        identified AS (
            SELECT device_id, person_id FROM events WHERE user_id IS NOT NULL
            UNION
            SELECT d.device_id, t.person_id FROM checkout_devices AS d JOIN typed AS t USING (token)),
        device_owners AS (
            SELECT device_id, any_value(person_id) AS person_id FROM identified
            GROUP BY device_id HAVING count(DISTINCT person_id) = 1),
        checkouts AS (SELECT * FROM read_parquet('{store}/_checkouts.parquet') WHERE started_at <= {now}),
        attributable AS (
            SELECT token FROM typed
            UNION SELECT token FROM events WHERE user_id IS NOT NULL AND token IS NOT NULL
            UNION SELECT d.token FROM checkout_devices AS d JOIN device_owners AS o USING (device_id)
                  JOIN checkouts AS c ON c.checkout_id = d.token WHERE c.person_id = o.person_id),
        orders AS (
            SELECT _person_id AS person_id, created_at FROM read_parquet('{store}/shopify_orders.parquet')
            WHERE created_at <= {now}),
        abandoned AS (
            SELECT c.* FROM checkouts AS c
            WHERE c.checkout_id IN (SELECT token FROM attributable)
              AND c.last_activity_at <= {now} - INTERVAL 24 HOURS
              AND c.last_activity_at >= {now} - INTERVAL 7 DAYS
              AND NOT EXISTS (SELECT 1 FROM orders AS o
                              WHERE o.person_id = c.person_id AND o.created_at >= c.started_at))
        SELECT a.checkout_id
        FROM abandoned AS a JOIN read_parquet('{world}/truth/persons.parquet') AS p USING (person_id)
        WHERE p.email_consent_status = 'subscribed' AND NOT p.is_bounced AND NOT p.is_spam_complaint
          AND NOT p.erased
        QUALIFY row_number() OVER (PARTITION BY a.person_id ORDER BY a.started_at DESC) = 1
        """
    ).fetchall()
    return {token for (token,) in rows}


def test_abandoned_checkouts_equal_the_rule_computed_from_the_truth(night):
    world = _world(night)
    with _connect(night) as con:
        expected = _abandoned_from_truth(con, world)
        mart = con.execute(
            "SELECT checkout_token, free_shipping_gap, cart_value FROM marts.abandoned_checkouts"
        ).fetchall()
        # Every recommendation is in stock, viewed by the customer, and not in the cart.
        bad_recommendations = con.execute(
            """
            WITH recs AS (
                SELECT a.customer_id, a.checkout_token,
                       unnest(from_json(a.recommended_products, '[{"product_id": "VARCHAR"}]')).product_id AS product_id
                FROM marts.abandoned_checkouts AS a)
            SELECT count(*) FROM recs
            WHERE product_id IN (SELECT product_id FROM staging.stg_shopify__product_variants
                                 WHERE inventory_quantity <= 0)
               OR product_id IN (SELECT product_id FROM intermediate.int_checkout_line_items_unioned AS l
                                 WHERE l.checkout_token = recs.checkout_token)
               OR product_id NOT IN (SELECT product_id FROM intermediate.int_product_views_aggregated AS v
                                     WHERE v.customer_id = recs.customer_id)
            """
        ).fetchall()[0][0]
    got = {token for token, _gap, _value in mart}
    print(f"abandoned checkouts: mart {len(got)}, truth {len(expected)}, both {len(got & expected)}")
    assert expected, "the world has abandoned checkouts in the window"
    assert got == expected
    assert all(abs(gap - max(75 - value, 0)) < 0.006 for _t, gap, value in mart)
    assert bad_recommendations == 0

"""fct_checkouts, built incrementally, equals a full refresh: one rule of its change detection at a
time. The two nights of the small world (the fixture `small_world_nights`) change few checkouts
that existed on the first night, and each of those through several inputs at once, so on top of
the second night this test plays one change per input, each to a checkout nothing else touched:
a late checkout event, a late event that moves the start of the device's session, Shopify
updating an abandoned checkout and an order in place, identity moving a device to another
customer, a customer gaining an earlier order, and a late report of the shop's guest-checkout
setting (when a checkout without a setting of its own is quiet on the second night). The same
changes go into both warehouses; the table the first night left is brought up to date by one
incremental run, the other is rebuilt from scratch, and the two must be equal row for row, with
every played change visible."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta

import duckdb
import pytest

from tests.transform.incremental_support import differences, run_dbt

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# The tables the first night left: the incremental models fct_checkouts reads, itself, and the
# record of what it read (its watermarks).
RESTORED = (
    "intermediate.int_device_sessions",
    "intermediate.int_checkout_events_pivoted",
    "intermediate.int_identity__mixpanel_pairs",
    "marts.fct_checkouts",
    "intermediate.fct_checkouts__watermarks",
)
SELECTED = (
    "int_device_sessions int_checkout_events_pivoted int_identity__mixpanel_pairs int_checkout_line_items_unioned "
    "fct_checkouts"
)
SHOPIFY_ROOTS = ("raw_shopify.abandoned_checkouts", "raw_shopify.orders")


def _one(con: duckdb.DuckDBPyConnection, sql: str, *params):
    rows = con.execute(sql, list(params)).fetchall()
    assert rows, f"no checkout fits: {sql}"
    return rows[0]


def play_changes(con: duckdb.DuckDBPyConnection, clock: datetime) -> dict[str, str]:
    """Play one change per input of fct_checkouts into the warehouse `con` (the first night's
    warehouse attached as `first_night`); the checkout each change must show in, by change."""
    newest = "SELECT max(CAST(_dlt_load_id AS DOUBLE)) FROM {}"
    load = max(con.execute(newest.format(t)).fetchall()[0][0] for t in SHOPIFY_ROOTS)
    first_load = max(con.execute(newest.format(f"first_night.{t}")).fetchall()[0][0] for t in SHOPIFY_ROOTS)
    new_load, received = f"{load + 3600:.6f}", clock - timedelta(hours=1)
    # What an incremental run counts as received since the first night: after its newest receipt
    # less the margin (tessera__sessions_rebuild_margin_hours, 6).
    cut = con.execute(
        "SELECT least((SELECT max(last_processed_at) FROM first_night.intermediate.int_checkout_events_pivoted), "
        "(SELECT max(last_processed_at) FROM first_night.intermediate.int_device_sessions)) - INTERVAL 6 HOUR"
    ).fetchall()[0][0]
    # Checkouts of the first night that nothing received or loaded since touches.
    con.execute(
        """
        CREATE TEMP TABLE quiet AS
        SELECT f.*, p.is_guest_checkout_enabled AS own_setting, p.user_id
        FROM first_night.marts.fct_checkouts AS f
        LEFT JOIN first_night.intermediate.int_checkout_events_pivoted AS p USING (checkout_token)
        WHERE f.checkout_token NOT IN (
                SELECT checkout_id FROM raw_mixpanel.events WHERE checkout_id IS NOT NULL AND processed_at > $cut)
            AND coalesce(f.device_id NOT IN (
                SELECT device_id FROM raw_mixpanel.events WHERE device_id IS NOT NULL AND processed_at > $cut), true)
            AND f.checkout_token NOT IN (
                SELECT token FROM raw_shopify.abandoned_checkouts WHERE CAST(_dlt_load_id AS DOUBLE) > $first_load)
            AND f.checkout_token NOT IN (
                SELECT checkout_token FROM raw_shopify.orders
                WHERE checkout_token IS NOT NULL AND CAST(_dlt_load_id AS DOUBLE) > $first_load)
        """,
        {"cut": cut, "first_load": first_load},
    )
    played: dict[str, str] = {}
    devices: set[str] = set()

    def pick(name: str, where: str) -> tuple:
        taken = ", ".join(f"'{v}'" for v in [*played.values(), *devices]) or "''"
        row = _one(
            con,
            f"SELECT checkout_token, device_id, customer_id, started_at, session_id FROM quiet WHERE {where} "
            f"AND checkout_token NOT IN ({taken}) AND coalesce(device_id NOT IN ({taken}), true) "
            "ORDER BY checkout_token LIMIT 1",
        )
        played[name] = row[0]
        if row[1]:
            devices.add(row[1])
        return row

    # A late checkout event, sent without a device (from a server): only the checkout's events change.
    token, *_ = pick("late_event", "is_tracked AND NOT is_completed AND furthest_step IN ('contact', 'shipping')")
    con.execute(
        """
        INSERT INTO raw_mixpanel.events
        SELECT * REPLACE ('late-payment-' || checkout_id AS insert_id, 'Payment Info Entered' AS event,
                          NULL AS device_id, $received AS processed_at, $load AS _dlt_load_id)
        FROM raw_mixpanel.events WHERE checkout_id = $token ORDER BY time DESC, insert_id LIMIT 1
        """,
        {"token": token, "received": received, "load": new_load},
    )
    # A late page view on the device a minute before the checkout's session began: the session
    # now starts earlier and came from an email; the checkout's own events are unchanged.
    token, device, *_ = pick("session", "is_tracked AND session_id IS NOT NULL")
    con.execute(
        """
        INSERT INTO raw_mixpanel.events
        SELECT * REPLACE ('late-view-' || device_id AS insert_id, 'Product Viewed' AS event, NULL AS checkout_id,
                          NULL AS order_id, NULL AS step_name, NULL AS step, time - INTERVAL 1 MINUTE AS time,
                          'newsletter' AS utm_source, 'email' AS utm_medium, $received AS processed_at,
                          $load AS _dlt_load_id)
        FROM raw_mixpanel.events
        WHERE device_id = $device
            AND time = (SELECT s.started_at FROM intermediate.int_device_sessions AS s
                        WHERE s.session_id = (SELECT session_id FROM quiet WHERE checkout_token = $token))
        ORDER BY insert_id LIMIT 1
        """,
        {"device": device, "token": token, "received": received, "load": new_load},
    )
    # Shopify updates an abandoned checkout and an order in place.
    token, *_ = pick("shopify_checkout", "checkout_id IS NOT NULL AND order_id IS NULL")
    con.execute(
        "UPDATE raw_shopify.abandoned_checkouts SET _dlt_load_id = $load, "
        "subtotal_price = CAST(CAST(subtotal_price AS DOUBLE) + 10 AS VARCHAR) WHERE token = $token",
        {"token": token, "load": new_load},
    )
    token, *_ = pick("shopify_order", "is_completed AND order_id IS NOT NULL")
    con.execute(
        "UPDATE raw_shopify.orders SET _dlt_load_id = $load, "
        "subtotal_price = CAST(CAST(subtotal_price AS DOUBLE) + 10 AS VARCHAR) WHERE checkout_token = $token",
        {"token": token, "load": new_load},
    )
    # Identity moves a device (the only record naming the checkout's customer) to another customer.
    token, device, customer, *_ = pick(
        "identity_move", "customer_id IS NOT NULL AND order_id IS NULL AND checkout_id IS NULL AND user_id IS NULL"
    )
    con.execute(
        "UPDATE intermediate.int_identity__records SET customer_id = "
        "(SELECT min(customer_id) FROM intermediate.int_identity__records WHERE customer_id <> $customer) "
        "WHERE record_id = 'mixpanel_device:' || $device",
        {"device": device, "customer": customer},
    )
    # Identity gives a new customer an order placed before their checkout: returning now, same customer.
    _, _, customer, started_at, _ = pick(
        "customer_type",
        "customer_type = 'new' AND customer_id IS NOT NULL AND customer_id NOT IN "
        "(SELECT customer_id FROM quiet WHERE checkout_token IN ('"
        + "', '".join(played.values())
        + "') AND customer_id IS NOT NULL)",
    )
    con.execute(
        """
        UPDATE intermediate.int_identity__records SET customer_id = $customer
        WHERE record_id = (
            SELECT 'shopify_order:' || order_id FROM staging.stg_shopify__orders
            WHERE NOT is_test AND created_at < $started_at
                AND coalesce(checkout_token NOT IN (SELECT unnest($played)), true)
            ORDER BY created_at, order_id LIMIT 1)
        """,
        {"customer": customer, "started_at": started_at, "played": list(played.values())},
    )
    # A late Checkout Started of a checkout just before one that has no setting of its own
    # reports the opposite guest-checkout setting (sent from a server: no device).
    # The small world's nights may leave no such checkout quiet; then this change is not played.
    if not con.execute("SELECT count(*) FROM quiet WHERE own_setting IS NULL").fetchall()[0][0]:
        return played
    token, _, _, started_at, _ = pick("guest_setting", "own_setting IS NULL")
    con.execute(
        """
        INSERT INTO raw_mixpanel.events
        SELECT * REPLACE ('late-start-' || checkout_id AS insert_id, 'Checkout Started' AS event,
                          'late-' || checkout_id AS checkout_id, NULL AS device_id, NULL AS order_id,
                          $started_at - INTERVAL 1 SECOND AS time,
                          NOT coalesce((SELECT is_guest_checkout_available FROM quiet
                                        WHERE checkout_token = $token), false) AS guest_checkout_enabled,
                          $received AS processed_at, $load AS _dlt_load_id)
        FROM raw_mixpanel.events WHERE event = 'Checkout Started' ORDER BY insert_id LIMIT 1
        """,
        {"token": token, "started_at": started_at, "received": received, "load": new_load},
    )
    return played


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory, small_world_nights) -> dict:
    first, second = small_world_nights
    data, first_night = second.data, first.snapshot
    clock = json.loads((data / "sandbox" / "world.json").read_text())["clock"]
    scratch = tmp_path_factory.mktemp("checkouts_scratch")
    built: dict = {"first_night": first_night}
    for name in ("incremental", "full_refresh"):
        warehouse = scratch / f"{name}.duckdb"
        shutil.copy(data / "warehouse.duckdb", warehouse)
        with duckdb.connect(str(warehouse)) as con:
            con.execute(f"ATTACH '{first_night}' AS first_night (READ_ONLY)")
            if name == "incremental":
                for relation in RESTORED:
                    con.execute(f"CREATE OR REPLACE TABLE {relation} AS SELECT * FROM first_night.{relation}")
            built["played"] = play_changes(con, datetime.fromisoformat(clock.replace("Z", "+00:00")))
        built[name] = warehouse
    now = json.dumps({"tessera__now": clock})
    run_dbt(built["incremental"], scratch / "incremental", "run", "--select", SELECTED, "--vars", now)
    target = scratch / "incremental" / "target"
    run = next((target / "run").rglob("fct_checkouts.sql")).read_text().lower()
    assert "delete from" in run, "fct_checkouts' run was incremental (delete+insert)"
    compiled = next((target / "compiled").rglob("fct_checkouts.sql")).read_text().lower()
    assert "fct_checkouts__watermarks" in compiled, "fct_checkouts read the watermarks the first night recorded"
    run_dbt(
        built["full_refresh"], scratch / "full_refresh", "run", "--full-refresh", "--select", SELECTED, "--vars", now
    )
    return built


def test_each_played_change_shows_in_its_checkout(warehouses):
    """Guards the test itself: every change reached the row it was aimed at."""
    with duckdb.connect() as con:
        for name in ("first_night", "full_refresh"):
            con.execute(f"ATTACH '{warehouses[name]}' AS {name} (READ_ONLY)")
        unchanged = [
            change
            for change, token in warehouses["played"].items()
            if con.execute(
                "SELECT count(*) FROM (SELECT * FROM full_refresh.marts.fct_checkouts WHERE checkout_token = $t "
                "EXCEPT SELECT * FROM first_night.marts.fct_checkouts WHERE checkout_token = $t)",
                {"t": token},
            ).fetchall()[0][0]
            == 0
        ]
    assert unchanged == [], f"changes that did not show: {unchanged}"


def test_an_incremental_build_equals_a_full_refresh(warehouses):
    with duckdb.connect() as con:
        for name in ("incremental", "full_refresh"):
            con.execute(f"ATTACH '{warehouses[name]}' AS {name} (READ_ONLY)")
        rows, only_incremental, only_full = differences(con, "marts.fct_checkouts")
        missed = con.execute(
            "SELECT DISTINCT checkout_token FROM (SELECT * FROM full_refresh.marts.fct_checkouts "
            "EXCEPT ALL SELECT * FROM incremental.marts.fct_checkouts)"
        ).fetchall()
    by_token = {token: change for change, token in warehouses["played"].items()}
    print(f"fct_checkouts: {rows} rows, {only_incremental} only incremental, {only_full} only full refresh")
    assert rows > 0
    assert (only_incremental, only_full) == (0, 0), [by_token.get(t, t) for (t,) in missed]

"""The incremental campaign_interactions equals a full refresh, and so do the campaign marts
built on it. Two earlier states of the table are brought up to date by one incremental run each
and compared, row for row, with a full refresh of the same warehouse:

- the table as the first of two nights of the small world left it (the second night brought a
  new day and whatever the loaders read again);
- a table built from a changed copy of the same warehouse, two days earlier: events and email
  activity missing (they arrive late), other campaigns recorded on some events, Mailchimp
  members unsubscribed who are not and subscribed who are not, no suppressions yet, recipients
  on other customers (merges, splits) or on none, and a recipient the sources do not have at
  all (an erased person). The incremental run must add, rewrite and delete rows to match.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.transform.incremental_support import assert_equal_builds, run_dbt

# Whichever test comes first builds the shared two nights (two demo runs) in its setup.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

INCREMENTAL = "marts.campaign_interactions"
SELECTED = "campaign_interactions campaign_attributed_orders campaign_performance campaign_audience_performance"
COMPARED = (
    INCREMENTAL,
    "marts.campaign_attributed_orders",
    "marts.campaign_performance",
    "marts.campaign_audience_performance",
)
EARLIER = ("first_night", "changed")

# What the changed copy changes before building the earlier table (see the module's docstring).
# The recipients of the Klaviyo unsubscribes without a campaign are left as they are but for the
# email that credits them: one that had not arrived yet, or one that is gone since. Only crediting
# their unsubscribes afresh can bring those up to date.
CHANGES = (
    """CREATE TEMP TABLE withdrawals AS
        SELECT e.id, e.profile_id, EXISTS (
            SELECT 1 FROM raw_klaviyo.events s JOIN raw_klaviyo.metrics m ON s.metric_id = m.id
            WHERE m.name = 'Received Email' AND s.profile_id = e.profile_id
              AND s.datetime <= e.datetime AND s.datetime > e.datetime - INTERVAL 5 DAY) AS is_credited
        FROM raw_klaviyo.events e JOIN raw_klaviyo.metrics m ON e.metric_id = m.id
        WHERE m.name LIKE 'Unsubscribed%' AND coalesce(e.message_id, '') = ''""",
    """DELETE FROM raw_klaviyo.events
        WHERE metric_id IN (SELECT id FROM raw_klaviyo.metrics WHERE name = 'Received Email')
        AND profile_id IN (SELECT profile_id FROM withdrawals WHERE is_credited)""",
    """INSERT INTO raw_klaviyo.events BY NAME
        SELECT * REPLACE ('gone-' || id AS id, 'gone-campaign' AS message_id, datetime - INTERVAL 1 MINUTE AS datetime,
            (SELECT id FROM raw_klaviyo.metrics WHERE name = 'Received Email') AS metric_id)
        FROM raw_klaviyo.events WHERE id IN (SELECT id FROM withdrawals WHERE NOT is_credited)""",
    # Events and activity that had not arrived yet.
    """DELETE FROM raw_klaviyo.events
        WHERE hash(id) % 5 = 0 AND profile_id NOT IN (SELECT profile_id FROM withdrawals)""",
    "DELETE FROM raw_mailchimp.email_activity WHERE hash(activity_id) % 4 = 0",
    # Events recorded at another time, as another metric, on another profile (Klaviyo merges
    # profiles), or with another campaign.
    """UPDATE raw_klaviyo.events SET datetime = datetime - INTERVAL 1 HOUR
        WHERE hash(id) % 13 = 2 AND profile_id NOT IN (SELECT profile_id FROM withdrawals)""",
    """UPDATE raw_klaviyo.events SET metric_id = (SELECT id FROM raw_klaviyo.metrics WHERE name = 'Opened Email')
        WHERE hash(id) % 3 = 0 AND metric_id = (SELECT id FROM raw_klaviyo.metrics WHERE name = 'Clicked Email')
        AND profile_id NOT IN (SELECT profile_id FROM withdrawals)""",
    """UPDATE raw_klaviyo.events SET profile_id = reverse(profile_id)
        WHERE hash(id) % 19 = 4 AND profile_id NOT IN (SELECT profile_id FROM withdrawals)""",
    """UPDATE raw_klaviyo.events SET message_id = 'another-campaign'
        WHERE hash(id) % 7 = 1 AND message_id <> '' AND profile_id NOT IN (SELECT profile_id FROM withdrawals)""",
    # Members who unsubscribed later, and members who had unsubscribed and are back.
    """UPDATE raw_mailchimp.members SET status = CASE status WHEN 'unsubscribed' THEN 'subscribed'
        ELSE 'unsubscribed' END WHERE hash(id) % 9 = 0 OR status = 'unsubscribed' AND hash(id) % 2 = 0""",
    # Tessera had not unsubscribed anyone in Mailchimp yet.
    "DELETE FROM activation.suppressions",
    # Recipients on a customer merged away since, on none, and the blocked on one.
    """UPDATE intermediate.int_identity__records SET customer_id = CASE
        WHEN customer_id IS NULL THEN 'cus_unblocked'
        WHEN hash(record_id) % 7 = 0 THEN customer_id || '_merged_away'
        ELSE NULL END
        WHERE record_type IN ('klaviyo_profile', 'mailchimp_member') AND hash(record_id) % 7 IN (0, 1)
        AND record_id NOT IN (SELECT 'klaviyo_profile:' || profile_id FROM withdrawals)""",
    # A recipient the sources no longer have (an erased person).
    """INSERT INTO raw_klaviyo.events BY NAME
        SELECT * REPLACE ('erased-' || id AS id, 'erased-profile' AS profile_id)
        FROM raw_klaviyo.events WHERE hash(id) % 10 = 3""",
)


def _now(clock: str) -> str:
    return json.dumps({"tessera__now": clock})


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory, small_world_nights) -> dict[str, Path]:
    first, second = small_world_nights
    data = second.data
    scratch = tmp_path_factory.mktemp("campaigns_scratch")
    clock = json.loads((data / "sandbox" / "world.json").read_text())["clock"]
    # The earlier tables: as the first night left it, and built from the changed copy two days before.
    changed = scratch / "changed.duckdb"
    shutil.copy(data / "warehouse.duckdb", changed)
    with duckdb.connect(str(changed)) as con:
        for statement in CHANGES:
            con.execute(statement)
    earlier_clock = (datetime.fromisoformat(clock.replace("Z", "+00:00")) - timedelta(days=2)).isoformat()
    run_dbt(
        changed,
        scratch / "changed",
        "run",
        "--full-refresh",
        "--select",
        "campaign_interactions",
        "--vars",
        _now(earlier_clock),
    )
    found = {"first_night": first.snapshot, "changed": changed}
    # Each brought up to date by one incremental run on the second night's warehouse.
    for name in EARLIER:
        incremental = scratch / f"incremental_{name}.duckdb"
        shutil.copy(data / "warehouse.duckdb", incremental)
        with duckdb.connect(str(incremental)) as con:
            con.execute(f"ATTACH '{found[name]}' AS earlier (READ_ONLY)")
            con.execute(f"CREATE OR REPLACE TABLE {INCREMENTAL} AS SELECT * FROM earlier.{INCREMENTAL}")
        run_dbt(incremental, scratch / f"incremental_{name}", "run", "--select", SELECTED, "--vars", _now(clock))
        compiled = scratch / f"incremental_{name}" / "target" / "run" / "tessera" / "models" / "marts"
        sql = next(compiled.rglob("campaign_interactions.sql")).read_text().lower()
        assert "delete from" in sql, "campaign_interactions' run was incremental (delete+insert)"
        found[f"incremental_{name}"] = incremental
    # Full refresh of the same data.
    full_refresh = scratch / "full_refresh.duckdb"
    shutil.copy(data / "warehouse.duckdb", full_refresh)
    run_dbt(
        full_refresh, scratch / "full_refresh", "run", "--full-refresh", "--select", SELECTED, "--vars", _now(clock)
    )
    found["full_refresh"] = full_refresh
    return found


@pytest.mark.parametrize("earlier", EARLIER)
@pytest.mark.parametrize("relation", COMPARED)
def test_an_incremental_run_equals_a_full_refresh(warehouses, earlier, relation):
    incremental = warehouses[f"incremental_{earlier}"]
    assert_equal_builds(incremental, warehouses["full_refresh"], relation, f" from the {earlier} table")


def test_the_changed_table_needed_every_kind_of_change(warehouses):
    """Guards the test itself: the incremental run had rows to add, to delete, to move to
    another customer, a Klaviyo unsubscribe to credit to an email that arrived late and one
    to credit no more (its email is gone), and Mailchimp unsubscribes to add and drop."""
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{warehouses['changed']}' AS earlier (READ_ONLY)")
        con.execute(f"ATTACH '{warehouses['full_refresh']}' AS full_refresh (READ_ONLY)")
        counts = con.execute(
            f"""
            SELECT
                count(*) FILTER (WHERE e.interaction_id IS NULL) AS added,
                count(*) FILTER (WHERE f.interaction_id IS NULL) AS deleted,
                count(*) FILTER (WHERE e.customer_id IS DISTINCT FROM f.customer_id
                                 AND e.recipient_id = f.recipient_id) AS moved,
                count(*) FILTER (WHERE e.platform = 'klaviyo' AND e.interaction = 'unsubscribe'
                                 AND e.campaign_id IS NULL AND f.is_campaign_inferred) AS credited,
                count(*) FILTER (WHERE e.platform = 'klaviyo' AND e.interaction = 'unsubscribe'
                                 AND e.is_campaign_inferred AND f.campaign_id IS NULL) AS uncredited,
                count(*) FILTER (WHERE coalesce(e.platform, f.platform) = 'mailchimp'
                                 AND coalesce(e.interaction, f.interaction) = 'unsubscribe'
                                 AND (e.interaction_id IS NULL OR f.interaction_id IS NULL)) AS unsubscribes
            FROM earlier.{INCREMENTAL} AS e
            FULL OUTER JOIN full_refresh.{INCREMENTAL} AS f ON e.interaction_id = f.interaction_id
            """
        ).fetchall()[0]
    kinds = ("added", "deleted", "moved", "credited", "uncredited", "mailchimp unsubscribes")
    print(dict(zip(kinds, counts, strict=True)))
    assert all(count > 0 for count in counts)

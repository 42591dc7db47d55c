"""The world generator: deterministic, seed-sensitive, with the traps and ground truth promised."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from sandbox.world.generate import WorldConfig, generate_world
from sandbox.world.schema import SCHEMAS
from sandbox.world.truth import IDENTIFIER_COLUMNS, write_truth


def _tables(world: Path) -> dict[str, object]:
    files = sorted((world / "store").glob("*.parquet")) + sorted((world / "truth").glob("*.parquet"))
    return {f"{f.parent.name}/{f.stem}": pq.read_table(f) for f in files}


@pytest.fixture(scope="module")
def tiny_worlds(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    config = WorldConfig(seed=11, customers=300, days=20, chunk_size=120)
    return {
        "a": generate_world(config, root / "a"),
        "b": generate_world(config, root / "b", workers=2),
        "other_seed": generate_world(WorldConfig(seed=12, customers=300, days=20, chunk_size=120), root / "c"),
    }


def test_same_seed_gives_identical_world(tiny_worlds):
    a, b = _tables(tiny_worlds["a"]), _tables(tiny_worlds["b"])
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), f"{name} differs between two generations with the same seed"
    assert json.loads((tiny_worlds["a"] / "world.json").read_text()) == json.loads(
        (tiny_worlds["b"] / "world.json").read_text()
    )


def test_different_seeds_differ(tiny_worlds):
    a, c = _tables(tiny_worlds["a"]), _tables(tiny_worlds["other_seed"])
    assert not a["store/_persons"].equals(c["store/_persons"])
    assert not a["store/mixpanel_events"].equals(c["store/mixpanel_events"])


_FORKED_FROM_HERE: list[Path] = []  # set while the test below watches for forks of this process


def _note_fork_in_child() -> None:
    if _FORKED_FROM_HERE:
        _FORKED_FROM_HERE[0].touch()


os.register_at_fork(after_in_child=_note_fork_in_child)


def test_workers_are_not_forked_from_the_calling_process(tmp_path):
    # A plain fork copies the caller's locks in whatever state its other threads left them;
    # in a test session with sandbox servers running, one such worker once hung CI for ten
    # minutes. Workers must come from a clean process instead.
    marker = tmp_path / "forked"
    _FORKED_FROM_HERE.append(marker)
    try:
        generate_world(WorldConfig(seed=11, customers=120, days=5, chunk_size=40), tmp_path / "w", workers=2)
    finally:
        _FORKED_FROM_HERE.clear()
    assert not marker.exists(), "a generation worker was forked from the calling process"


def test_every_store_table_has_its_schema(world_template):
    for name, schema in SCHEMAS.items():
        assert pq.read_schema(world_template / "store" / f"{name}.parquet").equals(schema), name


def test_truth_files_follow_the_contract(world_template):
    truth = world_template / "truth"
    assert pq.read_schema(truth / "identities.parquet").names == ["person_id", "source", "id_type", "id_value"]
    assert pq.read_schema(truth / "checkouts.parquet").names == [
        "checkout_id",
        "person_id",
        "started_at",
        "furthest_step",
        "completed_at",
        "cart_value",
        "exit_reason",
    ]
    persons = pq.read_schema(truth / "persons.parquet").names
    for column in ("person_id", "email", "email_consent_status", "erased"):
        assert column in persons


def _q(world: Path, sql: str) -> list[tuple]:
    con = duckdb.connect()
    for f in (world / "store").glob("*.parquet"):
        con.execute(f"CREATE VIEW {f.stem} AS SELECT * FROM read_parquet('{f}')")
    for f in (world / "truth").glob("*.parquet"):
        con.execute(f"CREATE VIEW truth_{f.stem} AS SELECT * FROM read_parquet('{f}')")
    return con.execute(sql).fetchall()


def test_every_exposed_identifier_is_in_truth_at_the_horizon(fresh_world):
    """Every identifier column any API serves, for a row made by a person, is in the truth."""
    meta = json.loads((fresh_world / "world.json").read_text())
    from datetime import datetime

    write_truth(fresh_world, datetime.fromisoformat(meta["horizon"]) + timedelta(days=1))
    for source, id_type, table, column, _ in IDENTIFIER_COLUMNS:
        missing = _q(
            fresh_world,
            f"""
            SELECT count(*) FROM {table} s
            WHERE s._person_id IS NOT NULL AND s.{column} IS NOT NULL AND CAST(s.{column} AS VARCHAR) <> ''
              AND NOT EXISTS (SELECT 1 FROM truth_identities t WHERE t.person_id = s._person_id
                              AND t.source = '{source}' AND t.id_type = '{id_type}'
                              AND t.id_value = CAST(s.{column} AS VARCHAR))""",
        )[0][0]
        assert missing == 0, f"{table}.{column}: {missing} identifiers missing from the truth"


def test_the_world_has_the_traps_a_real_shop_has(world_template):
    w = world_template
    q = lambda sql: _q(w, sql)[0][0]  # noqa: E731
    # a household's shared device: one device id, several people
    assert (
        q(
            "SELECT count(*) FROM (SELECT id_value FROM truth_identities WHERE id_type = 'device_id' "
            "GROUP BY 1 HAVING count(DISTINCT person_id) > 1)"
        )
        > 0
    )
    # the support email typed into many people's phone orders, and junk typed at checkout
    assert (
        q("SELECT count(DISTINCT _person_id) FROM shopify_orders WHERE email = 'support@northwind-outfitters.com'") > 1
    )
    assert q("SELECT count(*) FROM shopify_orders WHERE email IN ('test@test.com', 'n/a')") > 0
    assert (
        q("SELECT count(*) FROM shopify_orders WHERE phone = '0000000000'")
        + q("SELECT count(*) FROM hubspot_contacts WHERE phone = '0000000000'")
        > 0
    )
    # duplicate CRM contacts of one person, with case/whitespace/typo variants
    assert q("SELECT count(*) FROM (SELECT _person_id FROM hubspot_contacts GROUP BY 1 HAVING count(*) > 1)") > 0
    assert q("SELECT count(*) FROM hubspot_contacts WHERE email <> lower(trim(email))") > 0
    # unsubscribed in one platform only
    assert q("SELECT count(*) FROM _persons WHERE withdrawn_platform = 'klaviyo'") > 0
    assert q("SELECT count(*) FROM _persons WHERE withdrawn_platform = 'mailchimp'") > 0
    # late-arriving events
    assert q("SELECT count(*) FROM mixpanel_events WHERE arrived_at > time + INTERVAL 1 DAY") > 0
    # guests who never log in, and people who only exist on Instagram
    assert q("SELECT count(*) FROM _persons WHERE is_guest_only") > 0
    assert q("SELECT count(*) FROM _persons WHERE is_social_only AND instagram_username IS NOT NULL") > 0
    assert q("SELECT count(*) FROM erasure_requests") >= 0  # rare: asserted on a bigger world below


def test_checkout_funnel_has_planted_causes(world_template):
    rows = dict(
        _q(world_template, "SELECT coalesce(exit_reason, 'completed'), count(*) FROM truth_checkouts GROUP BY 1")
    )
    total = sum(rows.values())
    abandoned = total - rows["completed"]
    assert 0.6 <= abandoned / total <= 0.8, rows
    assert 0.35 <= rows["extra_costs"] / abandoned <= 0.65, rows
    assert rows["forced_account"] > 0 and rows["payment"] > 0 and rows["low_intent"] > 0
    # forced-account exits happen only while guest checkout is off
    on = _q(
        world_template,
        "SELECT count(*) FROM _checkouts WHERE exit_reason = 'forced_account' AND guest_checkout_enabled",
    )
    assert on[0][0] == 0


def test_segment_spec_event_names(world_template):
    names = {r[0] for r in _q(world_template, "SELECT DISTINCT event FROM mixpanel_events")}
    assert {
        "Product Viewed",
        "Product Added",
        "Cart Viewed",
        "Checkout Started",
        "Checkout Step Viewed",
        "Checkout Step Completed",
        "Payment Info Entered",
        "Order Completed",
    } <= names


def test_truth_follows_the_clock(fresh_world):
    meta = json.loads((fresh_world / "world.json").read_text())
    from datetime import datetime

    before = _q(fresh_world, "SELECT count(*) FROM truth_checkouts")[0][0]
    later = datetime.fromisoformat(meta["clock"]) + timedelta(days=3)
    write_truth(fresh_world, later)
    after = _q(fresh_world, "SELECT count(*), max(started_at) FROM truth_checkouts")[0]
    assert after[0] > before
    assert after[1] <= later


def test_erasure_requests_and_consent_states_on_a_larger_world(tmp_path):
    world = generate_world(WorldConfig(seed=3, customers=3000, days=60), tmp_path / "w", workers=2)
    assert _q(world, "SELECT count(*) FROM erasure_requests")[0][0] > 0
    states = {r[0] for r in _q(world, "SELECT DISTINCT email_consent_status FROM truth_persons")}
    assert states == {"subscribed", "unsubscribed", "never_subscribed"}
    assert _q(world, "SELECT count(*) FROM truth_persons WHERE is_bounced")[0][0] > 0

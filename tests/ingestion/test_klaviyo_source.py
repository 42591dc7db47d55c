"""The Klaviyo dlt source against the sandbox: complete, incremental, no duplicates, repaired
after faults, list removals visible, clear failures."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
import requests

from ingestion.common.http import RetryPolicy
from ingestion.klaviyo import klaviyo_source
from ingestion.klaviyo.settings import (
    EVENTS_LOOKBACK_SECONDS,
    EVENTS_PAGE_SIZE,
    LIST_MEMBER_IDS_PAGE_SIZE,
    LIST_MEMBERS_PAGE_SIZE,
    LOOKBACK_SECONDS,
    PROFILES_PAGE_SIZE,
    REVISION,
)
from ingestion.pipelines import load
from tests.ingestion.support import (
    FAULTS,
    assert_failing_run_keeps_cursors,
    assert_load_fails_naming,
    assert_quarantined,
    columns,
    counters,
    credentials,
    cursor_values,
    extracted,
    local_pipeline,
    requests_made,
    row_counts,
    variant_columns,
    warehouse_rows,
    world_meta,
)

FAST = RetryPolicy(max_attempts=8, backoff_base=0.01, backoff_max=0.1, timeout=30)
TABLES = ("profiles", "lists", "list_memberships", "metrics", "campaigns", "events")
KEYS = {table: "id" for table in TABLES} | {"list_memberships": "(list_id, profile_id)"}
# resource -> (cursor, lookback seconds)
CURSORS = {
    "profiles": ("updated", LOOKBACK_SECONDS),
    "campaigns": ("updated_at", LOOKBACK_SECONDS),
    "events": ("datetime", EVENTS_LOOKBACK_SECONDS),
}
# A profile's `updated`: the latest of these that happened by the clock, in whole seconds.
PROFILE_CHANGES = ("subscribed_at", "unsubscribed_at", "bounced_at", "spam_complaint_at")


# -- the world's truth -----------------------------------------------------------------------------


def _store(world: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for table in ("profiles", "lists", "list_members", "metrics", "campaigns", "events"):
        path = world / "store" / f"klaviyo_{table}.parquet"
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{path}')")
    con.execute(f"SET VARIABLE clock = '{world_meta(world)['clock']}'::TIMESTAMPTZ")
    latest = ", ".join(f"CASE WHEN {c} <= getvariable('clock') THEN {c} END" for c in PROFILE_CHANGES)
    con.execute(
        "CREATE VIEW visible_profiles AS SELECT *,"
        f" date_trunc('second', greatest(created_at, {latest})) AS updated"
        " FROM profiles WHERE created_at <= getvariable('clock')"
    )
    return con


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> int:
    return con.execute(sql, params or []).fetchall()[0][0]


def _visible(world: Path) -> dict[str, int]:
    """Rows each table must hold: what the API shows at the world's clock."""
    con = _store(world)
    clock = "getvariable('clock')"
    return {
        "profiles": _one(con, "SELECT count(*) FROM visible_profiles"),
        "lists": _one(con, f"SELECT count(*) FROM lists WHERE created_at <= {clock}"),
        "list_memberships": _one(
            con,
            "SELECT count(*) FROM list_members m JOIN visible_profiles p USING (profile_id)"
            f" WHERE m.joined_at <= {clock}",
        ),
        "metrics": _one(con, f"SELECT count(*) FROM metrics WHERE created_at <= {clock}"),
        "campaigns": _one(con, f"SELECT count(*) FROM campaigns WHERE send_time <= {clock}"),
        "events": _one(con, f"SELECT count(*) FROM events WHERE datetime <= {clock}"),
    }


def _recent_joins(world: Path) -> int:
    """Visible members who joined within the lookback of the newest join: what a run after the
    first reads with join times (the others come from the table)."""
    con = _store(world)
    visible = (
        "SELECT date_trunc('second', m.joined_at) AS joined"
        " FROM list_members m JOIN visible_profiles p USING (profile_id) WHERE m.joined_at <= getvariable('clock')"
    )
    return _one(
        con,
        f"WITH v AS ({visible}) SELECT count(*) FROM v WHERE joined >= (SELECT max(joined) FROM v) - to_seconds(?)",
        [LOOKBACK_SECONDS],
    )


def _since(cursor: datetime, lookback: int) -> datetime:
    """The lower bound a run filters on: the cursor minus the lookback, in whole seconds."""
    return (cursor - timedelta(seconds=lookback)).astimezone(UTC).replace(microsecond=0)


def _window(world: Path, cursors: dict[str, datetime]) -> dict[str, int]:
    """Visible records an incremental run reads: cursor attribute after the cursor minus the lookback."""
    con = _store(world)
    since = {name: _since(cursors[name], CURSORS[name][1]) for name in CURSORS}
    return {
        "profiles": _one(con, "SELECT count(*) FROM visible_profiles WHERE updated > ?", [since["profiles"]]),
        "campaigns": _one(
            con,
            "SELECT count(*) FROM campaigns WHERE send_time <= getvariable('clock')"
            " AND date_trunc('second', updated_at) > ?",
            [since["campaigns"]],
        ),
        "events": _one(
            con,
            "SELECT count(*) FROM events WHERE datetime <= getvariable('clock') AND date_trunc('second', datetime) > ?",
            [since["events"]],
        ),
    }


# -- the pipeline ----------------------------------------------------------------------------------


def _api_key(world: Path) -> str:
    return credentials(world, "klaviyo")["api_key"]


def _source(sandbox, **kwargs):
    kwargs.setdefault("retry_policy", FAST)
    kwargs.setdefault("api_key", _api_key(sandbox.world))
    return klaviyo_source(base_url=sandbox.vendor_url("klaviyo"), **kwargs)


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return local_pipeline("klaviyo", tmp_path)


def _counts(tmp_path: Path) -> dict[str, tuple[int, int]]:
    """(rows, distinct primary keys) per table; a table no run has written yet counts (0, 0)."""
    tables = {
        r[0]
        for r in warehouse_rows(tmp_path, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw_klaviyo'")
    }
    return {
        table: row_counts(tmp_path, f"raw_klaviyo.{table}", KEYS[table]) if table in tables else (0, 0)
        for table in TABLES
    }


def _assert_complete(tmp_path: Path, world: Path) -> None:
    counts, visible = _counts(tmp_path), _visible(world)
    for table in TABLES:
        assert counts[table] == (visible[table], visible[table]), table


def _cursors(pipeline: dlt.Pipeline) -> dict[str, datetime]:
    return cursor_values(pipeline, "klaviyo", {name: cursor for name, (cursor, _) in CURSORS.items()})


def _requests(sandbox) -> int:
    return requests_made(sandbox, "klaviyo")


# -- tests -----------------------------------------------------------------------------------------


def test_complete_load_with_consent_columns_and_campaign_ids(sandbox, tmp_path):
    load(_source(sandbox), _pipeline(tmp_path))

    _assert_complete(tmp_path, sandbox.world)
    con = _store(sandbox.world)
    consent = dict(
        warehouse_rows(tmp_path, "SELECT email_marketing_consent, count(*) FROM raw_klaviyo.profiles GROUP BY 1")
    )
    clock = "getvariable('clock')"
    assert consent.get("UNSUBSCRIBED", 0) == _one(
        con, f"SELECT count(*) FROM visible_profiles WHERE unsubscribed_at <= {clock}"
    )
    assert consent.get("SUBSCRIBED", 0) == _one(
        con,
        f"SELECT count(*) FROM visible_profiles WHERE subscribed_at <= {clock}"
        f" AND (unsubscribed_at IS NULL OR unsubscribed_at > {clock})",
    )
    bounced = warehouse_rows(
        tmp_path, "SELECT count(*) FROM raw_klaviyo.profiles WHERE email_suppression_reasons LIKE '%HARD_BOUNCE%'"
    )
    assert bounced[0][0] == _one(con, f"SELECT count(*) FROM visible_profiles WHERE bounced_at <= {clock}")
    assert warehouse_rows(
        tmp_path,
        "SELECT count(*) FROM raw_klaviyo.profiles WHERE can_receive_email_marketing"
        " AND (email_marketing_consent <> 'SUBSCRIBED' OR email_suppression_reasons IS NOT NULL)",
    ) == [(0,)]
    tiers = warehouse_rows(tmp_path, "SELECT count(properties ->> 'membership_tier') FROM raw_klaviyo.profiles")[0][0]
    assert tiers == _one(con, "SELECT count(membership_tier) FROM visible_profiles")

    # each event keeps its metric, its profile, and the campaign (`$message`) it came from
    loaded = {
        r[0]: r[1:]
        for r in warehouse_rows(tmp_path, "SELECT id, metric_id, profile_id, message_id FROM raw_klaviyo.events")
    }
    store = con.execute(f"SELECT event_id, metric_id, profile_id, campaign_id FROM events WHERE datetime <= {clock}")
    assert {r[0]: r[1:] for r in store.fetchall()} == loaded
    orphans = warehouse_rows(
        tmp_path,
        "SELECT count(*) FROM raw_klaviyo.events e LEFT JOIN raw_klaviyo.campaigns c ON c.id = e.message_id"
        " WHERE e.message_id IS NOT NULL AND c.id IS NULL",
    )
    assert orphans == [(0,)]


def test_second_run_reads_only_the_lookback_window(sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox), pipeline)
    first_run = _requests(sandbox)
    cursors = _cursors(pipeline)
    sandbox.control("POST", "counters/reset")

    load(_source(sandbox), pipeline)

    _assert_complete(tmp_path, sandbox.world)
    window = _window(sandbox.world, cursors)
    rows_read = extracted(pipeline)
    for name, expected in window.items():
        assert rows_read.get(name, 0) == expected, name
    visible = _visible(sandbox.world)
    assert window["profiles"] < visible["profiles"] and window["events"] < visible["events"]
    # lists and metrics (a page each) and every list's members are read whole, as ids, with the
    # join times of the lookback's joins; the rest one window
    expected_requests = (
        1  # lists
        + 1  # metrics
        + 1  # the lists again, for their members
        + math.ceil(visible["list_memberships"] / LIST_MEMBER_IDS_PAGE_SIZE)
        + max(1, math.ceil(_recent_joins(sandbox.world) / LIST_MEMBERS_PAGE_SIZE))
        + 1  # campaigns
        + max(1, math.ceil(window["profiles"] / PROFILES_PAGE_SIZE))
        + max(1, math.ceil(window["events"] / EVENTS_PAGE_SIZE))
    )
    assert _requests(sandbox) == expected_requests < first_run
    assert _cursors(pipeline) == cursors


def test_next_day_loads_just_the_new_day(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(private_sandbox), pipeline)
    before = _counts(tmp_path)
    cursors = _cursors(pipeline)

    private_sandbox.control("POST", "clock/advance", json={"days": 1})
    load(_source(private_sandbox), pipeline)

    _assert_complete(tmp_path, private_sandbox.world)
    after = _counts(tmp_path)
    assert after["profiles"][0] > before["profiles"][0]  # a quiet day may bring no email events
    rows_read = extracted(pipeline)
    for name, expected in _window(private_sandbox.world, cursors).items():
        assert rows_read.get(name, 0) == expected, name
    assert _cursors(pipeline)["profiles"] > cursors["profiles"]
    assert all(_cursors(pipeline)[name] >= cursor for name, cursor in cursors.items())


def test_faults_are_survived_quarantined_and_repaired(sandbox, tmp_path):
    sandbox.set_faults(**FAULTS, rate_malformed=0.02, seed=11)
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox), pipeline)

    assert {"429", "500", "duplicate", "malformed"} <= set(counters(sandbox)["faults"]["klaviyo"])
    visible = _visible(sandbox.world)
    counts = _counts(tmp_path)
    for table in TABLES:
        rows, distinct = counts[table]
        assert rows == distinct <= visible[table], table
    # the good rows are right: retyped `timestamp` coerced back, no variant column
    assert columns(tmp_path, "raw_klaviyo.events")["timestamp"] == "BIGINT"
    assert not variant_columns(tmp_path, "raw_klaviyo", ["events"])
    assert warehouse_rows(
        tmp_path, "SELECT count(*) FROM raw_klaviyo.events WHERE timestamp <> epoch(datetime)::BIGINT"
    ) == [(0,)]
    quarantined = assert_quarantined(tmp_path, "raw_klaviyo")
    assert {"profiles", "events"} <= {resource for resource, _, _ in quarantined}
    # a record that kept its id was fetched again by id in the same run and arrived clean
    refetched = warehouse_rows(
        tmp_path,
        "SELECT count(*) FROM raw_klaviyo.quarantine q WHERE q.resource IN ('profiles', 'events')"
        " AND q.record::JSON ->> 'id' IS NOT NULL AND q.record::JSON ->> 'id' NOT IN"
        " (SELECT id FROM raw_klaviyo.profiles UNION ALL SELECT id FROM raw_klaviyo.events)",
    )
    assert refetched == [(0,)]
    quarantine_columns = columns(tmp_path, "raw_klaviyo.quarantine").keys()
    assert quarantine_columns == {"resource", "reason", "record", "quarantined_at", "_dlt_load_id", "_dlt_id"}

    sandbox.control("DELETE", "faults")
    load(_source(sandbox), pipeline)
    _assert_complete(tmp_path, sandbox.world)


def test_a_failing_run_keeps_the_cursor_and_the_next_run_resumes(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    cursors = assert_failing_run_keeps_cursors(private_sandbox, pipeline, partial(_source, private_sandbox), _cursors)

    private_sandbox.control("DELETE", "faults")
    load(_source(private_sandbox), pipeline)
    _assert_complete(tmp_path, private_sandbox.world)
    assert _cursors(pipeline)["profiles"] > cursors["profiles"]


def test_list_removals_and_emptied_lists_leave_the_table(private_sandbox, tmp_path):
    sb = private_sandbox
    url = sb.vendor_url("klaviyo")
    headers = {"Authorization": f"Klaviyo-API-Key {_api_key(sb.world)}", "revision": REVISION}

    def call(method: str, path: str, **kwargs) -> requests.Response:
        response = requests.request(method, f"{url}/api/{path}", headers=headers, timeout=30, **kwargs)
        response.raise_for_status()
        return response

    body = {"data": {"type": "list", "attributes": {"name": "Abandoned checkout (24h)"}}}
    audience = call("POST", "lists", json=body).json()["data"]["id"]
    newsletter = world_meta(sb.world)["ids"]["klaviyo_list_id"]
    members = call("GET", f"lists/{newsletter}/relationships/profiles", params={"page[size]": 3}).json()["data"]
    call("POST", f"lists/{audience}/relationships/profiles", json={"data": members[:2]})

    pipeline = _pipeline(tmp_path)
    load(_source(sb), pipeline)

    def joined(list_id: str) -> dict[str, datetime]:
        sql = f"SELECT profile_id, joined_group_at FROM raw_klaviyo.list_memberships WHERE list_id = '{list_id}'"
        return dict(warehouse_rows(tmp_path, sql))

    def members_of(list_id: str) -> set[str]:
        return set(joined(list_id))

    def as_served(list_id: str) -> dict[str, datetime]:
        params = {"fields[profile]": "joined_group_at", "page[size]": 100}
        served, url = {}, f"lists/{list_id}/profiles"
        while url:
            body = call("GET", url, params=params).json()
            served |= {p["id"]: datetime.fromisoformat(p["attributes"]["joined_group_at"]) for p in body["data"]}
            url, params = (body["links"].get("next") or "").split("/api/", 1)[-1], None
        return served

    assert members_of(audience) == {m["id"] for m in members[:2]}
    before = joined(newsletter)
    assert len(before) == _visible(sb.world)["list_memberships"]

    call("DELETE", f"lists/{audience}/relationships/profiles", json={"data": members[:2]})
    call("DELETE", f"lists/{newsletter}/relationships/profiles", json={"data": members[2:3]})
    load(_source(sb), pipeline)

    assert members_of(audience) == set()
    # Read as ids this time: the members kept their join times, from the table.
    assert joined(newsletter) == {k: v for k, v in before.items() if k != members[2]["id"]}

    # Members back in a list, or new in one, come with the join time Klaviyo serves; a member
    # whose row the table lost (its join time is nowhere but in Klaviyo) makes the run read
    # that list whole.
    call("POST", f"lists/{newsletter}/relationships/profiles", json={"data": members[2:3]})
    call("POST", f"lists/{audience}/relationships/profiles", json={"data": members[:1]})
    lost = next(k for k in before if k not in {m["id"] for m in members})
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("DELETE FROM raw_klaviyo.list_memberships WHERE profile_id = ?", [lost])
    load(_source(sb), pipeline)
    assert joined(newsletter) == as_served(newsletter)
    assert joined(audience) == as_served(audience) and set(joined(audience)) == {members[0]["id"]}
    assert warehouse_rows(tmp_path, "SELECT count(*) FROM raw_klaviyo.list_memberships WHERE list_emptied") == [(0,)]
    assert {r[0] for r in warehouse_rows(tmp_path, "SELECT id FROM raw_klaviyo.lists")} == {newsletter, audience}


def _membership_deletes(pipeline: dlt.Pipeline) -> list[str]:
    """The delete statements of every list-membership merge the pipeline has run."""
    jobs = Path(pipeline.pipelines_dir, pipeline.pipeline_name, "load", "loaded").glob(
        "*/completed_jobs/list_memberships.*.sql"
    )
    return [line for job in sorted(jobs) for line in job.read_text().splitlines() if line.startswith("DELETE")]


def test_list_memberships_merge_on_the_list_alone_also_in_an_older_warehouse(sandbox, tmp_path):
    # With a primary key beside the merge key, dlt's delete matched `key OR list_id`, which DuckDB
    # ran as a join of every old member of a list with every new one: at 460,000 members it
    # filled the disk. A warehouse whose stored schema still has that key must lose it.
    older = _source(sandbox)  # the resource as an earlier version declared it
    older.list_memberships.apply_hints(primary_key=("list_id", "profile_id"))
    load(older, _pipeline(tmp_path))

    pipeline = _pipeline(tmp_path)
    pipeline.drop()  # as dagster-dlt does before each run: the schema comes back from the warehouse
    load(_source(sandbox), pipeline)

    deletes = _membership_deletes(pipeline)
    assert deletes and all(" OR " not in d and "profile_id" not in d for d in deletes), deletes
    rows, keys = warehouse_rows(
        tmp_path, "SELECT count(*), count(DISTINCT (list_id, profile_id)) FROM raw_klaviyo.list_memberships"
    )[0]
    assert rows == keys == _visible(sandbox.world)["list_memberships"]


def test_a_wrong_key_fails_naming_the_setting_without_the_key(sandbox, tmp_path):
    source = _source(sandbox, api_key="pk_wrong_secret")
    failure = assert_load_fails_naming(
        source, _pipeline(tmp_path), "SOURCES__KLAVIYO__API_KEY", secret="pk_wrong_secret"
    )
    assert "401" in str(failure)


def test_a_wrong_base_url_or_revision_fails_naming_the_setting(sandbox, tmp_path):
    source = klaviyo_source(base_url=f"{sandbox.url}/nothing-here", api_key=_api_key(sandbox.world), retry_policy=FAST)
    assert_load_fails_naming(source, _pipeline(tmp_path / "a"), "SOURCES__KLAVIYO__BASE_URL")
    assert_load_fails_naming(
        _source(sandbox, revision="latest"), _pipeline(tmp_path / "b"), "SOURCES__KLAVIYO__REVISION"
    )


def test_missing_key_names_the_setting(monkeypatch, tmp_path):
    monkeypatch.delenv("SOURCES__KLAVIYO__API_KEY", raising=False)
    with pytest.raises(Exception, match="api_key"):
        dlt.pipeline(pipeline_name="klaviyo_missing_key", destination="duckdb", pipelines_dir=str(tmp_path)).extract(
            klaviyo_source()
        )

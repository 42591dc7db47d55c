"""The Mailchimp dlt source against the sandbox: complete, incremental, no duplicates, repaired, clear failures."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import dlt
import pytest

from ingestion.common.http import RetryPolicy
from ingestion.mailchimp import mailchimp_source
from ingestion.mailchimp.settings import ENGAGEMENT_WINDOW_DAYS, LOOKBACK_SECONDS
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
    store_count,
    variant_columns,
    warehouse_rows,
)

FAST = RetryPolicy(max_attempts=6, backoff_base=0.01, backoff_max=0.1, timeout=30)
# table -> its primary key, as a SQL expression
KEYS = {"lists": "id", "members": "(list_id, id)", "campaigns": "id", "email_activity": "activity_id"}
# table -> the cursor dlt keeps for it
CURSORS = {"members": "last_changed", "campaigns": "send_time", "email_activity": "timestamp"}


def _key(world: Path) -> str:
    return credentials(world, "mailchimp")["api_key"]


# table -> what the API shows at the world clock, as a count over the store
WORLD = {
    "lists": "SELECT count(*) FROM '{store}/mailchimp_lists.parquet' WHERE created_at <= $clock",
    "members": "SELECT count(*) FROM '{store}/mailchimp_members.parquet' WHERE created_at <= $clock",
    "campaigns": "SELECT count(*) FROM '{store}/mailchimp_campaigns.parquet' WHERE send_time <= $clock",
    # Opens, clicks and bounces of sent campaigns ("sent" rows are the recipients themselves).
    "email_activity": "SELECT count(*) FROM '{store}/mailchimp_activity.parquet' a"
    " JOIN '{store}/mailchimp_campaigns.parquet' c USING (campaign_id)"
    " WHERE a.action IN ('open', 'click', 'bounce') AND a.timestamp <= $clock AND c.send_time <= $clock",
    "members__tags": "SELECT coalesce(sum(json_array_length(tags)), 0)::BIGINT"
    " FROM '{store}/mailchimp_members.parquet' WHERE created_at <= $clock",
}


def _world(sandbox) -> dict[str, int]:
    """What the API shows at the world clock, per table, straight from the store."""
    return {table: store_count(sandbox.world, sql) for table, sql in WORLD.items()}


def _source(sandbox, **kwargs):
    kwargs.setdefault("retry_policy", FAST)
    return mailchimp_source(base_url=sandbox.vendor_url("mailchimp"), api_key=_key(sandbox.world), **kwargs)


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return local_pipeline("mailchimp", tmp_path)


def _counts(tmp_path: Path, table: str) -> tuple[int, int]:
    return row_counts(tmp_path, f"raw_mailchimp.{table}", KEYS[table])


def _assert_complete(tmp_path: Path, sandbox) -> None:
    world = _world(sandbox)
    for table in KEYS:
        rows, distinct = _counts(tmp_path, table)
        assert rows == distinct == world[table], table
    assert warehouse_rows(tmp_path, "SELECT count(*) FROM raw_mailchimp.members__tags")[0][0] == world["members__tags"]


def _cursors(pipeline: dlt.Pipeline) -> dict[str, str]:
    return cursor_values(pipeline, "mailchimp", CURSORS)


def _since(cursor: str, seconds: float) -> datetime:
    return datetime.fromisoformat(cursor) - timedelta(seconds=seconds)


def _requests(sandbox) -> int:
    return requests_made(sandbox, "mailchimp")


def test_complete_load_matches_the_world(sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox, page_size=25), pipeline)

    _assert_complete(tmp_path, sandbox)
    loaded = columns(tmp_path, "raw_mailchimp.members").keys()
    assert {
        "merge_fields__fname",
        "merge_fields__lname",
        "merge_fields__phone",
        "merge_fields__address__city",
    } <= loaded
    assert {"status", "timestamp_opt", "last_changed", "unique_email_id", "email_address"} <= loaded
    tables = {
        r[0]
        for r in warehouse_rows(tmp_path, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw_mailchimp'")
    }
    assert "quarantine" not in tables
    assert all(isinstance(v, str) and v for v in _cursors(pipeline).values())
    key = _key(sandbox.world).encode()
    assert not [f for f in tmp_path.rglob("*") if f.is_file() and key in f.read_bytes()], "the API key was stored"


def test_second_run_reads_only_the_lookback_window(sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    page = 10
    load(_source(sandbox, page_size=page), pipeline)
    full_reads = _requests(sandbox)
    cursors = _cursors(pipeline)
    sandbox.control("POST", "counters/reset")

    load(_source(sandbox, page_size=page), pipeline)

    _assert_complete(tmp_path, sandbox)
    assert _cursors(pipeline) == cursors
    members_since = _since(cursors["members"], LOOKBACK_SECONDS)
    activity_since = _since(cursors["email_activity"], LOOKBACK_SECONDS)
    in_window = {
        "members": warehouse_rows(
            tmp_path, "SELECT count(*) FROM raw_mailchimp.members WHERE last_changed >= ?", [members_since]
        )[0][0],
        "campaigns": warehouse_rows(
            tmp_path,
            "SELECT count(*) FROM raw_mailchimp.campaigns WHERE send_time >= ?",
            [_since(cursors["campaigns"], ENGAGEMENT_WINDOW_DAYS * 86400)],
        )[0][0],
        "email_activity": warehouse_rows(
            tmp_path, "SELECT count(*) FROM raw_mailchimp.email_activity WHERE timestamp >= ?", [activity_since]
        )[0][0],
    }
    rows_read = extracted(pipeline)
    for table, expected in in_window.items():
        assert rows_read.get(table, 0) == expected, table
    assert in_window["members"] < _world(sandbox)["members"]

    # Request by request: the audiences, their ids, the members changed within the lookback
    # (plus one archived page), the campaigns of the engagement window and one listing of them,
    # and each such campaign's report since the lookback (one page per `page` active recipients).
    recent_campaigns = warehouse_rows(
        tmp_path,
        "SELECT id FROM raw_mailchimp.campaigns WHERE send_time >= ?",
        [activity_since - timedelta(days=ENGAGEMENT_WINDOW_DAYS)],
    )
    report_pages = 0
    for (campaign_id,) in recent_campaigns:
        active = warehouse_rows(
            tmp_path,
            "SELECT count(DISTINCT email_id) FROM raw_mailchimp.email_activity"
            " WHERE campaign_id = ? AND timestamp >= ?",
            [campaign_id, activity_since],
        )[0][0]
        report_pages += max(1, math.ceil(active / page))
    pages = 1 + 1 + max(1, math.ceil(in_window["members"] / page)) + 1
    pages += max(1, math.ceil(in_window["campaigns"] / page)) + 1 + report_pages
    assert _requests(sandbox) == pages < full_reads


def test_next_day_loads_just_the_new_day(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(private_sandbox), pipeline)
    before = {t: _counts(tmp_path, t)[0] for t in KEYS}
    cursors = _cursors(pipeline)

    private_sandbox.control("POST", "clock/advance", json={"days": 1})
    load(_source(private_sandbox), pipeline)

    _assert_complete(tmp_path, private_sandbox)
    assert _counts(tmp_path, "members")[0] > before["members"]
    assert _counts(tmp_path, "email_activity")[0] >= before["email_activity"]
    rows_read = extracted(pipeline)
    for table, column, lookback in (
        ("members", "last_changed", LOOKBACK_SECONDS),
        ("email_activity", "timestamp", LOOKBACK_SECONDS),
        ("campaigns", "send_time", ENGAGEMENT_WINDOW_DAYS * 86400),
    ):
        since = _since(cursors[table], lookback)
        expected = warehouse_rows(tmp_path, f"SELECT count(*) FROM raw_mailchimp.{table} WHERE {column} >= ?", [since])
        assert rows_read.get(table, 0) == expected[0][0], table
    assert rows_read["members"] < _counts(tmp_path, "members")[0]
    assert all(_cursors(pipeline)[t] >= c for t, c in cursors.items())


def test_faults_are_survived_quarantined_and_repaired(sandbox, tmp_path):
    sandbox.set_faults(**FAULTS, rate_malformed=0.03, seed=2)
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox, page_size=20), pipeline)

    faults = counters(sandbox)["faults"]["mailchimp"]
    assert faults.get("duplicate") and faults.get("malformed") and faults.get("429") and faults.get("500")
    world = _world(sandbox)
    for table in KEYS:
        rows, distinct = _counts(tmp_path, table)
        assert rows == distinct <= world[table], table
    quarantined = assert_quarantined(tmp_path, "raw_mailchimp")
    # Every corrupted record is quarantined once (the id listings behind members and activity
    # are corrupted too, and only make a run read more, so the sandbox counts a few more).
    assert len(quarantined) <= faults["malformed"]
    resources = {resource for resource, _, _ in quarantined}
    assert "members" in resources and resources <= {"members", "campaigns", "email_activity"}
    assert not variant_columns(tmp_path, "raw_mailchimp", KEYS), "a retyped number forked a variant column"
    types = columns(tmp_path, "raw_mailchimp.members")
    assert types["web_id"] == "BIGINT" and types["last_changed"] == "TIMESTAMP WITH TIME ZONE"
    # Good rows are intact, and every member was served intact or quarantined.
    assert (
        warehouse_rows(tmp_path, "SELECT count(*) FROM raw_mailchimp.members WHERE id <> md5(lower(email_address))")[0][
            0
        ]
        == 0
    )
    loaded = {r[0] for r in warehouse_rows(tmp_path, "SELECT id FROM raw_mailchimp.members")}
    broken = {
        hashlib.md5(json.loads(record)["email_address"].lower().encode()).hexdigest()
        for resource, _, record in quarantined
        if resource == "members"
    }
    assert broken and len(loaded | broken) == world["members"]

    sandbox.control("DELETE", "faults")
    load(_source(sandbox, page_size=20), pipeline)

    _assert_complete(tmp_path, sandbox)
    resources = pipeline.state["sources"]["mailchimp"]["resources"]
    assert all(not resources[t].get("repairs") for t in CURSORS), "every quarantined record was read again"


def test_a_failing_run_keeps_the_cursor_and_the_next_run_resumes(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    cursors = assert_failing_run_keeps_cursors(private_sandbox, pipeline, partial(_source, private_sandbox), _cursors)

    private_sandbox.control("DELETE", "faults")
    load(_source(private_sandbox), pipeline)
    _assert_complete(tmp_path, private_sandbox)
    assert _cursors(pipeline)["members"] > cursors["members"]


def test_a_wrong_key_fails_at_once_naming_the_setting(sandbox, tmp_path):
    source = mailchimp_source(
        base_url=sandbox.vendor_url("mailchimp"), api_key="0123456789abcdef-us21", retry_policy=FAST
    )
    failure = assert_load_fails_naming(
        source, _pipeline(tmp_path), "SOURCES__MAILCHIMP__API_KEY", secret="0123456789abcdef"
    )
    assert "401" in str(failure)
    assert _requests(sandbox) == 1


def test_a_wrong_base_url_fails_at_once_naming_the_setting(sandbox, tmp_path):
    key = _key(sandbox.world)
    for url in (f"{sandbox.url}/nothing-here", "http://127.0.0.1:9"):
        source = mailchimp_source(base_url=url, api_key=key, retry_policy=FAST)
        assert_load_fails_naming(source, _pipeline(tmp_path), "SOURCES__MAILCHIMP__BASE_URL", secret=key)


def test_a_missing_key_names_the_setting(monkeypatch):
    monkeypatch.delenv("SOURCES__MAILCHIMP__API_KEY", raising=False)
    with pytest.raises(Exception, match="SOURCES__MAILCHIMP__API_KEY"):
        mailchimp_source()

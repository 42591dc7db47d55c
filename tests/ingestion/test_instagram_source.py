"""The Instagram dlt source against the sandbox: complete, incremental, no duplicates, clear failures."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import dlt
import pytest

from ingestion.common.http import RetryPolicy
from ingestion.common.pacing import UsagePercentPacer
from ingestion.instagram import instagram_source
from ingestion.instagram.helpers import GraphSession
from ingestion.instagram.settings import (
    COMMENT_LOOKBACK_SECONDS,
    COMMENT_WINDOW_DAYS,
    LOOKBACK_SECONDS,
    MENTION_LOOKBACK_SECONDS,
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
    store_count,
    variant_columns,
    warehouse_rows,
)

FAST = RetryPolicy(max_attempts=6, backoff_base=0.01, backoff_max=0.1, timeout=30)
STORES = {"media": "instagram_media", "comments": "instagram_comments", "mentions": "instagram_mentions"}
LOOKBACKS = {"media": LOOKBACK_SECONDS, "comments": COMMENT_LOOKBACK_SECONDS, "mentions": MENTION_LOOKBACK_SECONDS}


def _credentials(world: Path) -> dict[str, str]:
    return credentials(world, "instagram")


def _visible(world: Path, table: str) -> int:
    sql = f"SELECT count(*) FROM '{{store}}/{STORES[table]}.parquet' WHERE timestamp <= $clock::TIMESTAMPTZ"
    if table == "comments":  # comments on media the brand has published by the clock
        sql += (
            " AND media_id IN (SELECT media_id FROM '{store}/instagram_media.parquet'"
            " WHERE timestamp <= $clock::TIMESTAMPTZ)"
        )
    return store_count(world, sql)


def _since(world: Path, table: str, since: datetime) -> int:
    """Visible records of `table` at or after `since` (Graph timestamps have whole seconds)."""
    sql = (
        f"SELECT count(*) FROM '{{store}}/{STORES[table]}.parquet' WHERE timestamp <= $clock::TIMESTAMPTZ"
        " AND date_trunc('second', timestamp) >= $since"
    )
    return store_count(world, sql, {"since": since})


def _source(sandbox, **kwargs):
    issued = _credentials(sandbox.world)
    kwargs.setdefault("retry_policy", FAST)
    kwargs.setdefault("access_token", issued["access_token"])
    kwargs.setdefault("ig_user_id", issued["ig_user_id"])
    return instagram_source(base_url=sandbox.vendor_url("instagram"), **kwargs)


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return local_pipeline("instagram", tmp_path)


def _counts(tmp_path: Path, table: str) -> tuple[int, int]:
    return row_counts(tmp_path, f"raw_instagram.{table}")


def _assert_complete(tmp_path: Path, world: Path) -> None:
    for table in STORES:
        rows, distinct = _counts(tmp_path, table)
        assert rows == distinct == _visible(world, table), table


def _cursors(pipeline: dlt.Pipeline) -> dict[str, datetime]:
    return cursor_values(pipeline, "instagram", dict.fromkeys(STORES, "timestamp"))


def _requests(sandbox) -> int:
    return requests_made(sandbox, "instagram")


def test_complete_load_every_record_once(sandbox, tmp_path):
    load(_source(sandbox, page_size=10), _pipeline(tmp_path))
    _assert_complete(tmp_path, sandbox.world)
    [(orphans,)] = warehouse_rows(
        tmp_path,
        "SELECT count(*) FROM raw_instagram.comments c LEFT JOIN raw_instagram.media m ON m.id = c.media_id"
        " WHERE m.id IS NULL",
    )
    assert {"media_id", "from__id", "from__username", "text", "like_count"} <= columns(
        tmp_path, "raw_instagram.comments"
    ).keys()
    assert orphans == 0


def test_second_run_reads_only_the_lookback_window(sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox), pipeline)
    cursors = _cursors(pipeline)
    first_run = _requests(sandbox)
    sandbox.control("POST", "counters/reset")

    load(_source(sandbox), pipeline)

    _assert_complete(tmp_path, sandbox.world)
    assert _cursors(pipeline) == cursors
    rows_read = extracted(pipeline)
    for table, cursor in cursors.items():
        assert rows_read.get(table, 0) == _since(sandbox.world, table, cursor - timedelta(seconds=LOOKBACKS[table]))
    # media and tags: one page each; comments: the media listing, then one page per media with
    # comments published within the comment window before the comments cursor
    oldest = cursors["comments"] - timedelta(seconds=COMMENT_LOOKBACK_SECONDS, days=COMMENT_WINDOW_DAYS)
    visited = store_count(
        sandbox.world,
        "SELECT count(DISTINCT m.media_id) FROM '{store}/instagram_media.parquet' m"
        " JOIN '{store}/instagram_comments.parquet' c USING (media_id)"
        " WHERE m.timestamp <= $clock::TIMESTAMPTZ AND c.timestamp <= $clock::TIMESTAMPTZ AND m.timestamp >= $oldest",
        {"oldest": oldest},
    )
    assert _requests(sandbox) == 3 + visited < first_run


def test_next_day_loads_just_the_new_day(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(private_sandbox), pipeline)
    before = _counts(tmp_path, "comments")[0]
    cursors = _cursors(pipeline)

    private_sandbox.control("POST", "clock/advance", json={"days": 1})
    load(_source(private_sandbox), pipeline)

    _assert_complete(tmp_path, private_sandbox.world)
    assert _counts(tmp_path, "comments")[0] > before
    rows_read = extracted(pipeline)
    for table, cursor in cursors.items():
        since = cursor - timedelta(seconds=LOOKBACKS[table])
        assert rows_read.get(table, 0) == _since(private_sandbox.world, table, since), table


def test_faults_are_survived_quarantined_and_repaired(sandbox, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    token = _credentials(sandbox.world)["access_token"]
    sandbox.set_faults(**FAULTS, rate_malformed=0.05, seed=3)
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox, page_size=10), pipeline)

    for table in STORES:
        rows, distinct = _counts(tmp_path, table)
        assert rows == distinct <= _visible(sandbox.world, table), table
    assert_quarantined(tmp_path, "raw_instagram")
    assert not variant_columns(tmp_path, "raw_instagram", STORES), "a retyped count forked a column"
    faults = counters(sandbox)["faults"]["instagram"]
    assert faults.get("duplicate") and faults.get("429") and faults.get("500")

    sandbox.control("DELETE", "faults")
    load(_source(sandbox, page_size=10), pipeline)
    _assert_complete(tmp_path, sandbox.world)
    assert token not in caplog.text


def test_a_failing_run_keeps_the_cursor_and_the_next_run_resumes(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    cursors = assert_failing_run_keeps_cursors(private_sandbox, pipeline, partial(_source, private_sandbox), _cursors)

    private_sandbox.control("DELETE", "faults")
    load(_source(private_sandbox), pipeline)
    _assert_complete(tmp_path, private_sandbox.world)
    assert _cursors(pipeline)["comments"] > cursors["comments"]


def test_graph_throttling_is_retried(sandbox):
    """Past its budget the Graph API answers HTTP 400 with code 80002: wait and try again."""
    sandbox.control("PUT", "limits", json={"instagram": {"calls": {"limit": 3, "seconds": 1}}})
    issued = _credentials(sandbox.world)
    policy = RetryPolicy(max_attempts=8, backoff_base=0.2, backoff_max=0.4)
    session = GraphSession("instagram", "access_token", policy, UsagePercentPacer(pause=0.0))
    session.headers["Authorization"] = f"Bearer {issued['access_token']}"
    url = f"{sandbox.vendor_url('instagram')}/v21.0/{issued['ig_user_id']}/media"
    for _ in range(6):
        assert session.get(url, params={"fields": "id"}).status_code == 200
    assert session.retries > 0
    assert counters(sandbox)["responses"]["instagram"].get("400", 0) == session.retries


def test_a_wrong_token_fails_naming_the_setting_without_the_token(sandbox, tmp_path):
    source = _source(sandbox, access_token="IGQVwrong-secret")
    assert_load_fails_naming(source, _pipeline(tmp_path), "SOURCES__INSTAGRAM__ACCESS_TOKEN", secret="IGQVwrong-secret")


def test_a_wrong_account_id_fails_naming_the_setting(sandbox, tmp_path):
    source = _source(sandbox, ig_user_id="17841499999999999")
    assert_load_fails_naming(source, _pipeline(tmp_path), "SOURCES__INSTAGRAM__IG_USER_ID")


def test_a_wrong_base_url_fails_naming_the_setting(sandbox, tmp_path):
    issued = _credentials(sandbox.world)
    source = instagram_source(
        base_url=f"{sandbox.url}/nothing-here",
        access_token=issued["access_token"],
        ig_user_id=issued["ig_user_id"],
        retry_policy=FAST,
    )
    assert_load_fails_naming(source, _pipeline(tmp_path), "SOURCES__INSTAGRAM__BASE_URL")


def test_missing_credential_names_the_setting(monkeypatch, tmp_path):
    monkeypatch.delenv("SOURCES__INSTAGRAM__ACCESS_TOKEN", raising=False)
    pipeline = dlt.pipeline(pipeline_name="t", destination="duckdb", pipelines_dir=str(tmp_path))
    with pytest.raises(Exception, match="access_token"):
        pipeline.extract(instagram_source(base_url="http://127.0.0.1:9/instagram", ig_user_id="1"))

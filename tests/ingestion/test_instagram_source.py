"""The Instagram dlt source against the sandbox: complete, incremental, no duplicates, clear failures."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

import dlt
import duckdb
import pytest

from ingestion.common.http import RetryPolicy
from ingestion.common.pacing import UsagePercentPacer
from ingestion.instagram import instagram_source
from ingestion.instagram.helpers import GraphSession
from ingestion.instagram.settings import COMMENT_WINDOW_DAYS, LOOKBACK_SECONDS, MENTION_LOOKBACK_SECONDS
from ingestion.pipelines import load, make_pipeline

FAST = RetryPolicy(max_attempts=6, backoff_base=0.01, backoff_max=0.1, timeout=30)
STORES = {"media": "instagram_media", "comments": "instagram_comments", "mentions": "instagram_mentions"}
LOOKBACKS = {"media": LOOKBACK_SECONDS, "comments": LOOKBACK_SECONDS, "mentions": MENTION_LOOKBACK_SECONDS}


def _credentials(world: Path) -> dict[str, str]:
    return json.loads((world / "world.json").read_text())["credentials"]["instagram"]


def _query(world: Path, sql: str, params: dict | None = None) -> int:
    """A count over the world's store as of its clock; `{table}` names read the store's Parquet."""
    clock = json.loads((world / "world.json").read_text())["clock"]
    sql = sql.format(**{t: f"read_parquet('{world}/store/{t}.parquet')" for t in STORES.values()})
    return duckdb.connect().execute(sql, {"clock": clock, **(params or {})}).fetchall()[0][0]


def _visible(world: Path, table: str) -> int:
    sql = f"SELECT count(*) FROM {{{STORES[table]}}} WHERE timestamp <= $clock::TIMESTAMPTZ"
    if table == "comments":  # comments on media the brand has published by the clock
        sql += " AND media_id IN (SELECT media_id FROM {instagram_media} WHERE timestamp <= $clock::TIMESTAMPTZ)"
    return _query(world, sql)


def _since(world: Path, table: str, since: datetime) -> int:
    """Visible records of `table` at or after `since` (Graph timestamps have whole seconds)."""
    sql = (
        f"SELECT count(*) FROM {{{STORES[table]}}} WHERE timestamp <= $clock::TIMESTAMPTZ"
        " AND date_trunc('second', timestamp) >= $since"
    )
    return _query(world, sql, {"since": since})


def _source(sandbox, **kwargs):
    credentials = _credentials(sandbox.world)
    kwargs.setdefault("retry_policy", FAST)
    kwargs.setdefault("access_token", credentials["access_token"])
    kwargs.setdefault("ig_user_id", credentials["ig_user_id"])
    return instagram_source(base_url=sandbox.vendor_url("instagram"), **kwargs)


def _pipeline(tmp_path) -> dlt.Pipeline:
    return make_pipeline("instagram", tmp_path / "warehouse.duckdb", tmp_path / "dlt")


def _counts(tmp_path, table: str) -> tuple[int, int]:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(f"SELECT count(*), count(DISTINCT id) FROM raw_instagram.{table}").fetchall()[0]


def _assert_complete(tmp_path, world: Path) -> None:
    for table in STORES:
        rows, distinct = _counts(tmp_path, table)
        assert rows == distinct == _visible(world, table), table


def _cursors(pipeline: dlt.Pipeline) -> dict[str, datetime]:
    resources = pipeline.state["sources"]["instagram"]["resources"]
    return {name: resources[name]["incremental"]["timestamp"]["last_value"] for name in STORES}


def _requests(sandbox) -> int:
    return sandbox.control("GET", "counters").json()["requests"].get("instagram", 0)


def test_complete_load_every_record_once(sandbox, tmp_path):
    load(_source(sandbox, page_size=10), _pipeline(tmp_path))
    _assert_complete(tmp_path, sandbox.world)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        columns = {r[0] for r in con.execute("DESCRIBE raw_instagram.comments").fetchall()}
        orphans = con.execute(
            "SELECT count(*) FROM raw_instagram.comments c LEFT JOIN raw_instagram.media m ON m.id = c.media_id"
            " WHERE m.id IS NULL"
        ).fetchall()[0][0]
    assert {"media_id", "from__id", "from__username", "text", "like_count"} <= columns
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
    extracted = pipeline.last_trace.last_normalize_info.row_counts
    for table, cursor in cursors.items():
        assert extracted.get(table, 0) == _since(sandbox.world, table, cursor - timedelta(seconds=LOOKBACKS[table]))
    # media and tags: one page each; comments: the media listing, then one page per media with
    # comments published within the comment window before the comments cursor
    oldest = cursors["comments"] - timedelta(seconds=LOOKBACK_SECONDS, days=COMMENT_WINDOW_DAYS)
    visited = _query(
        sandbox.world,
        "SELECT count(DISTINCT m.media_id) FROM {instagram_media} m JOIN {instagram_comments} c USING (media_id)"
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
    extracted = pipeline.last_trace.last_normalize_info.row_counts
    for table, cursor in cursors.items():
        since = cursor - timedelta(seconds=LOOKBACKS[table])
        assert extracted.get(table, 0) == _since(private_sandbox.world, table, since), table


def test_faults_are_survived_quarantined_and_repaired(sandbox, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    token = _credentials(sandbox.world)["access_token"]
    sandbox.set_faults(
        rate_429=0.2,
        rate_500=0.1,
        rate_duplicate=0.2,
        rate_malformed=0.05,
        drift="retyped_field",
        retry_after_seconds=0.2,
        seed=3,
    )
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox, page_size=10), pipeline)

    for table in STORES:
        rows, distinct = _counts(tmp_path, table)
        assert rows == distinct <= _visible(sandbox.world, table), table
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        quarantined = con.execute("SELECT resource, reason FROM raw_instagram.quarantine").fetchall()
        columns = {t: {r[0] for r in con.execute(f"DESCRIBE raw_instagram.{t}").fetchall()} for t in STORES}
    assert quarantined, "the malformed records were not quarantined"
    assert all(reason.startswith(("missing primary key", "unparseable timestamp")) for _, reason in quarantined)
    assert not [c for cols in columns.values() for c in cols if "__v_" in c], "a retyped count forked a column"
    faults = sandbox.control("GET", "counters").json()["faults"]["instagram"]
    assert faults.get("duplicate") and faults.get("429") and faults.get("500")

    sandbox.control("DELETE", "faults")
    load(_source(sandbox, page_size=10), pipeline)
    _assert_complete(tmp_path, sandbox.world)
    assert token not in caplog.text


def test_a_failing_run_keeps_the_cursor_and_the_next_run_resumes(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(private_sandbox), pipeline)
    cursors = _cursors(pipeline)
    private_sandbox.control("POST", "clock/advance", json={"days": 1})

    private_sandbox.set_faults(rate_500=1.0)
    with pytest.raises(Exception, match=r"HTTP 500 after 2 attempt"):
        load(_source(private_sandbox, retry_policy=RetryPolicy(max_attempts=2, backoff_base=0.01)), pipeline)
    assert _cursors(pipeline) == cursors

    private_sandbox.control("DELETE", "faults")
    load(_source(private_sandbox), pipeline)
    _assert_complete(tmp_path, private_sandbox.world)
    assert _cursors(pipeline)["comments"] > cursors["comments"]


def test_graph_throttling_is_retried(sandbox):
    """Past its budget the Graph API answers HTTP 400 with code 80002: wait and try again."""
    sandbox.control("PUT", "limits", json={"instagram": {"calls": {"limit": 3, "seconds": 1}}})
    credentials = _credentials(sandbox.world)
    policy = RetryPolicy(max_attempts=8, backoff_base=0.2, backoff_max=0.4)
    session = GraphSession("instagram", "access_token", policy, UsagePercentPacer(pause=0.0))
    session.headers["Authorization"] = f"Bearer {credentials['access_token']}"
    url = f"{sandbox.vendor_url('instagram')}/v21.0/{credentials['ig_user_id']}/media"
    for _ in range(6):
        assert session.get(url, params={"fields": "id"}).status_code == 200
    assert session.retries > 0
    assert sandbox.control("GET", "counters").json()["responses"]["instagram"].get("400", 0) == session.retries


def test_a_wrong_token_fails_naming_the_setting_without_the_token(sandbox, tmp_path):
    with pytest.raises(Exception, match="SOURCES__INSTAGRAM__ACCESS_TOKEN") as failure:
        load(_source(sandbox, access_token="IGQVwrong-secret"), _pipeline(tmp_path))
    assert "IGQVwrong-secret" not in str(failure.value)


def test_a_wrong_account_id_fails_naming_the_setting(sandbox, tmp_path):
    with pytest.raises(Exception, match="SOURCES__INSTAGRAM__IG_USER_ID"):
        load(_source(sandbox, ig_user_id="17841499999999999"), _pipeline(tmp_path))


def test_a_wrong_base_url_fails_naming_the_setting(sandbox, tmp_path):
    credentials = _credentials(sandbox.world)
    source = instagram_source(
        base_url=f"{sandbox.url}/nothing-here",
        access_token=credentials["access_token"],
        ig_user_id=credentials["ig_user_id"],
        retry_policy=FAST,
    )
    with pytest.raises(Exception, match="SOURCES__INSTAGRAM__BASE_URL"):
        load(source, _pipeline(tmp_path))


def test_missing_credential_names_the_setting(monkeypatch, tmp_path):
    monkeypatch.delenv("SOURCES__INSTAGRAM__ACCESS_TOKEN", raising=False)
    pipeline = dlt.pipeline(pipeline_name="t", destination="duckdb", pipelines_dir=str(tmp_path))
    with pytest.raises(Exception, match="access_token"):
        pipeline.extract(instagram_source(base_url="http://127.0.0.1:9/instagram", ig_user_id="1"))

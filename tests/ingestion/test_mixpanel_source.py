"""The Mixpanel dlt source against the sandbox: complete, incremental by day, repaired after
faults, resumable after a failure, and clear about configuration mistakes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dlt
import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from ingestion.common.http import RetryPolicy
from ingestion.mixpanel import mixpanel_source
from ingestion.mixpanel.helpers import plan_ranges
from ingestion.mixpanel.parse import INVALID_JSON, BlockParser, SeenIds, day_of_fragment
from ingestion.mixpanel.settings import (
    BOOLEAN_PROPERTIES,
    DOUBLE_PROPERTIES,
    INTEGER_PROPERTIES,
    JSON_PROPERTIES,
    LOOKBACK_DAYS,
    STRING_PROPERTIES,
)
from ingestion.pipelines import load, make_pipeline, restore_state
from sandbox.env import sandbox_env
from tests.conftest import running_sandbox

FAST = RetryPolicy(max_attempts=8, backoff_base=0.01, backoff_max=0.05, timeout=30)


def _meta(world: Path) -> dict:
    return json.loads((world / "world.json").read_text())


def _source(sandbox, policy: RetryPolicy = FAST, **settings):
    meta = _meta(sandbox.world)
    creds = meta["credentials"]["mixpanel"]
    args = {
        "base_url": sandbox.vendor_url("mixpanel"),
        "project_id": creds["project_id"],
        "username": creds["service_account_username"],
        "secret": creds["service_account_secret"],
        "start_date": meta["start"][:10],
        "retry_policy": policy,
        **settings,
    }
    return mixpanel_source(**args)


def _clock(world: Path) -> datetime:
    return datetime.fromisoformat(_meta(world)["clock"].replace("Z", "+00:00"))


def _visible(world: Path, since: date | None = None) -> int:
    """Events Mixpanel has received by the world's clock (optionally with `time` from a day on)."""
    lo = datetime.combine(since or date(1970, 1, 1), datetime.min.time(), UTC)
    store = f"read_parquet('{world}/store/mixpanel_events.parquet')"
    sql = f"SELECT count(*) FROM {store} WHERE arrived_at <= ? AND time >= ?"
    return duckdb.connect().execute(sql, [_clock(world), lo]).fetchall()[0][0]


def _query(tmp_path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _rows(tmp_path: Path) -> tuple[int, int]:
    return _query(tmp_path, "SELECT count(*), count(DISTINCT insert_id) FROM raw_mixpanel.events")[0]


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return make_pipeline("mixpanel", tmp_path / "warehouse.duckdb", tmp_path / "dlt")


def _cursor(pipeline: dlt.Pipeline):
    return pipeline.state["sources"]["mixpanel"]["resources"]["events"]["incremental"]["time"]["last_value"]


def _disposition(pipeline: dlt.Pipeline) -> str:
    return pipeline.default_schema.tables["events"]["write_disposition"]


def _extracted(pipeline: dlt.Pipeline) -> int:
    return pipeline.last_trace.last_normalize_info.row_counts.get("events", 0)


def _requests(sandbox) -> int:
    return sandbox.control("GET", "counters").json()["requests"].get("mixpanel", 0)


def test_loads_every_visible_event_once_typed_and_whole(sandbox, tmp_path):
    # No END_DATE: the source finds the project's today (the world clock, weeks before the wall
    # clock's) by asking the export itself.
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox), pipeline)
    assert _rows(tmp_path) == (_visible(sandbox.world),) * 2
    types = dict(
        _query(
            tmp_path,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'raw_mixpanel' AND table_name = 'events'",
        )
    )
    assert types["time"] == "TIMESTAMP WITH TIME ZONE" and types["price"] == "DOUBLE" and types["step"] == "BIGINT"
    assert {"device_id", "user_id", "checkout_id", "step_name", "fees", "guest_checkout_enabled", "os"} <= set(types)
    # No property is lost: each is a typed column or sits, as sent, in `other_properties`.
    store = f"read_parquet('{sandbox.world}/store/mixpanel_events.parquet')"
    typed = ["$insert_id", "time", "mp_processing_time_ms", *(key for _, key in STRING_PROPERTIES)]
    typed += [*DOUBLE_PROPERTIES, *INTEGER_PROPERTIES, *BOOLEAN_PROPERTIES, *JSON_PROPERTIES]
    typed_list = "[" + ", ".join("'" + key + "'" for key in typed) + "]"
    mismatches = _query(
        tmp_path,
        f"SELECT count(*) FROM raw_mixpanel.events e JOIN {store} s USING (insert_id), "
        "LATERAL (SELECT s.properties::JSON AS p, e.other_properties::JSON AS rest) "
        "WHERE list_sort(json_keys(rest)) <> "
        f"list_sort(list_filter(json_keys(p), lambda k: NOT list_contains({typed_list}, k))) "
        "OR list_bool_or([json_extract(rest, '$.\"' || k || '\"') <> json_extract(p, '$.\"' || k || '\"') "
        "     FOR k IN json_keys(rest)]) "
        "OR abs(epoch(e.time) - epoch(s.time)) >= 1 "
        "OR e.device_id IS DISTINCT FROM s.device_id OR e.user_id IS DISTINCT FROM s.user_id "
        "OR e.checkout_id IS DISTINCT FROM p ->> 'checkout_id' "
        "OR e.price IS DISTINCT FROM (p ->> 'price')::DOUBLE OR e.step IS DISTINCT FROM (p ->> 'step')::BIGINT",
    )[0][0]
    assert mismatches == 0
    # The untyped ones are really there (the storefront's `mp_lib`, a sign-in `method`).
    untyped = "SELECT count(*) FROM raw_mixpanel.events WHERE other_properties ->> 'mp_lib' = 'web'"
    assert _query(tmp_path, untyped)[0][0]
    assert _cursor(pipeline) == _query(tmp_path, "SELECT max(time) FROM raw_mixpanel.events")[0][0]


def test_a_second_run_reads_only_the_lookback_window(sandbox, tmp_path):
    end = _clock(sandbox.world).date().isoformat()
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox, end_date=end), pipeline)
    before = _rows(tmp_path)
    # The first load appends (an empty table needs no merge); every later one merges.
    assert _disposition(pipeline) == "append"
    sandbox.control("POST", "counters/reset")

    load(_source(sandbox, end_date=end), pipeline)
    assert _disposition(pipeline) == "merge"
    assert _rows(tmp_path) == before
    assert _requests(sandbox) == 1, "one export query for the window"
    newest = _query(tmp_path, "SELECT max(time) FROM raw_mixpanel.events")[0][0]
    window_start = (newest - timedelta(days=LOOKBACK_DAYS)).date()
    assert _extracted(pipeline) == _visible(sandbox.world, since=window_start) < before[0] / 3


def test_a_new_day_loads_just_the_new_day_and_the_lookback(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(private_sandbox, end_date=_clock(private_sandbox.world).date().isoformat()), pipeline)
    first = _rows(tmp_path)[0]
    assert first == _visible(private_sandbox.world)

    newest = _query(tmp_path, "SELECT max(time) FROM raw_mixpanel.events")[0][0]
    private_sandbox.control("POST", "clock/advance", json={"days": 1})
    load(_source(private_sandbox), pipeline)  # today moves with the clock, no setting needed
    rows, distinct = _rows(tmp_path)
    assert rows == distinct == _visible(private_sandbox.world) > first
    # The new day and the lookback before the newest event loaded, not everything again.
    window_start = (newest - timedelta(days=LOOKBACK_DAYS)).date()
    assert _extracted(pipeline) == _visible(private_sandbox.world, since=window_start) < first / 2


def test_faults_quarantine_the_corrupt_lines_and_the_next_run_repairs_them(sandbox, tmp_path):
    sandbox.set_faults(
        rate_429=0.2,
        rate_500=0.1,
        rate_duplicate=0.2,
        rate_malformed=0.02,
        drift="retyped_field",
        seed=5,
        retry_after_seconds=0.2,
    )
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox), pipeline)  # finding today takes several queries: more requests to fail
    visible = _visible(sandbox.world)
    rows, distinct = _rows(tmp_path)
    quarantined = _query(tmp_path, "SELECT reason, count(*) FROM raw_mixpanel.quarantine GROUP BY 1")
    met = sandbox.control("GET", "counters").json()["faults"]["mixpanel"]
    assert met.get("429") and met.get("500") and met.get("duplicate") and met.get("malformed")
    assert rows == distinct
    # every line cut in transit is in quarantine with its reason; the time retyped as a string is
    # coerced, not quarantined; duplicated lines collapse on the insert id
    assert [reason for reason, _ in quarantined] == [INVALID_JSON]
    assert rows + quarantined[0][1] == visible
    assert _query(tmp_path, "SELECT count(*) FROM raw_mixpanel.events WHERE time IS NULL")[0][0] == 0
    assert pipeline.state["sources"]["mixpanel"]["resources"]["events"]["repair_days"]

    # faults off: the days that carried corrupt lines are exported again, beyond the lookback
    sandbox.control("DELETE", "faults")
    load(_source(sandbox, end_date=_clock(sandbox.world).date().isoformat()), pipeline)
    assert _rows(tmp_path) == (visible, visible)
    assert pipeline.state["sources"]["mixpanel"]["resources"]["events"]["repair_days"] == {}


def test_a_run_that_lost_its_local_state_merges_and_a_locked_warehouse_stops_it(sandbox, tmp_path):
    """As the Dagster asset runs a source: state restored from the warehouse, then the source."""
    end = _clock(sandbox.world).date().isoformat()
    pipeline = _pipeline(tmp_path)  # active before the source is made: it reads the state
    load(_source(sandbox, end_date=end), pipeline)
    before = _rows(tmp_path)
    # A run that dies before dlt restores its state leaves the pipelines folder empty.
    _pipeline(tmp_path).drop()
    warehouse = tmp_path / "warehouse.duckdb"
    hold = f"import duckdb, time; c = duckdb.connect({str(warehouse)!r}); print(1, flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE)
    try:
        holder.stdout.readline()
        with pytest.raises(PipelineStepFailed, match="Could not set lock"):
            restore_state(_pipeline(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    pipeline = _pipeline(tmp_path)
    restore_state(pipeline)
    load(_source(sandbox, end_date=end), pipeline)
    assert _disposition(pipeline) == "merge"
    assert _rows(tmp_path) == before


def test_a_first_load_cut_off_before_its_state_was_written_is_not_appended_twice(sandbox, tmp_path):
    """dlt writes the events and the state row as separate jobs: a first load killed between
    them leaves events behind no cursor, and the next run must not append them again."""
    end = _clock(sandbox.world).date().isoformat()
    pipeline = _pipeline(tmp_path)
    load(_source(sandbox, end_date=end), pipeline)
    assert _disposition(pipeline) == "append"
    before = _rows(tmp_path)
    assert before[0] == before[1] > 0
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("DELETE FROM raw_mixpanel._dlt_pipeline_state")
    pipeline = _pipeline(tmp_path)
    restore_state(pipeline)
    load(_source(sandbox, end_date=end), pipeline)
    assert _disposition(pipeline) == "merge"
    assert _rows(tmp_path) == before


def test_a_failing_run_keeps_the_cursor_and_the_next_run_resumes(private_sandbox, tmp_path):
    pipeline = _pipeline(tmp_path)
    load(_source(private_sandbox, end_date=_clock(private_sandbox.world).date().isoformat()), pipeline)
    cursor = _cursor(pipeline)
    private_sandbox.control("POST", "clock/advance", json={"days": 1})

    end = _clock(private_sandbox.world).date().isoformat()

    private_sandbox.set_faults(rate_500=1.0)
    with pytest.raises(PipelineStepFailed, match="HTTP 500 after 2 attempt"):
        load(_source(private_sandbox, RetryPolicy(max_attempts=2, backoff_base=0.01), end_date=end), pipeline)
    assert _cursor(pipeline) == cursor

    private_sandbox.control("DELETE", "faults")
    load(_source(private_sandbox, end_date=end), pipeline)
    assert _cursor(pipeline) > cursor
    assert _rows(tmp_path) == (_visible(private_sandbox.world),) * 2


def test_a_day_that_has_not_begun_is_refused_naming_the_setting(sandbox, tmp_path):
    tomorrow = (_clock(sandbox.world).date() + timedelta(days=1)).isoformat()
    with pytest.raises(PipelineStepFailed, match="SOURCES__MIXPANEL__END_DATE"):
        load(_source(sandbox, end_date=tomorrow), _pipeline(tmp_path))


def test_a_wrong_secret_fails_at_once_naming_the_setting(sandbox, tmp_path):
    with pytest.raises(PipelineStepFailed, match="401.*SOURCES__MIXPANEL__SECRET") as failure:
        load(_source(sandbox, secret="wrong-secret"), _pipeline(tmp_path))
    assert "wrong-secret" not in str(failure.value)


def test_a_wrong_base_url_fails_at_once_naming_the_setting(sandbox, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PipelineStepFailed, match="SOURCES__MIXPANEL__BASE_URL"):
        load(_source(sandbox, base_url=f"http://127.0.0.1:{port}/mixpanel"), _pipeline(tmp_path))


def test_missing_credentials_name_the_settings(monkeypatch):
    for key in ("PROJECT_ID", "USERNAME", "SECRET"):
        monkeypatch.delenv(f"SOURCES__MIXPANEL__{key}", raising=False)
    with pytest.raises(Exception, match="SOURCES__MIXPANEL__SECRET"):
        mixpanel_source()


def test_a_block_with_bad_lines_keeps_the_good_ones():
    good = '{"event":"Product Viewed","properties":{"time":1791812687,"$insert_id":"a1","price":"46.99"}}'
    block = "\n".join(
        [
            good,
            good,  # sent twice
            '{"event":"Product Viewed","properties":{"time":"1791812690","$insert_id":"a2","quantity":2}}',
            '{"event":"Product Viewed","properties":{"time":1791812687,"$insert_id":"a',  # cut in transit
            '{"event":"Cart Viewed","properties":{"time":1791812687}}',  # no insert id
            '{"event":"Cart Viewed","properties":{"time":1791812687,"$insert_id":"a3","price":"n/a"}}',
            "",
        ]
    ).encode()
    parser = BlockParser()
    try:
        parsed = parser.parse(block)
    finally:
        parser.close()
    assert parsed.events.column("insert_id").to_pylist() == ["a1", "a1", "a2"]
    seen = SeenIds()
    events = seen.first_seen(parsed.events).to_pylist()
    assert [e["insert_id"] for e in events] == ["a1", "a2"]
    assert seen.first_seen(parsed.events).num_rows == 0, "a block exported again adds nothing"
    assert events[0]["price"] == 46.99 and events[1]["quantity"] == 2
    assert events[1]["time"] == datetime(2026, 10, 12, 13, 44, 50, tzinfo=UTC)
    reasons = [reason for _, reason in parsed.rejected]
    assert reasons == [
        INVALID_JSON,
        "missing primary key properties.$insert_id",
        "non-numeric value in properties.price: 'n/a'",
    ]
    assert day_of_fragment(parsed.rejected[0][0]) == date(2026, 10, 12)
    assert day_of_fragment('{"event":"Product Viewed","properties":{"time":179181') is None


def test_ranges_merge_repair_days_and_respect_the_query_length():
    d = date.fromisoformat
    assert plan_ranges(d("2026-10-28"), d("2026-11-01"), [d("2026-10-20"), d("2026-10-27")], 31) == [
        (d("2026-10-20"), d("2026-10-20")),
        (d("2026-10-27"), d("2026-11-01")),
    ]
    assert plan_ranges(d("2026-01-01"), d("2026-03-01"), [], 31) == [
        (d("2026-01-01"), d("2026-01-31")),
        (d("2026-02-01"), d("2026-03-01")),
    ]


def _legacy_project(world: Path, zone: str) -> None:
    """The world's Mixpanel project as one created before 2023: days and `time` in `zone`."""
    meta = _meta(world)
    meta["credentials"]["mixpanel"]["project_timezone"] = zone
    (world / "world.json").write_text(json.dumps(meta))


def test_a_project_on_its_own_time_zone_loads_true_times_when_the_zone_is_set(fresh_world, tmp_path):
    """Mixpanel exports a project created before 2023 in the project's time zone ("seconds since
    January 1, 1970 in your project's timezone"): with its zone set, every event lands at the
    instant it happened; without it, hours off."""
    _legacy_project(fresh_world, "US/Pacific")
    store = f"read_parquet('{fresh_world}/store/mixpanel_events.parquet')"
    with running_sandbox(fresh_world) as sandbox:
        end = datetime.fromisoformat(_meta(fresh_world)["clock"]).astimezone(ZoneInfo("US/Pacific")).date()
        pipeline = _pipeline(tmp_path)
        load(_source(sandbox, end_date=end.isoformat(), project_timezone="US/Pacific"), pipeline)
        pipeline = _pipeline(tmp_path / "unset")
        load(_source(sandbox, end_date=end.isoformat()), pipeline)
        # `sandbox env` sets the zone, and the project's today as the last day.
        env = sandbox_env(sandbox.url, fresh_world)
        assert env["SOURCES__MIXPANEL__PROJECT_TIMEZONE"] == "US/Pacific"
        assert env["SOURCES__MIXPANEL__END_DATE"] == end.isoformat()
    truth = f"SELECT json_extract_string(properties, '$.\"$insert_id\"') AS insert_id, time FROM {store}"
    off_by: dict[str, tuple[int, int]] = {}
    for name, folder in (("set", tmp_path), ("unset", tmp_path / "unset")):
        with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as con:
            off_by[name] = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE abs(epoch(e.time) - epoch(t.time)) >= 1) "
                f"FROM raw_mixpanel.events e JOIN ({truth}) t USING (insert_id)"
            ).fetchall()[0]
    joined, off = off_by["set"]
    assert joined > 1000 and off == 0
    joined, off = off_by["unset"]
    assert joined > 1000 and off == joined  # every event seven or eight hours off
    # The days asked for are the project's: the whole visible history came in once, no more.
    [(loaded,)] = _query(tmp_path, "SELECT count(*) FROM raw_mixpanel.events")
    assert loaded == _visible(fresh_world)


def test_a_project_time_zone_that_does_not_exist_stops_the_load_naming_the_setting(sandbox, tmp_path):
    _pipeline(tmp_path)  # the source reads the pipeline's state when it is made
    with pytest.raises(Exception, match="SOURCES__MIXPANEL__PROJECT_TIMEZONE='Pacific Time' is not a time zone"):
        _source(sandbox, project_timezone="Pacific Time")

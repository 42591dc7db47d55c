"""Holding a cursor back for quarantined records: per record, for a bounded number of runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dlt

from ingestion.common.cursors import hold_cursor

START = datetime(2026, 1, 1, tzinfo=UTC)


def _night(pipeline: dlt.Pipeline, day: int, bad: list[datetime]) -> datetime:
    """One run: twenty records of `day`, `bad` quarantined; returns the stored cursor."""
    stamp = START + timedelta(days=day)

    @dlt.resource(name="contacts", primary_key="id", write_disposition="merge")
    def contacts(
        updated=dlt.sources.incremental("updated", initial_value=START - timedelta(days=30), lag=3600),
    ):
        yield [{"id": day * 100 + i, "updated": stamp + timedelta(hours=i)} for i in range(20)]
        hold_cursor(updated, bad, vendor="hubspot", max_runs=3)

    pipeline.run(contacts())
    state = pipeline.state["sources"][pipeline.default_schema_name]["resources"]["contacts"]
    return state["incremental"]["updated"]["last_value"]


def _pipeline(tmp_path) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name="cursors",
        destination=dlt.destinations.duckdb(credentials=str(tmp_path / "w.duckdb")),
        pipelines_dir=str(tmp_path / "dlt"),
        dataset_name="raw_test",
    )


def test_a_record_quarantined_for_the_first_time_is_read_again_whatever_came_before(tmp_path):
    pipeline = _pipeline(tmp_path)
    # A new malformed record every night, each repaired by the next night's read.
    for day in range(6):
        bad = START + timedelta(days=day, hours=2)
        assert _night(pipeline, day, [bad]) == bad, f"night {day} did not hold for its new record"


def test_a_record_still_malformed_after_the_allowed_runs_stops_holding_but_a_newer_one_holds(tmp_path):
    pipeline = _pipeline(tmp_path)
    stuck = START + timedelta(hours=2)
    held = [_night(pipeline, day, [stuck]) for day in range(3)]
    assert held == [stuck] * 3
    # The fourth run gives the stuck one up; a record quarantined beside it holds on its own.
    newer = START + timedelta(days=3, hours=5)
    assert _night(pipeline, 3, [stuck, newer]) == newer
    # Nothing quarantined: the cursor goes to the newest record read.
    assert _night(pipeline, 4, []) == START + timedelta(days=4, hours=19)

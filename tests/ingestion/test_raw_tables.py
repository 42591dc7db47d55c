"""A vendor turned off gets its raw tables empty (ingestion/raw_tables.py): the tables described
must be the ones the loaders write, and the setting must say true or false."""

from __future__ import annotations

import duckdb
import pytest

from ingestion.raw_tables import (
    EnabledSettingInvalid,
    create_empty_tables,
    ddl_path,
    loaded_tables,
    vendor_enabled,
    vendors,
)
from orchestration.defs.ingestion.assets import SOURCES


def test_every_vendor_has_its_raw_tables_described():
    assert vendors() == sorted(source.vendor for source in SOURCES)


@pytest.mark.slow
@pytest.mark.parametrize("vendor", [source.vendor for source in SOURCES])
def test_the_described_tables_are_the_ones_the_loader_writes(small_world_nights, vendor):
    # The first night loaded every vendor from the sandbox: each of its tables, and each column
    # with its type, must be in the file, or a turned-off vendor's staging could fail. (The
    # columns' order and a column that only some records fill vary with the world.)
    with duckdb.connect(str(small_world_nights[0].snapshot), read_only=True) as con:
        written = {table: dict(columns) for table, columns in loaded_tables(con, vendor).items()}
    with duckdb.connect() as con:
        create_empty_tables(con, vendor)
        described = {table: dict(columns) for table, columns in loaded_tables(con, vendor).items()}
    assert set(described) == set(written)
    missing = {
        table: {c: t for c, t in columns.items() if described[table].get(c) != t} for table, columns in written.items()
    }
    assert not any(missing.values()), (
        f"{ddl_path(vendor).name} of {vendor} lacks what the loader writes: {missing}; "
        "run `python -m ingestion.raw_tables --from data/warehouse.duckdb` after `make demo`"
    )


def test_empty_tables_are_created_once_and_never_touch_loaded_ones(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE SCHEMA raw_instagram")
        con.execute("CREATE TABLE raw_instagram.media (id VARCHAR, caption VARCHAR)")
        con.execute("INSERT INTO raw_instagram.media VALUES ('1', 'kept')")
        assert create_empty_tables(con, "instagram") == ["comments", "mentions"]
        assert create_empty_tables(con, "instagram") == []
        assert con.execute("SELECT * FROM raw_instagram.media").fetchall() == [("1", "kept")]
        assert con.execute("SELECT count(*) FROM raw_instagram.comments").fetchone() == (0,)
        columns = {
            c
            for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'comments'").fetchall()
        }
        assert {"id", "media_id", "timestamp", "from__username", "_dlt_load_id"} <= columns


@pytest.mark.parametrize(
    ("value", "enabled"),
    [(None, True), ("true", True), ("false", False), ("False", False), (" 0 ", False), ("off", False), ("1", True)],
)
def test_a_vendor_is_on_unless_turned_off(monkeypatch, value, enabled):
    monkeypatch.delenv("SOURCES__HUBSPOT__ENABLED", raising=False)
    if value is not None:
        monkeypatch.setenv("SOURCES__HUBSPOT__ENABLED", value)
    assert vendor_enabled("hubspot") is enabled


def test_an_unreadable_switch_names_its_setting(monkeypatch):
    monkeypatch.setenv("SOURCES__HUBSPOT__ENABLED", "nope")
    with pytest.raises(EnabledSettingInvalid, match=r"SOURCES__HUBSPOT__ENABLED must be true or false, not 'nope'"):
        vendor_enabled("hubspot")

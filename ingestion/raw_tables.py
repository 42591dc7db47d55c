"""A vendor the shop does not use: turned off, its raw tables are there and empty.

dbt's staging models read every vendor's raw tables, and dlt creates a table only when records
arrive. So a shop without, say, Instagram or HubSpot would fail every night. With
`SOURCES__<VENDOR>__ENABLED=false` (or `enabled = false` under `[sources.<vendor>]` in
`.dlt/config.toml`) the nightly reads nothing from that vendor and creates its raw tables empty
instead, with the columns the loader gives them, so every model builds and the marts simply hold
nothing from it. A vendor is on unless turned off: a missing key must fail the night, not empty
the marts unnoticed.

The tables are described in `ingestion/<vendor>/raw_tables.sql`, written from a sandbox load by
`python -m ingestion.raw_tables --from data/warehouse.duckdb` (a test checks they still match
what the loaders write). Turning the vendor on later needs nothing more: dlt loads into the
tables that are there and adds the columns they lack. Turning it off keeps what it loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dlt
import duckdb

from ingestion.common.errors import setting

INGESTION = Path(__file__).resolve().parent
DDL_FILE = "raw_tables.sql"
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class EnabledSettingInvalid(ValueError):
    """`SOURCES__<VENDOR>__ENABLED` holds something that is neither true nor false."""


def vendor_enabled(vendor: str) -> bool:
    """Whether the nightly reads `vendor` (`sources.<vendor>.enabled`, true unless set false)."""
    value = dlt.config.get(f"sources.{vendor}.enabled")
    if value is None or isinstance(value, bool):
        return value is not False
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise EnabledSettingInvalid(f"{setting(vendor, 'enabled')} must be true or false, not {str(value)[:20]!r}")


def ddl_path(vendor: str) -> Path:
    return INGESTION / vendor / DDL_FILE


def create_empty_tables(con: duckdb.DuckDBPyConnection, vendor: str) -> list[str]:
    """Create the vendor's raw tables that are not there yet, empty; the tables created."""
    dataset = f"raw_{vendor}"
    before = _tables(con, dataset)
    con.execute(ddl_path(vendor).read_text())
    return sorted(_tables(con, dataset) - before)


def _tables(con: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ?",
        [schema],
    ).fetchall()
    return {name for (name,) in rows}


def loaded_tables(con: duckdb.DuckDBPyConnection, vendor: str) -> dict[str, list[tuple[str, str]]]:
    """{table: [(column, type)]} of the vendor's raw dataset as a load left it: dlt's own
    bookkeeping (`_dlt_loads`, ...) and the quarantine, which appears only with a bad record and
    which no model reads, left out."""
    rows = con.execute(
        """
        SELECT table_name, column_name, data_type
        FROM duckdb_columns()
        WHERE database_name = current_database() AND schema_name = ?
            AND NOT starts_with(table_name, '_dlt') AND table_name <> 'quarantine'
        ORDER BY table_name, column_index
        """,
        [f"raw_{vendor}"],
    ).fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        tables.setdefault(table, []).append((column, data_type))
    return tables


def render_ddl(vendor: str, tables: dict[str, list[tuple[str, str]]]) -> str:
    lines = [
        f"-- The raw tables of {vendor}, empty, for a shop that turns it off ({setting(vendor, 'enabled')}=false).",
        "-- Written from a sandbox load by `python -m ingestion.raw_tables --from <warehouse>`; do not edit.",
        f"CREATE SCHEMA IF NOT EXISTS raw_{vendor};",
    ]
    for table, columns in sorted(tables.items()):
        body = ",\n".join(f'    "{column}" {data_type}' for column, data_type in columns)
        lines.append(f'CREATE TABLE IF NOT EXISTS raw_{vendor}."{table}" (\n{body}\n);')
    return "\n".join(lines) + "\n"


def vendors() -> list[str]:
    """The vendors with a raw tables file."""
    return sorted(path.parent.name for path in INGESTION.glob(f"*/{DDL_FILE}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ingestion.raw_tables",
        description="Write ingestion/<vendor>/raw_tables.sql from a warehouse every vendor has loaded "
        "(the demo's, say): the empty tables a vendor that is turned off gets.",
    )
    parser.add_argument("--from", dest="warehouse", type=Path, required=True, help="a DuckDB warehouse file")
    parser.add_argument("vendor", nargs="*", help="the vendors to write (default: every vendor with a file)")
    args = parser.parse_args(argv)
    if not args.warehouse.exists():
        parser.error(f"no warehouse at {args.warehouse}")
    with duckdb.connect(str(args.warehouse), read_only=True) as con:
        for vendor in args.vendor or vendors():
            tables = loaded_tables(con, vendor)
            if not tables:
                print(f"{vendor}: no raw tables in {args.warehouse}; file left as it was", file=sys.stderr)
                continue
            ddl_path(vendor).write_text(render_ddl(vendor, tables))
            print(f"{vendor}: {len(tables)} tables written to {ddl_path(vendor).relative_to(INGESTION.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reading the warehouse for the report: tables that may not exist yet, and number formats."""

from __future__ import annotations

from typing import Any

import duckdb


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".")
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, table]
    ).fetchall()
    return found[0][0] > 0


def records(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Rows as dicts. `fetchall`, never `fetchone`: a pending result blocks the next statement."""
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def count(value: Any) -> str:
    return "–" if value is None else f"{int(value):,}"


def share(value: Any) -> str:
    return "–" if value is None else f"{float(value) * 100:.1f}%"


def points(value: Any) -> str:
    """A difference of two rates, in percentage points."""
    return "–" if value is None else f"{float(value) * 100:+.1f} pp"


def money(value: Any) -> str:
    return "–" if value is None else f"{float(value):,.2f}"


def decimal(value: Any) -> str:
    return "–" if value is None else f"{float(value):.2f}"

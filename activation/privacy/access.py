"""Access: everything Tessera holds about one person, in one readable JSON file.

The file holds what it is (`about`), when it was made (`generated_at`), what was asked for
(`request`), the person's customer ids (`customer_ids`) and identifiers (`identifiers`), the
segments and audiences they are in (`segments`), how many rows each table holds of theirs
(`row_counts`), and every row of every table that is theirs (`tables`, grouped by
`schema.table`; `rows.select_rows`).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from activation.privacy import platform_retries
from activation.privacy.person import has_table, parse_identifiers, resolve
from activation.privacy.rows import select_rows
from ingestion.common.redaction import redact

ABOUT = (
    "Everything Tessera (the shop's customer data platform) holds about you: every record in its "
    "warehouse that carries one of your identifiers, grouped by table. Raw tables (raw_*) hold what "
    "the shop's tools sent; staging, intermediate and marts are derived from them; activation holds "
    "what was sent to the shop's email platforms."
)
# dbt models whose membership is an audience a person can be sent marketing for.
AUDIENCE_TABLES = ("marts.abandoned_checkouts",)


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def platform_deletions(con: duckdb.DuckDBPyConnection, emails: set[str]) -> list[dict[str, Any]]:
    """The person's deletions still waiting at an email platform (the one table of the privacy
    schema that holds an address)."""
    wanted = sorted({e.strip().lower() for e in emails if e and e.strip()})
    if not wanted or not has_table(con, *platform_retries.TABLE.split(".")):
        return []
    cursor = con.execute(
        f"SELECT * FROM {platform_retries.TABLE} WHERE email IN (SELECT unnest(?::VARCHAR[])) ORDER BY ALL", [wanted]
    )
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    # Stored redacted since `remember` redacts; a row an earlier version wrote may still quote
    # a platform's credential, which is no data of the person's.
    return [{**row, "error": redact(row["error"]) if row.get("error") else row.get("error")} for row in rows]


def build_export(warehouse: Path, email: str | None, identifiers: list[str] = ()) -> dict[str, Any]:
    """The access export as a dict (see the module's docstring)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        person = resolve(con, [email] if email else [], parse_identifiers(identifiers))
        # Temp tables are allowed on a read-only connection: they live in memory.
        rows = select_rows(con, person)
        waiting = platform_deletions(con, person.emails | ({email} if email else set()))
    if waiting:
        rows[platform_retries.TABLE] = waiting
    segments = sorted(
        table.split(".", 1)[1] for table in rows if table.startswith("marts.seg_") or table in AUDIENCE_TABLES
    )
    return {
        "about": ABOUT,
        "generated_at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "request": {"email": email, "identifiers": list(identifiers)},
        "customer_ids": sorted(person.customer_ids),
        "identifiers": [{"source": s, "id_type": t, "value": v} for s, t, v in sorted(person.identifiers)],
        "segments": segments,
        "row_counts": {table: len(table_rows) for table, table_rows in sorted(rows.items())},
        "tables": {table: _json_safe(table_rows) for table, table_rows in sorted(rows.items())},
    }


def write_export(warehouse: Path, out: Path, email: str | None, identifiers: list[str] = ()) -> dict[str, Any]:
    """Write the access export to `out` (indented JSON); returns it."""
    export = build_export(warehouse, email, identifiers)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(export, indent=2, ensure_ascii=False, default=str) + "\n")
    return export

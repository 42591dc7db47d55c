"""The warehouse's memory of erasures, in the `privacy` schema, without the personal data itself.

- `erased_identifiers`: one row per identifier of an erased person, as (source, id_type,
  sha256 of the normalized value). Loads drop records carrying one (`ingestion.common.erasure`);
  dbt flags any customer still carrying one (`stg_privacy__erased_identifiers`).
- `erasure_log`: one row per processed request: its id, when it was asked and processed, the
  sha256 of the request's email, how many identifiers and customers it resolved to, the rows
  deleted per table and each destination's outcome. It is how "new" requests are recognised.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb

from activation.privacy.person import Person
from ingestion.common.erasure import ERASURE_LOG_TABLE, TOMBSTONE_SCHEMA, TOMBSTONE_TABLE

LOG_TABLE = ERASURE_LOG_TABLE
LOG = f"{TOMBSTONE_SCHEMA}.{LOG_TABLE}"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {TOMBSTONE_SCHEMA};
CREATE TABLE IF NOT EXISTS {TOMBSTONE_SCHEMA}.{TOMBSTONE_TABLE} (
    request_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    id_type VARCHAR NOT NULL,
    id_hash VARCHAR NOT NULL,
    erased_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS {TOMBSTONE_SCHEMA}.{LOG_TABLE} (
    request_id VARCHAR PRIMARY KEY,
    email_hash VARCHAR,
    requested_at TIMESTAMPTZ,
    processed_at TIMESTAMPTZ NOT NULL,
    customers INTEGER NOT NULL,
    identifiers INTEGER NOT NULL,
    rows_deleted JSON NOT NULL,
    destinations JSON NOT NULL
);
"""


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def processed_request_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    ensure(con)
    return {r for (r,) in con.execute(f"SELECT request_id FROM {TOMBSTONE_SCHEMA}.{LOG_TABLE}").fetchall()}


def record(
    con: duckdb.DuckDBPyConnection,
    request_id: str,
    email_hash: str | None,
    requested_at: Any,
    person: Person,
    rows_deleted: dict[str, int],
    destinations: dict[str, Any],
) -> None:
    """Tombstone the person's identifiers and log the request as processed."""
    ensure(con)
    now = datetime.now(tz=UTC)
    hashes = sorted(person.hashes())
    if hashes:
        con.executemany(
            f"INSERT INTO {TOMBSTONE_SCHEMA}.{TOMBSTONE_TABLE} VALUES (?, ?, ?, ?, ?)",
            [[request_id, source, id_type, digest, now] for source, id_type, digest in hashes],
        )
    con.execute(
        f"INSERT OR REPLACE INTO {TOMBSTONE_SCHEMA}.{LOG_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            request_id,
            email_hash,
            requested_at,
            now,
            len(person.customer_ids),
            len(hashes),
            json.dumps(rows_deleted, sort_keys=True),
            json.dumps(destinations, sort_keys=True),
        ],
    )

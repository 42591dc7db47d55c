"""Finding a person's rows in every table of the warehouse, to export them or to delete them.

A row is the person's when one of its person columns (`ingestion.common.erasure.is_person_column`:
emails, phones, the vendors' person ids, `customer_id`) holds one of their identifiers, when a
JSON or free-text payload column mentions one of their emails (a quarantined record, a ledger
payload), or, in the identity models, when an identity node (`email:<value>`) is theirs. A dlt
child row (an order's line items, a member's tags) belongs to its parent: it goes with the rows
it hangs off by `_dlt_root_id`/`_dlt_parent_id`.

The tombstone and the erasure log (`privacy` schema) and the dbt seeds are never touched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import duckdb

from activation.privacy.person import Person, columns, load_pairs, tables
from ingestion.common.erasure import TOMBSTONE_SCHEMA, is_person_column

UNTOUCHED_SCHEMAS = frozenset({TOMBSTONE_SCHEMA, "seeds", "information_schema", "pg_catalog"})
# Free-text or JSON columns that may carry a whole record: searched for the person's emails.
PAYLOAD_COLUMNS = frozenset({"record", "payload", "properties", "event_properties", "other_properties"})
# Identity-model columns holding `kind:value` nodes.
NODE_COLUMNS = frozenset({"node", "id_key", "link"})


def load_people(con: duckdb.DuckDBPyConnection, people: Sequence[Person]) -> None:
    """Each person's values, customer ids and emails as `(k, v)` temp tables the matches join."""
    for name, values_of in (
        ("_people_values", lambda p: p.values),
        ("_people_customers", lambda p: p.customer_ids),
        ("_people_emails", lambda p: p.emails),
    ):
        load_pairs(con, name, ((k, v) for k, person in enumerate(people) for v in values_of(person)))


def match_query(schema: str, table: str, table_columns: list[tuple[str, str]]) -> str | None:
    """SQL giving `(k, rid, dlt_id)` for each row of this table that is the k-th person's, or
    None if the table cannot hold any. Equalities are hash joins, so one scan serves any number
    of people; a payload is only searched when it holds an `@` at all."""
    root = table if "__" not in table else None
    names = {name for name, _ in table_columns}
    source = f'"{schema}"."{table}" AS t'
    keys = f"t.rowid AS rid, {'t._dlt_id' if '_dlt_id' in names else 'NULL'} AS dlt_id"
    parts = []
    for name, data_type in table_columns:
        if name.startswith("_dlt"):
            continue
        column = f't."{name}"'
        low = name.lower()
        if is_person_column(name, root):
            text = f"lower(trim(CAST({column} AS VARCHAR)))"
            parts.append(f"SELECT p.k, {keys} FROM {source} JOIN _people_values p ON {text} = p.v")
            if low.endswith("customer_id"):
                customer = f"CAST({column} AS VARCHAR)"
                parts.append(f"SELECT p.k, {keys} FROM {source} JOIN _people_customers p ON {customer} = p.v")
        elif low in NODE_COLUMNS and data_type == "VARCHAR" and not schema.startswith("raw_"):
            node = f"lower(substr({column}, strpos({column}, ':') + 1))"
            parts.append(f"SELECT p.k, {keys} FROM {source} JOIN _people_values p ON {node} = p.v")
        elif data_type == "JSON" or (low in PAYLOAD_COLUMNS and data_type == "VARCHAR"):
            text = f"CAST({column} AS VARCHAR)"
            # Not an equality: a nested loop, which the `@` filter keeps to the rows worth it.
            parts.append(
                f"SELECT p.k, {keys} FROM {source} JOIN _people_emails p ON contains(lower({text}), p.v) "
                f"WHERE contains({text}, '@')"
            )
    return " UNION ".join(parts) if parts else None


def _candidate_tables(con: duckdb.DuckDBPyConnection) -> Iterator[tuple[str, str, list[tuple[str, str]]]]:
    for schema, table in tables(con):
        if schema in UNTOUCHED_SCHEMAS or table.startswith("_dlt"):
            continue
        yield schema, table, columns(con, schema, table)


def _mark_matches(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """`_people_rows (schema_name, table_name, k, rid, dlt_id)`: every row of each loaded person,
    with the dlt children of their rows; returns the tables that have any."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _people_rows "
        "(schema_name VARCHAR, table_name VARCHAR, k INTEGER, rid BIGINT, dlt_id VARCHAR)"
    )
    lineage: list[tuple[str, str]] = []
    for schema, table, table_columns in _candidate_tables(con):
        query = match_query(schema, table, table_columns)
        if query:
            con.execute(f"INSERT INTO _people_rows SELECT ?, ?, k, rid, dlt_id FROM ({query})", [schema, table])
        if "_dlt_parent_id" in {c for c, _ in table_columns}:
            lineage.append((schema, table))
    # Children of children: two passes reach grandchildren; every child also names its root.
    for _ in range(2):
        for schema, table in lineage:
            # Two equi-joins, not one on `IN (root, parent)`, which would be a nested loop.
            hanging = " UNION ".join(
                f'SELECT m.k, t.rowid AS rid, t._dlt_id AS dlt_id FROM "{schema}"."{table}" AS t '
                f"JOIN _people_rows AS m ON m.dlt_id = t.{link} AND m.schema_name = $schema"
                for link in ("_dlt_root_id", "_dlt_parent_id")
            )
            con.execute(
                f"INSERT INTO _people_rows SELECT $schema, $table, k, rid, dlt_id FROM ({hanging}) AS c "
                "WHERE NOT EXISTS (SELECT 1 FROM _people_rows AS o "
                "WHERE o.schema_name = $schema AND o.table_name = $table AND o.k = c.k AND o.rid = c.rid)",
                {"schema": schema, "table": table},
            )
    return con.execute("SELECT DISTINCT schema_name, table_name FROM _people_rows ORDER BY 1, 2").fetchall()


def select_rows(con: duckdb.DuckDBPyConnection, person: Person) -> dict[str, list[dict[str, Any]]]:
    """Every row of the person, by `schema.table` (tables without any are left out)."""
    load_people(con, [person])
    out: dict[str, list[dict[str, Any]]] = {}
    for schema, table in _mark_matches(con):
        cursor = con.execute(
            f'SELECT * FROM "{schema}"."{table}" WHERE rowid IN '
            "(SELECT rid FROM _people_rows WHERE schema_name = ? AND table_name = ?)",
            [schema, table],
        )
        names = [d[0] for d in cursor.description]
        out[f"{schema}.{table}"] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return out


def delete_rows(con: duckdb.DuckDBPyConnection, people: Sequence[Person]) -> list[dict[str, int]]:
    """Delete every row of every person in one pass per table; per person, rows by `schema.table`.

    A row that is two people's (a shared order, say) counts for both and is deleted once.
    """
    load_people(con, people)
    deleted: list[dict[str, int]] = [{} for _ in people]
    touched = _mark_matches(con)
    counts = con.execute(
        "SELECT k, schema_name, table_name, count(DISTINCT rid) FROM _people_rows GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    for k, schema, table, count in counts:
        deleted[k][f"{schema}.{table}"] = count
    for schema, table in touched:
        con.execute(
            f'DELETE FROM "{schema}"."{table}" WHERE rowid IN '
            "(SELECT rid FROM _people_rows WHERE schema_name = ? AND table_name = ?)",
            [schema, table],
        )
    return deleted

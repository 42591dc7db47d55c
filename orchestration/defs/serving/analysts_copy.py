"""The analysts' copy: the marts, published after each successful run to a read-only DuckDB
file that analysts query while the next run writes the warehouse.

DuckDB allows one writer, and even a reader of the warehouse file would stop the next load. So
the marts are copied to `data/analysts.duckdb`: written beside it under a temporary name, then
renamed over it in one step. A reader that has the old file open keeps reading the old tables;
the next connection sees the new ones; nobody ever sees a half-written file. Table and column
descriptions from the dbt project travel along as DuckDB comments.
"""

import json
import os
import time
from pathlib import Path

import dagster as dg
import duckdb

from orchestration.defs.transform.dbt import dbt_models, dbt_project
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

PUBLISHED_SCHEMAS = ("marts",)
COPY_NAME = "analysts.duckdb"


def _descriptions(manifest_path: Path) -> dict[tuple[str, str], dict]:
    """(schema, table) -> {"description": ..., "columns": {name: description}} from the dbt manifest."""
    if not manifest_path.exists():
        return {}
    manifest = json.loads(manifest_path.read_text())
    out = {}
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") == "model":
            columns = {name: col.get("description", "") for name, col in node.get("columns", {}).items()}
            out[(node["schema"], node.get("alias") or node["name"])] = {
                "description": node.get("description", ""),
                "columns": columns,
            }
    return out


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def publish(warehouse: Path, target: Path, descriptions: dict[tuple[str, str], dict] | None = None) -> dict:
    """Copy the published schemas of `warehouse` into `target`, replacing it atomically.

    Returns what was published: {"tables": {"marts.x": rows}, "bytes": size}."""
    descriptions = descriptions or {}
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    tables: dict[str, int] = {}
    try:
        with duckdb.connect(str(partial)) as con:
            con.execute(f"ATTACH {_quote(str(warehouse))} AS warehouse (READ_ONLY)")
            listed = con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_catalog = 'warehouse' AND table_schema IN "
                f"({', '.join(_quote(s) for s in PUBLISHED_SCHEMAS)}) ORDER BY ALL"
            ).fetchall()
            for schema in sorted({s for s, _ in listed}):
                con.execute(f'CREATE SCHEMA "{schema}"')
            for schema, table in listed:
                name = f'"{schema}"."{table}"'
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM warehouse.{name}")
                tables[f"{schema}.{table}"] = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
                doc = descriptions.get((schema, table))
                if doc:
                    if doc["description"]:
                        con.execute(f"COMMENT ON TABLE {name} IS {_quote(doc['description'].strip())}")
                    columns = {
                        c
                        for (c,) in con.execute(
                            "SELECT column_name FROM information_schema.columns "
                            "WHERE table_schema = ? AND table_name = ?",
                            [schema, table],
                        ).fetchall()
                    }
                    for column, text in doc["columns"].items():
                        if text and column in columns:
                            con.execute(f'COMMENT ON COLUMN {name}."{column}" IS {_quote(text.strip())}')
            con.execute("DETACH warehouse")
            con.execute("CHECKPOINT")
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        partial.unlink(missing_ok=True)
        Path(f"{partial}.wal").unlink(missing_ok=True)
    return {"tables": tables, "bytes": target.stat().st_size}


@dg.asset(
    key=["serving", "analysts_copy"],
    group_name="serving",
    kinds={"duckdb"},
    deps=[key for key in dbt_models.keys if key.path[0] in PUBLISHED_SCHEMAS],
    pool=WAREHOUSE_POOL,
    description=(
        "The marts, published to data/analysts.duckdb after each successful run (atomically "
        "replaced): the file analysts query, never the one a run writes."
    ),
)
def analysts_copy(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    started = time.perf_counter()
    target = warehouse.root / COPY_NAME
    published = publish(warehouse.path, target, _descriptions(dbt_project.manifest_path))
    context.log.info(f"published {len(published['tables'])} tables to {target}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(target)),
            "tables": len(published["tables"]),
            "rows": dg.MetadataValue.json(published["tables"]),
            "size_mb": round(published["bytes"] / 2**20, 1),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )

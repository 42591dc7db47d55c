"""Personal data kept on disk outside the warehouse tables: dlt load packages and old analysts' copies.

dlt keeps every completed load package (`<pipelines_dir>/<pipeline>/load/loaded/<load_id>/`,
the Parquet files exactly as loaded) and, after a failed run, pending ones under `load/new`,
`load/normalized` and `normalize/extracted`. Completed packages are history dlt never reads
again: they are deleted. A pending package must still load, so its files are rewritten without
the person's rows (Parquet) or lines (JSON lines). The analysts' copy is republished from the
cleaned warehouse; leftovers of earlier publications (partial files, WAL files) are removed.

DuckDB does not overwrite the blocks deleted rows lived in until it reuses them, so a deleted
email can still be read from the warehouse file's bytes: `compact_warehouse` rewrites the file
(seconds for a small shop, about a copy of the file's size in I/O) and replaces it in one step.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import duckdb

from activation.privacy.person import Person
from ingestion.common.erasure import CHECKOUT_FIELDS, is_checkout_column, is_person_column

PENDING_DIRS = ("load/new", "load/normalized", "normalize/extracted")
# The rewrite streams table by table; without a limit DuckDB's buffer pool may grow to 80% of
# the machine while it copies a multi-gigabyte warehouse, beside the nightly run's own memory.
COMPACT_MEMORY_LIMIT = "2GB"


def delete_completed_packages(pipelines_dir: Path) -> int:
    """Remove every completed load package of every pipeline; how many were removed."""
    removed = 0
    for package in sorted(Path(pipelines_dir).glob("*/load/loaded/*")):
        if package.is_dir():
            shutil.rmtree(package)
            removed += 1
    return removed


def _mentions(text: str, person: Person) -> bool:
    low = text.lower()
    if any(f'"{v}"' in low or f":{v}," in low or f":{v}}}" in low for v in person.values):
        return True
    # Their checkout tokens only as a checkout field's value (`"checkout_id": "<token>"`).
    compact = low.replace(" ", "")
    return any(f'"{field}":"{token}"' in compact for field in CHECKOUT_FIELDS for token in person.checkout_tokens)


def _scrub_parquet(path: Path, person: Person) -> int:
    with duckdb.connect() as con:
        names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()]
        # Person columns against all their values; checkout columns against their checkouts only.
        matched = [(c, sorted(person.values)) for c in names if is_person_column(c)]
        matched += [(c, sorted(person.checkout_tokens)) for c in names if is_checkout_column(c)]
        if not matched:
            return 0
        match = " OR ".join(f'lower(trim(CAST("{c}" AS VARCHAR))) IN (SELECT unnest(?::VARCHAR[]))' for c, _ in matched)
        params = [values for _, values in matched]
        hits = con.execute(f"SELECT count(*) FROM read_parquet('{path}') WHERE {match}", params).fetchall()[0][0]
        if hits:
            tmp = path.with_name(path.name + ".scrub")
            con.execute(
                # `coalesce`: a row whose person columns are empty matches NULL, and is kept.
                f"COPY (SELECT * FROM read_parquet('{path}') WHERE NOT coalesce({match}, false)) "
                f"TO '{tmp}' (FORMAT parquet)",
                params,
            )
            tmp.replace(path)
        return hits


def _scrub_lines(path: Path, person: Person) -> int:
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rt") as f:
        lines = f.readlines()
    kept = [line for line in lines if not _mentions(line, person)]
    if len(kept) != len(lines):
        with opener(path, "wt") as f:
            f.writelines(kept)
    return len(lines) - len(kept)


def scrub_pending_packages(pipelines_dir: Path, person: Person) -> int:
    """Rewrite pending load files without the person's records; records removed."""
    removed = 0
    for pending in PENDING_DIRS:
        for path in sorted(Path(pipelines_dir).glob(f"*/{pending}/**/*")):
            if not path.is_file() or path.suffix in (".json", ".version") or path.name.startswith("."):
                continue
            if path.suffix == ".parquet":
                removed += _scrub_parquet(path, person)
            elif path.suffix in (".jsonl", ".typed-jsonl", ".gz", ".insert_values", ".sql", ".csv"):
                removed += _scrub_lines(path, person)
    return removed


def remove_stale_copies(copy: Path) -> int:
    """Delete leftovers of earlier publications of the analysts' copy beside it."""
    removed = 0
    for stale in copy.parent.glob(f".{copy.name}.partial-*"):
        stale.unlink(missing_ok=True)
        removed += 1
    for stale in copy.parent.glob(f"{copy.name}.*"):
        stale.unlink(missing_ok=True)
        removed += 1
    return removed


def compact_warehouse(warehouse: Path) -> int:
    """Rewrite `warehouse` into a fresh file holding only live rows and replace it; bytes saved.

    Nothing else may hold the file (the warehouse writer pool, or no nightly run for the CLI)."""
    warehouse = Path(warehouse)
    fresh = warehouse.with_name(f".{warehouse.name}.compact-{os.getpid()}")
    fresh.unlink(missing_ok=True)
    spill = warehouse.with_name(f".{warehouse.name}.compact-tmp-{os.getpid()}")  # DuckDB spills here
    before = warehouse.stat().st_size
    try:
        with duckdb.connect(config={"memory_limit": COMPACT_MEMORY_LIMIT, "temp_directory": str(spill)}) as con:
            # Attached under its own name: dbt's views name the `warehouse` catalog.
            con.execute(f"ATTACH '{warehouse}' AS \"{warehouse.stem}\" (READ_ONLY)")
            con.execute(f"ATTACH '{fresh}' AS compacted")
            con.execute(f'COPY FROM DATABASE "{warehouse.stem}" TO compacted')
        os.replace(fresh, warehouse)
    finally:
        fresh.unlink(missing_ok=True)
        Path(f"{fresh}.wal").unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
    Path(f"{warehouse}.wal").unlink(missing_ok=True)
    return before - warehouse.stat().st_size

"""Every vendor is read at once, each is written on its own, and one vendor's failure costs the
others nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import dlt
import duckdb

from ingestion.concurrent import VendorLoad, load_concurrently
from ingestion.pipelines import make_pipeline

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Long enough for a slow machine, short enough that reads run one after another fail quickly.
MEET_WITHIN_SECONDS = 20


def _source(name: str, rows: int, before_yield=lambda: None, fail_after: int | None = None):
    @dlt.resource(name="items", primary_key="id", write_disposition="merge")
    def items():
        before_yield()
        for i in range(rows):
            if fail_after is not None and i == fail_after:
                raise RuntimeError(f"{name} answered 503 at row {i}")
            yield {"id": i, "vendor": name}

    @dlt.source(name=name)
    def source():
        return items

    return source()


def _job(vendor: str, tmp_path: Path, source) -> VendorLoad:
    return VendorLoad(vendor, source, make_pipeline(vendor, tmp_path / "warehouse.duckdb", tmp_path / "dlt"))


def _rows(tmp_path: Path, vendor: str) -> int:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(f"SELECT count(*) FROM raw_{vendor}.items").fetchall()[0][0]


def test_the_vendors_are_read_at_the_same_time_and_all_written(tmp_path):
    # Each read waits until the other has started: read one after another, they never meet.
    both_reading = threading.Barrier(2, timeout=MEET_WITHIN_SECONDS)
    jobs = [
        _job("alpha", tmp_path, _source("alpha", 300, before_yield=both_reading.wait)),
        _job("beta", tmp_path, _source("beta", 200, before_yield=both_reading.wait)),
    ]
    done = list(load_concurrently(jobs))
    assert [j.error for j in done] == [None, None]
    assert {j.vendor for j in done} == {"alpha", "beta"}
    assert (_rows(tmp_path, "alpha"), _rows(tmp_path, "beta")) == (300, 200)
    assert {j.vendor: j.row_counts["items"] for j in done} == {"alpha": 300, "beta": 200}


def test_a_vendor_that_fails_is_named_and_the_others_are_written(tmp_path):
    jobs = [
        _job("alpha", tmp_path, _source("alpha", 300, fail_after=120)),
        _job("beta", tmp_path, _source("beta", 200)),
    ]
    done = {j.vendor: j for j in load_concurrently(jobs)}
    assert done["beta"].error is None and _rows(tmp_path, "beta") == 200
    failed = done["alpha"]
    assert failed.failed_while == "reading"
    assert "alpha answered 503 at row 120" in str(failed.error)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        schemas = {s for (s,) in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()}
    assert "raw_alpha" not in schemas, "a failed read must write nothing"


def test_writes_happen_in_the_calling_thread_one_at_a_time(tmp_path, monkeypatch):
    writers: list[str] = []
    original = dlt.Pipeline.load

    def load(self, *args, **kwargs):
        writers.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(dlt.Pipeline, "load", load)
    jobs = [_job(v, tmp_path, _source(v, 50)) for v in ("alpha", "beta", "gamma")]
    assert all(j.error is None for j in load_concurrently(jobs))
    assert writers == [threading.current_thread().name] * 3


def test_the_libraries_dlt_imports_lazily_are_imported_before_any_reader_starts():
    # dlt looks them up in sys.modules from the reader threads; half-imported by another reader,
    # pandas failed three vendors' reads of the first 1M history load.
    code = (
        "import sys, ingestion.concurrent\n"
        "assert sys.modules['pandas'].DataFrame and sys.modules['pyarrow'].Table\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]

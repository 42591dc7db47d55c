"""Read every vendor at once; write the warehouse one vendor at a time.

A night's loads spend their time waiting on the vendors (rate limits, paging), not writing: at
1M customers Klaviyo's API reads took about 280 of its 299 s, the normalize and the write 16 s.
Run one after another, six vendors add their waits up. DuckDB allows one writer, so only the
writes must take turns: each source is extracted and normalized in its own thread into its
pipeline's local load packages (dlt runs pipelines of different names safely in separate
threads), and the calling thread writes each finished one, in the order they finish.

The threads are daemons: a run that is cancelled or crashes does not wait for the vendors. What
they had read stays in the pipeline's local folder, unloaded, and is dropped by the next run,
which reads again from the cursors in the warehouse: a cursor only moves when its load commits.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import dlt
import duckdb

# Imported here, in the thread that imports this module, before any reader starts: dlt finds
# these libraries with `sys.modules.get(...)` and imports them lazily, so a thread can meet one
# that another thread is still importing ("partially initialized module 'pandas' has no
# attribute 'DataFrame'"), which failed three vendors' reads in the first 1M history load.
import pandas  # noqa: F401
import pyarrow  # noqa: F401
from dlt.common.pipeline import LoadInfo, NormalizeInfo
from dlt.sources import DltSource

from ingestion.pipelines import LOADER_FILE_FORMAT, warehouse_of


@dataclass
class VendorLoad:
    """One vendor's source, the pipeline it loads through, and how its load went."""

    vendor: str
    source: DltSource
    pipeline: dlt.Pipeline
    read_seconds: float = 0.0
    write_seconds: float = 0.0
    normalize_info: NormalizeInfo | None = None
    load_info: LoadInfo | None = None
    error: Exception | None = None
    failed_while: str = ""

    @property
    def row_counts(self) -> dict[str, int]:
        """Rows written per table (child tables included), as dlt's normalize counted them."""
        return dict(self.normalize_info.row_counts) if self.normalize_info else {}


def _read(job: VendorLoad, done: queue.Queue[VendorLoad]) -> None:
    started = time.perf_counter()
    try:
        job.pipeline.activate()  # dlt's current pipeline is per thread; resources ask for it
        job.pipeline.extract(job.source, loader_file_format=LOADER_FILE_FORMAT)
        job.normalize_info = job.pipeline.normalize()
    except Exception as error:  # reported with the vendor's name; the other vendors go on
        job.error, job.failed_while = error, "reading"
    finally:
        job.read_seconds = time.perf_counter() - started
        done.put(job)


def _write(job: VendorLoad) -> None:
    started = time.perf_counter()
    try:
        job.pipeline.activate()
        job.load_info = job.pipeline.load()
        job.load_info.raise_on_failed_jobs()
    except Exception as error:
        job.error, job.failed_while = error, "writing"
    finally:
        job.write_seconds = time.perf_counter() - started


def load_concurrently(jobs: Iterable[VendorLoad]) -> Iterator[VendorLoad]:
    """Read every job's source at once and write each, one at a time, as its read ends.

    Yields each job once it is written (or has failed, with `error` set), so that the caller can
    report it before the slowest vendor is done. Only the calling thread writes the warehouse,
    and it must not be writing it elsewhere meanwhile; the readers touch it only through their
    own pipelines' reads (state, and Klaviyo's loaded memberships), which DuckDB serves beside
    a writer within one process."""
    jobs = list(jobs)
    # One connection per warehouse held open throughout: DuckDB shuts its in-process database
    # down when the last connection closes (after each write), and a reader opening one at that
    # moment would meet the file's lock, held by this very process.
    held = [duckdb.connect(str(path)) for path in {warehouse_of(job.pipeline) for job in jobs}]
    try:
        done: queue.Queue[VendorLoad] = queue.Queue()
        for job in jobs:
            threading.Thread(target=_read, args=(job, done), name=f"read-{job.vendor}", daemon=True).start()
        for _ in jobs:
            job = done.get()
            if job.error is None:
                _write(job)
            yield job
    finally:
        for connection in held:
            connection.close()

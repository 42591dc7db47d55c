"""Handing memory a step has freed back to the machine.

The nightly job runs every step in one process (the in-process executor), so what a step
frees stays with that process: Arrow's memory pool (mimalloc) keeps the buffers dlt's
normalize freed, and glibc's malloc keeps freed heap for reuse. After the loads (the largest
step in Python) that is held while dbt builds in a process of its own beside it. A load of two
million rows through Arrow and pandas keeps about 220 MiB in the pool until it is released.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc

import psutil
import pyarrow as pa


def _malloc_trim() -> None:
    """glibc's `malloc_trim(0)`: return the free pages of every arena (nothing elsewhere)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name).malloc_trim(0)


def release_freed_memory() -> tuple[int, int]:
    """Collect garbage and return freed memory to the OS; the process's RSS before and after."""
    process = psutil.Process()
    before = process.memory_info().rss
    gc.collect()
    pa.default_memory_pool().release_unused()
    _malloc_trim()
    return before, process.memory_info().rss


def released_text(before: int, after: int) -> str:
    return f"process memory {before / 2**30:.2f} GiB -> {after / 2**30:.2f} GiB after returning what was freed"

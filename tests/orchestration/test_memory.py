"""Memory a step freed goes back to the machine, not kept by the nightly run's one process."""

from __future__ import annotations

import subprocess
import sys

FREE_AFTER_A_LOAD = """
import pyarrow as pa
from orchestration.memory import release_freed_memory

rows = [dict(a=i, b=str(i) * 10, c=float(i)) for i in range(1_000_000)]
table = pa.Table.from_pylist(rows)
frame = table.to_pandas()
del rows, table, frame
before, after = release_freed_memory()
print(before, after)
"""


def test_memory_freed_by_a_load_is_returned_to_the_machine() -> None:
    # A fresh interpreter: the test worker's own heap would blur the numbers.
    out = subprocess.run([sys.executable, "-c", FREE_AFTER_A_LOAD], check=True, capture_output=True, text=True)
    before, after = map(int, out.stdout.split())
    assert before - after > 50 * 2**20, f"held {before / 2**20:.0f} MiB, {after / 2**20:.0f} MiB after the release"

"""Run every benchmark in turn (`make bench`)."""

import sys

from benchmarks import activation_push, identity_stitch, ingest_events, marts_build, nightly_run, sandbox_world

BENCHMARKS = [sandbox_world, ingest_events, identity_stitch, activation_push, marts_build, nightly_run]

if __name__ == "__main__":
    for bench in BENCHMARKS:
        print(f"== {bench.__name__}")
        bench.main([])
    sys.exit(0)

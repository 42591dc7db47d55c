"""Run every benchmark in turn (`make bench`)."""

import argparse
import sys
import textwrap
from types import ModuleType

from benchmarks import activation_push, identity_stitch, ingest_events, marts_build, nightly_run, sandbox_world

BENCHMARKS = [sandbox_world, ingest_events, identity_stitch, activation_push, marts_build, nightly_run]


def summary(bench: ModuleType) -> str:
    """What a benchmark measures: the first paragraph of its docstring, on one line (the
    docstring is what its own `--help` prints, so the two cannot drift apart)."""
    return " ".join((bench.__doc__ or "").split("\n\n")[0].split())


def _description() -> str:
    listed = [
        textwrap.fill(
            summary(bench),
            width=100,
            initial_indent=f"  {bench.__name__.removeprefix('benchmarks.')}: ",
            subsequent_indent="      ",
        )
        for bench in BENCHMARKS
    ]
    return "\n".join(
        [
            "Run every benchmark below in turn, each at its full size: hours in all. One at a time,",
            "`python -m benchmarks.NAME --help` says what it measures and how to run it smaller.",
            "",
            "The benchmarks, in the order they run:",
            *listed,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=_description(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # No options of its own: parsed so that `--help` (or a mistyped option) stops here
    # instead of starting hours of full-size runs.
    parser.parse_args(argv)
    for bench in BENCHMARKS:
        print(f"== {bench.__name__}")
        bench.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())

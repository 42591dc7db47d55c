"""The identity stitch benchmark at a small size: it runs, prints its table, and its checks hold."""

from __future__ import annotations

import re

from benchmarks import identity_stitch


def _number(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in:\n{text}"
    return int(match.group(1).replace(",", ""))


def test_small_graph_prints_the_table_and_tessera_matches_connected_components(capsys, tmp_path):
    assert identity_stitch.main(["--nodes", "20000", "--keep", str(tmp_path)]) == 0
    out = capsys.readouterr().out

    for row in (
        "(a) Tessera, first run",
        "(a) Tessera, second run",
        "(b) scipy baseline, end to end",
        "(b') connected_components call alone",
    ):
        assert re.search(rf"^{re.escape(row)}.* \d+\.\d+x$", out, re.MULTILINE), out
    assert re.search(r"^target: .*: (met|MISSED) ", out, re.MULTILINE), out

    # the graph has what the benchmark claims: a long chain, repairs, shared devices
    chain = _number(r"chains: 1 of ([\d,]+) links", out)
    assert _number(r"largest component of person links: ([\d,]+) identifiers", out) >= chain + 1
    assert _number(r"limits check: ([\d,]+) components over the limits", out) > 0
    assert _number(r"([\d,]+) identifiers kept apart", out) > 0
    assert _number(r"([\d,]+) shared devices;", out) > 0

    assert re.search(r"^partition check: .*: ok$", out, re.MULTILINE), out
    assert re.search(r"^limits check: .*: ok$", out, re.MULTILINE), out
    assert re.search(r"^stable ids check: .*: ok$", out, re.MULTILINE), out

"""`python -m benchmarks` (`make bench`): `--help` lists the benchmarks and runs none of them;
without arguments every benchmark runs in turn, as before."""

from __future__ import annotations

import types

import pytest

from benchmarks import __main__ as bench_all


def test_help_lists_each_benchmark_and_what_it_measures(capsys, monkeypatch):
    ran = []
    for bench in bench_all.BENCHMARKS:
        monkeypatch.setattr(bench, "main", lambda argv, name=bench.__name__: ran.append(name))
    with pytest.raises(SystemExit) as exit_:
        bench_all.main(["--help"])
    out = capsys.readouterr().out

    assert exit_.value.code == 0
    assert ran == [], "--help starts no benchmark"
    flat = " ".join(out.split())
    for bench in bench_all.BENCHMARKS:
        name = bench.__name__.removeprefix("benchmarks.")
        assert f"{name}: {bench_all.summary(bench)}" in flat, out
    assert "Klaviyo push benchmark: 100,000 changed profiles" in flat


def test_an_unknown_option_runs_nothing(monkeypatch):
    ran = []
    for bench in bench_all.BENCHMARKS:
        monkeypatch.setattr(bench, "main", lambda argv, name=bench.__name__: ran.append(name))
    with pytest.raises(SystemExit) as exit_:
        bench_all.main(["--profiles", "10"])
    assert exit_.value.code == 2
    assert ran == []


def test_without_arguments_every_benchmark_runs_at_its_default_size(capsys, monkeypatch):
    calls = []
    fakes = [
        types.SimpleNamespace(__name__=f"benchmarks.b{i}", main=lambda argv, i=i: calls.append((i, argv)))
        for i in range(3)
    ]
    monkeypatch.setattr(bench_all, "BENCHMARKS", fakes)
    assert bench_all.main([]) == 0
    assert calls == [(0, []), (1, []), (2, [])]
    assert capsys.readouterr().out.splitlines() == ["== benchmarks.b0", "== benchmarks.b1", "== benchmarks.b2"]

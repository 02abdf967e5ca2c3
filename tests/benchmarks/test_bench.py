"""The benchmarks run and write valid results (``make bench QUICK=1``'s path, on CI-sized data); the harness turns
figures into ratios correctly. No figure is asserted: goals are reported by the benchmarks, never tested here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.harness import Goal, Result, Stats, interleaved
from benchmarks.run import BENCHMARKS, SMOKE
from tributary.config import REPO_ROOT


def test_quick_benchmarks_run_and_write_results_and_plots(tmp_path):
    out = tmp_path / "results"
    stale = tmp_path / "work" / "P1_scoring" / "mlflow.db"  # what a killed or earlier run leaves: starts afresh
    stale.parent.mkdir(parents=True)
    stale.write_text("not a database")
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--only", ",".join(SMOKE), "--out",
                           str(out), "--work", str(tmp_path / "work")], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert set(SMOKE) <= set(BENCHMARKS)
    for name in SMOKE:
        result = json.loads((out / f"{name}.json").read_text())
        assert result["benchmark"] == name and result["quick"] is True
        assert result["machine"]["cpus"] and result["versions"]["pyspark"] != "not installed"
        for figure, stats in result["figures"].items():
            assert len(stats["runs"]) >= 3, (name, figure)
            assert 0 < stats["min"] <= stats["median"] <= stats["max"], (name, figure, stats)
        for goal in result["goals"]:
            median = result["figures"][goal["figure"]]["median"]
            ratio = median / result["figures"][goal["baseline"]]["median"] if goal["baseline"] else median
            assert goal["measured"] == pytest.approx(ratio, rel=1e-3), goal
            assert goal["met"] in ((None,) if goal["target"] is None else (True, False)), goal
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"bench: {name} done" in done.stdout
    # Its Spark application logged its events and lineage in its own scratch, not in make run's var/.
    state = tmp_path / "work" / "P1_scoring" / "var"
    assert list((state / "spark-events").glob("eventlog_v2_local-*/events_*"))
    assert "tributary-bench-scoring" in (state / "lineage" / "spark.jsonl").read_text()


def test_goals_are_ratios_of_medians_or_absolute_medians():
    figures = {"fast": Stats("rows/s", [10, 30, 20]), "slow": Stats("rows/s", [4, 5, 6]),
               "t": Stats("s", [0.4, 0.6, 0.5])}
    goals = [Goal("fast/slow", "fast", "slow", 3.0), Goal("absolute", "t", "", 0.5, higher_is_better=False),
             Goal("report", "slow", "fast", None), Goal("missed", "slow", "fast", 1.0)]
    Result("x", "x", True, {}, figures, goals)
    assert figures["fast"].median == 20 and figures["fast"].min == 10 and figures["fast"].max == 30
    assert [(g.measured, g.met) for g in goals] == [(4.0, True), (0.5, True), (0.25, None), (0.25, False)]


def test_interleaved_methods_are_timed_in_rounds_after_untimed_ones():
    calls: list[str] = []
    seconds = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4  # a warm-up round, then three timed ones: never a-a-a, b-b-b
    assert list(seconds) == ["a", "b"] and all(len(runs) == 3 and min(runs) >= 0 for runs in seconds.values())
    assert interleaved({"a": lambda: calls.append("c")}, repeats=2, warmup=0)["a"] and calls[-2:] == ["c", "c"]


def test_a_goal_naming_an_unmeasured_figure_or_a_figure_without_runs_fails():
    with pytest.raises(ValueError, match="not measured: \\['other'\\]"):
        Result("x", "x", True, {}, {"a": Stats("s", [1.0])}, [Goal("g", "a", "other", 1.0)])
    with pytest.raises(ValueError, match="no runs"):
        Stats("s", [])


def test_an_unknown_benchmark_fails_with_the_known_ones():
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--only", "P9_nope"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown benchmark(s) ['P9_nope']" in done.stderr
    assert all(name in done.stderr for name in BENCHMARKS)


def test_the_readme_table_shows_the_committed_results():
    from benchmarks.report import readme_table, table

    assert readme_table() == table(), "run `make bench` (it rewrites the table), or benchmarks.report.update_readme()"
    assert "e+" not in table()  # large figures are written out (2,427 lines/s), never as 2.43e+03
    for path in (REPO_ROOT / "benchmarks" / "results").glob("*.json"):
        result = json.loads(path.read_text())
        assert result["benchmark"] in BENCHMARKS and result["quick"] is False, path
        assert all(len(stats["runs"]) >= 3 for stats in result["figures"].values()), path  # full runs repeat 3x
        assert f"| {result['benchmark']} |" in table()

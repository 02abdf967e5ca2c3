"""Run Tributary's benchmarks: ``make bench`` (full size, by hand) or ``make bench QUICK=1`` (CI-sized data).

Each benchmark runs in its own Python process (so one's imports, JVM or torch threads never warm or slow another),
writes ``<out>/<name>.json`` and ``<name>.png``, and prints its goals. The exit status is non-zero when a benchmark
fails to run, never because a goal was missed: goals are reported, not asserted (benchmarks/README.md).

    uv run python -m benchmarks.run                       # every benchmark, full size -> benchmarks/results/
    uv run python -m benchmarks.run --quick --out /tmp/b  # CI-sized
    uv run python -m benchmarks.run --only P5_dag_parse
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from benchmarks.harness import REPO_ROOT, RESULTS_DIR, write
from benchmarks.make_run import home_env
from benchmarks.report import update_readme

BENCHMARKS = {
    "P1_scoring": "benchmarks.scoring",
    "P2_features": "benchmarks.features",
    "P2s_skew": "benchmarks.skew",
    "P3_streaming": "benchmarks.streaming",
    "P4_make_run": "benchmarks.make_run",
    "P5_dag_parse": "benchmarks.dag_parse",
}
# What `make test`'s smoke test runs with --quick: the benchmarks whose CI-sized run takes seconds. P3 and P4 run five
# spark-submits (and P4 `make run`) even at their quick size, minutes on 2 cores beside the rest of the suite, so CI
# checks their pieces instead (tests/benchmarks/test_make_run.py, tests/spark_jobs/test_stream.py, the e2e test) and
# `make bench QUICK=1` runs them whole. P2 and P2s (a Spark session, bronze tables and 3 runs of each method, minutes
# too) are checked by tests/benchmarks/test_features_bench.py: the DuckDB baseline computes Spark's features.
SMOKE = ("P1_scoring", "P5_dag_parse")


def child_env(work: Path) -> dict[str, str]:
    """The benchmark's environment: ``work`` as its state directory (``make_run.home_env``, as P3 and P4 give their
    runs: its Spark event logs and OpenLineage events under work/var, so no state of ``make run`` is touched and its
    History Server and ``tributary lineage`` never see a benchmark's applications), this checkout importable by
    Spark's Python workers too, and an Airflow home of its own."""
    env = home_env(work)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["AIRFLOW_HOME"] = str(work / "airflow")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{work / 'airflow' / 'airflow.db'}"
    return env


def run_one(name: str, quick: bool, out: Path, work: Path) -> Path:
    """In this process: run benchmark ``name`` and write its results; returns the JSON's path."""
    started = time.monotonic()
    module = importlib.import_module(BENCHMARKS[name])
    work.mkdir(parents=True, exist_ok=True)
    return write(module.run(quick, work), out, started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI-sized data and fewer repeats")
    parser.add_argument("--only", default="", help=f"comma-separated benchmarks; of {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where results go (default %(default)s)")
    parser.add_argument("--work", type=Path, help="scratch space, a folder per benchmark, emptied before it runs "
                        "(default: a temporary directory, removed)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one benchmark in this process
    args = parser.parse_args(argv)
    if args.one:
        run_one(args.one, args.quick, args.out.resolve(), args.work.resolve())
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    failed = []
    with tempfile.TemporaryDirectory(prefix="tributary-bench-") as scratch:
        for name in names:
            work = (args.work or Path(scratch)) / name
            shutil.rmtree(work, ignore_errors=True)  # a re-run starts clean: no MLflow, Delta or Airflow state left
            print(f"bench: {name} ({'quick' if args.quick else 'full'}) ...", flush=True)
            t0 = time.monotonic()
            cmd = [sys.executable, "-m", "benchmarks.run", "--one", name, "--out", str(args.out), "--work", str(work),
                   *(["--quick"] if args.quick else [])]
            code = subprocess.run(cmd, cwd=REPO_ROOT, env=child_env(work), check=False).returncode
            if code:
                failed.append(name)
                print(f"bench: {name} FAILED (exit {code})", flush=True)
                continue
            result = json.loads((args.out / f"{name}.json").read_text())
            print(f"bench: {name} done in {time.monotonic() - t0:.0f} s", flush=True)
            for goal in result["goals"]:
                verdict = {True: "met", False: "MISSED", None: "reported"}[goal["met"]]
                print(f"  {goal['what']}: {goal['measured']} (target {goal['target']}): {verdict}", flush=True)
    if not args.quick and args.out.resolve() == RESULTS_DIR and len(failed) < len(names):
        update_readme()
        print("bench: benchmarks/README.md's table rewritten from benchmarks/results", flush=True)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""P5: DAG file parse time, measured the way Airflow 3's DAG processor parses.

The processor's manager has Airflow imported, pre-imports the ``airflow.*`` modules a file names
(``parsing_pre_import_modules``), then forks a child per file that builds a ``BundleDagBag`` of that one file. This
benchmark does the same: a parent with the processor's modules imported forks one child per parse, and the child
times ``BundleDagBag(file, bundle_path=dags/)`` (imports, DAG construction, no database). Baseline: an empty DAG
file, parsed the same way. A third figure times ``fraud_pipeline`` with the Kubernetes clients imported during the
parse, as they were before ``tributary.launcher`` deferred them (the before of that change, in the same run).

Run alone: ``uv run python -m benchmarks.run --only P5_dag_parse``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO_ROOT, Goal, Result, Stats

NAME = "P5_dag_parse"
TITLE = "DAG file parse time, as the DAG processor parses"
DAGS = REPO_ROOT / "dags"
EMPTY_DAG = '''from datetime import datetime

from airflow.sdk import DAG

with DAG("empty", schedule=None, start_date=datetime(2026, 1, 1)):
    pass
'''
KUBE_CLIENT = "airflow.providers.cncf.kubernetes.kube_client"


def parse_in_child(path: Path, bundle: Path, eager: tuple[str, ...] = ()) -> dict[str, Any]:
    """Fork, and in the child time importing ``eager`` then parsing ``path``; returns the child's report."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: parse, report on the pipe, exit without running the parent's atexit handlers
        os.close(read_end)
        try:
            import importlib

            from airflow.dag_processing.dagbag import BundleDagBag

            t0 = time.perf_counter()
            for module in eager:
                importlib.import_module(module)
            bag = BundleDagBag(dag_folder=str(path), bundle_path=bundle, bundle_name="bench", load_op_links=False)
            report = {"s": time.perf_counter() - t0, "dags": sorted(bag.dag_ids),
                      "errors": {k: str(v)[-800:] for k, v in bag.import_errors.items()}}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails with it
            report = {"error": repr(exc)[-800:]}
        os.write(write_end, json.dumps(report).encode())
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    report = json.loads(b"".join(chunks) or b'{"error": "the child wrote nothing"}')
    if report.get("error") or report.get("errors") or not report.get("dags"):
        raise RuntimeError(f"parsing {path} failed: {report}")
    return report


def run(quick: bool, work: Path) -> Result:
    """Parse each DAG file and the empty one ``repeats`` times, each in a fresh fork of a warmed parent."""
    import structlog

    from airflow.dag_processing.processor import _pre_import_airflow_modules

    repeats = 3 if quick else 10
    (work / "empty").mkdir(parents=True, exist_ok=True)
    empty = work / "empty" / "empty_dag.py"
    empty.write_text(EMPTY_DAG)
    cases = {
        "empty DAG file": (empty, empty.parent, ()),
        "fraud_pipeline": (DAGS / "fraud_pipeline.py", DAGS, ()),
        "fraud_stream": (DAGS / "fraud_stream.py", DAGS, ()),
        "fraud_pipeline, kube clients eager (before)": (DAGS / "fraud_pipeline.py", DAGS, (KUBE_CLIENT,)),
    }
    log = structlog.get_logger()
    for path, _, _ in cases.values():
        _pre_import_airflow_modules(str(path), log)  # what the manager does before it forks
    figures, dags = {}, {}
    for name, (path, bundle, eager) in cases.items():
        parse_in_child(path, bundle, eager)  # warm: the page cache and .pyc files, as a running processor has
        reports = [parse_in_child(path, bundle, eager) for _ in range(repeats)]
        figures[name] = Stats("s", [round(r["s"], 4) for r in reports])
        dags[name] = reports[0]["dags"]
    return Result(
        name=NAME, title=TITLE, quick=quick,
        data={"files": {name: str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path.name)
                        for name, (path, _, _) in cases.items()}, "dags": dags, "repeats": repeats,
              "profile": os.environ.get("TRIBUTARY_PROFILE", "local")},
        figures=figures,
        goals=[
            Goal("fraud_pipeline parses in < 0.5 s", "fraud_pipeline", "", 0.5, higher_is_better=False),
            Goal("fraud_stream parses in < 0.5 s", "fraud_stream", "", 0.5, higher_is_better=False),
            Goal("fraud_pipeline / empty DAG file", "fraud_pipeline", "empty DAG file", None, higher_is_better=False),
            Goal("deferred kube clients: after / before", "fraud_pipeline",
                 "fraud_pipeline, kube clients eager (before)", 1.0, higher_is_better=False),
        ],
        notes=["Times are seconds inside the forked child, from the start of the parse to the DagBag built; the "
               "parent has Airflow and the processor's pre-imports loaded, as the DAG processor's manager does.",
               "The ratio to the empty DAG file has no target: it says how much of a parse is Tributary's own "
               "imports and DAG construction."],
    )

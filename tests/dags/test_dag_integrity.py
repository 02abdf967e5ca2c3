"""DAG files are cheap and safe to import, follow our conventions, and are wiring only."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from tributary.config import REPO_ROOT

DAGS_DIR = REPO_ROOT / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py"))
EXPECTED_DAGS = {"fraud_pipeline", "fraud_stream"}


@pytest.fixture(scope="module")
def dagbag():
    """Parse dags/ the way the DAG processor does, counting DB queries and refusing network connections."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    queries: list[str] = []

    def count(conn, cursor, statement, *args):
        queries.append(statement)

    def no_network(self, address):
        raise AssertionError(f"a DAG opened a connection to {address} at parse time")

    event.listen(Engine, "before_cursor_execute", count)
    real_connect = socket.socket.connect
    socket.socket.connect = no_network
    sys.path.insert(0, str(DAGS_DIR))  # the processor puts the bundle root on sys.path
    try:
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(str(DAGS_DIR))
    finally:
        socket.socket.connect = real_connect
        event.remove(Engine, "before_cursor_execute", count)
        sys.path.remove(str(DAGS_DIR))
    bag.parse_queries = queries
    return bag


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == EXPECTED_DAGS


def test_no_db_queries_at_parse_time(dagbag):
    assert dagbag.parse_queries == []


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_conventions(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.catchup is False
    assert "tributary" in dag.tags
    assert dag.doc_md and len(dag.doc_md) > 100
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        assert task.owner == "data-platform", task.task_id
        assert task.retries >= 2, task.task_id


def test_pipeline_shape(dagbag):
    dag = dagbag.dags["fraud_pipeline"]
    order = ["ingest", "features", "train", "promote", "score"]
    assert [t.task_id for t in dag.topological_sort()] == order
    for upstream, downstream in zip(order, order[1:]):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert {"batch_id", "promote_version", "epochs", "seed"} <= set(dag.params)
    outlets = {a.name for a in dag.get_task("ingest").outlets}
    assert {"bronze_transactions", "quarantine_transactions"} <= outlets


def dag_params(dag) -> dict:
    return {name: dag.params.get_param(name) for name in dag.params}


def _required_in_trigger_form(schema: dict) -> bool:
    """Airflow 3's trigger form (its FlexibleForm) marks a field required when the param's schema has a type and that
    type does not include "null"; a text field left or made empty is sent as null."""
    kind = schema.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_the_trigger_form_as_it_opens_is_valid(dagbag, dag_id):
    """Every param's default passes its own schema, and no required field opens empty: the form triggers untouched
    (a default of "" in a "string" field was marked required and kept Trigger disabled)."""
    for name, param in dag_params(dagbag.dags[dag_id]).items():
        assert param.resolve() == param.value, name  # raises ParamValidationError when the default is invalid
        if _required_in_trigger_form(param.schema):
            assert param.value not in (None, ""), f"{dag_id}.{name}: required in the trigger form, empty by default"


def test_an_untouched_trigger_ingests_everything_landed(dagbag):
    """batch_id is optional: left empty, ingest's argument names no batch folder (everything landed); typed in, that
    folder. The argument rendered with the DAG's own template environment, as the worker renders it."""
    dag = dagbag.dags["fraud_pipeline"]
    param = dag_params(dag)["batch_id"]
    (arg,) = [a for a in dag.get_task("ingest").application_args if a.startswith("--batch-id=")]
    env = dag.get_template_env()
    for typed, expected in ((param.resolve(), "--batch-id="), ("2026-11-01-seed42", "--batch-id=2026-11-01-seed42")):
        assert env.from_string(arg).render(params={"batch_id": param.resolve(value=typed)}) == expected


def test_features_and_score_work_on_the_runs_data_interval(dagbag):
    """A scheduled run's data interval is the day before it (an empty one was the "@daily" trigger timetable's), and
    features and score get it as --start/--end, or the start/end params instead; training gets its own window, the
    train_days before the interval's end; a full refresh, or a run with no interval, gets none: everything.
    Rendered with the DAG's own template environment, as the worker renders them."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag = dagbag.dags["fraud_pipeline"]
    due = datetime(2026, 12, 3, 6, tzinfo=timezone.utc)
    scheduler_view = DagSerialization.from_dict(DagSerialization.to_dict(dag))  # the timetable the scheduler runs
    interval = scheduler_view.timetable.infer_manual_data_interval(run_after=due)
    midnight = datetime(2026, 12, 3, tzinfo=timezone.utc)
    assert (interval.start, interval.end) == (midnight - timedelta(days=1), midnight)
    env = dag.get_template_env()
    defaults = {name: param.resolve() for name, param in dag_params(dag).items()}

    def rendered(task_id: str, full_refresh: bool, bounds: tuple | None, **params) -> list[str]:
        start, end = bounds or (None, None)
        context = {"params": {**defaults, "full_refresh": full_refresh, **params}, "data_interval_start": start,
                   "data_interval_end": end, "dag_run": SimpleNamespace(run_after=due)}
        return [env.from_string(arg).render(**context) for arg in dag.get_task(task_id).application_args
                if arg.startswith(("--start", "--end", "--as-of", "--window"))]

    day = (interval.start, interval.end)
    for task_id in ("features", "score"):
        assert rendered(task_id, False, day) == ["--start=2026-12-02T00:00:00+00:00", "--end=2026-12-03T00:00:00+00:00"]
        assert rendered(task_id, True, day) == ["--start=", "--end="]
        assert rendered(task_id, False, None) == ["--start=", "--end="]
        assert rendered(task_id, False, day, start="2026-11-01T00:00:00+00:00", end="2026-11-15T00:00:00+00:00") == [
            "--start=2026-11-01T00:00:00+00:00", "--end=2026-11-15T00:00:00+00:00"]
    # training keeps its own window: the whole table, or train_days before the interval's end
    assert rendered("train", False, day) == ["--window-end=2026-12-03T00:00:00+00:00", "--window-days="]
    assert rendered("train", False, day, train_days=90) == ["--window-end=2026-12-03T00:00:00+00:00",
                                                           "--window-days=90"]
    assert rendered("train", False, day, end="2026-11-15T00:00:00+00:00", train_days=30) == [
        "--window-end=2026-11-15T00:00:00+00:00", "--window-days=30"]
    assert rendered("train", True, day, train_days=90) == ["--window-end=", "--window-days="]
    assert rendered("ingest", False, day) == ["--as-of=2026-12-03T06:00:00+00:00"]


# What the Airflow image lacks: the jobs group of uv.lock (docker/airflow/requirements.txt is the airflow group) and
# the job code (the Dockerfile copies dags/, tributary/ and conf/, not spark_jobs/).
NOT_IN_THE_AIRFLOW_IMAGE = ("pyspark", "py4j", "torch", "delta", "mlflow", "spark_jobs")
_PARSE_WITHOUT_JOB_LIBRARIES = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the Airflow image)")
sys.meta_path.insert(0, Absent())
from airflow.dag_processing.dagbag import DagBag
bag = DagBag({dags!r})
print(sorted(bag.dags), bag.import_errors)
"""


@pytest.mark.parametrize("profile", ["local", "kind"])
def test_dags_parse_without_spark_torch_or_mlflow_as_in_the_airflow_image(profile):
    """The DAG processor in the Airflow image has no pyspark, torch, Delta, MLflow or job code: the DAG files and
    everything they import (the platform package: launcher, profile, registry, Spark's conf, the SparkApplication
    renderer) parse without them, on a spark-submit profile and on a Kubernetes one."""
    code = _PARSE_WITHOUT_JOB_LIBRARIES.format(blocked=set(NOT_IN_THE_AIRFLOW_IMAGE), dags=str(DAGS_DIR))
    env = {**os.environ, "TRIBUTARY_PROFILE": profile, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == f"{sorted(EXPECTED_DAGS)} {{}}", done.stdout[-3000:]


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_are_wiring_only(path: Path):
    """No Spark, no pandas, no transforms in DAG files: they import the SDK and the launcher only."""
    tree = ast.parse(path.read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert not {m for m in imported if m.split(".")[0] in {"pyspark", "pandas", "torch", "mlflow", "delta"}}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)], "DAG files define no functions"

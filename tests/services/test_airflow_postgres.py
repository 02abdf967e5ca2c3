"""`make up`'s services for real (scripts/up.py): fraud_pipeline triggered through Airflow's REST API and run by its
scheduler with the LocalExecutor, Airflow's metadata and MLflow's registry on PostgreSQL, every task a spark-submit
to a Spark standalone cluster; PostgreSQL restarted while a task runs; then the registry's aliases, tags and
rollback through the MLflow server.

The module's fixture starts everything (PostgreSQL, the cluster, MLflow, Airflow's four components) and stops it by
process group afterwards, also on failure."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.pipeline_data import load_script

up_script = load_script("up")
postgres_server = load_script("postgres_server")
airflow_api = load_script("airflow_api")

DAG = "fraud_pipeline"
TASKS = ["ingest", "features", "train", "promote", "score"]
IN_FLIGHT = "train"  # the task running when the database restarts
MODEL = "tributary-fraud"


@pytest.fixture(scope="module")
def up():
    base = Path(tempfile.mkdtemp(prefix="tributary-up-"))
    base.chmod(0o711)  # PostgreSQL's user (postgres, when this runs as root) must reach its state below
    home = base / "home"
    home.mkdir()
    ports = up_script.Ports(airflow=18380, mlflow=15380, postgres=15433, spark=17277, spark_web=18290)
    # Only the run the test triggers: unpausing @daily fraud_pipeline must not also start the latest interval's.
    extra = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    try:
        with up_script.services(home, "postgres", ports, rows=2000, pg_state=base / "pg", extra_env=extra) as s:
            print(f"services started, seconds each: {s.start_s}")
            yield s
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _tolerant(call, *args):
    """``call(*args)``, or None while the API cannot answer (its database is restarting)."""
    try:
        return call(*args)
    except (airflow_api.AirflowAPIError, urllib.error.URLError, TimeoutError, ConnectionError):
        return None


def _states(api, run_id: str) -> dict[str, dict] | None:
    tis = _tolerant(api.task_instances, DAG, run_id)
    return None if tis is None else {t["task_id"]: t for t in tis}


@pytest.fixture(scope="module")
def pipeline_run(up):
    """Trigger the run, restart PostgreSQL while ``IN_FLIGHT`` runs, wait until the run ends."""
    api = up.api()
    api.wait_for_dag(DAG)
    api.unpause(DAG)
    run_id = api.trigger(DAG, datetime.now(timezone.utc), {"batch_id": up_script.SAMPLE_BATCH})
    deadline = time.monotonic() + 1500
    restart = None
    state = None
    while time.monotonic() < deadline:
        tis = _states(api, run_id) or {}
        if restart is None and tis.get(IN_FLIGHT, {}).get("state") == "running":
            time.sleep(3)  # well inside the task: its spark-submit has started
            t0 = time.monotonic()
            postgres_server.stop(Path(up.postgres.state))
            down_at = time.monotonic()
            time.sleep(10)
            postgres_server.start(Path(up.postgres.state))
            restart = {"stop_s": round(down_at - t0, 2), "down_s": round(time.monotonic() - down_at, 2)}
            print(f"PostgreSQL restarted while {IN_FLIGHT} ran: {restart}")
        state = _tolerant(api.run_state, DAG, run_id)
        if state in airflow_api.FINISHED:
            break
        time.sleep(5)
    tis = _states(api, run_id)
    print(f"run {run_id}: {state}; tries {({t: ti['try_number'] for t, ti in (tis or {}).items()})}; "
          f"restarts of components {up.supervisor.restarts}")
    return {"run_id": run_id, "state": state, "tasks": tis, "restart": restart}


def test_the_run_succeeds_through_the_scheduler_across_a_database_restart(up, pipeline_run):
    assert pipeline_run["restart"] is not None, f"{IN_FLIGHT} was never seen running"
    tasks = pipeline_run["tasks"]
    logs = "\n".join(_tolerant(up.api().task_log, DAG, pipeline_run["run_id"], t, tasks[t]["try_number"]) or ""
                     for t in tasks if tasks[t]["state"] != "success")
    assert pipeline_run["state"] == "success", (pipeline_run, logs[-6000:])
    assert sorted(tasks) == sorted(TASKS)
    # Every task finished: none left running, queued or up_for_retry for the UI to puzzle over. The task in flight
    # during the restart either went through on its first try or failed and succeeded on a retry (retries=2).
    assert {t["state"] for t in tasks.values()} == {"success"}, tasks
    assert all(1 <= t["try_number"] <= 3 for t in tasks.values()), tasks
    assert all(t["try_number"] == 1 for name, t in tasks.items() if TASKS.index(name) < TASKS.index(IN_FLIGHT))


def test_airflow_ran_on_postgres_with_the_local_executor(up, pipeline_run):
    assert up.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    server = postgres_server.load(Path(up.postgres.state))
    ran = server.psql(f"SELECT state FROM dag_run WHERE run_id = '{pipeline_run['run_id']}'", "airflow", "airflow")
    assert ran.stdout.strip() == "success", ran.stderr
    # One scheduler job row per scheduler process: the first, and one for each restart after the database came back.
    jobs = server.psql("SELECT count(*) FROM job WHERE job_type = 'SchedulerJob'", "airflow", "airflow")
    assert int(jobs.stdout) == 1 + up.supervisor.restarts["scheduler"], jobs
    executor = subprocess.run([sys.executable, "-m", "airflow", "config", "get-value", "core", "executor"],
                              env=up.env, capture_output=True, text=True, timeout=120)
    assert executor.stdout.strip() == "LocalExecutor", executor.stderr[-2000:]
    scheduler_log = (up.logs / "scheduler.log").read_text(errors="replace")
    finished = [line for line in scheduler_log.splitlines()
                if "TaskInstance Finished" in line and pipeline_run["run_id"] in line]
    assert finished and all("executor=LocalExecutor(parallelism=4)" in line for line in finished), finished


def test_every_task_ran_on_the_standalone_cluster(up, pipeline_run):
    status = up.cluster.status()
    names = {a["name"] for a in status["completedapps"] + status["activeapps"]}
    for task in ("ingest", "features", "train", "score"):  # promote needs no executors, still a Spark driver
        assert any(n.startswith(f"tributary-{task}") for n in names), (task, sorted(names))


def _promote(up, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spark_jobs.promote", "--profile", "standalone", *args],
                          env=up.env, capture_output=True, text=True, timeout=300)


def test_registry_on_postgres_aliases_tags_and_rollback(up, pipeline_run):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=up.mlflow_url, registry_uri=up.mlflow_url)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.tags["promotion.decision"] == "promoted", champion.tags
    # A second version of the same model (as a retraining would register), promoted by hand, then rolled back.
    # MLflow 3 refuses a models:/ source without the logged model's id, which the version entity leaves empty.
    model_id = champion.model_id or champion.source.removeprefix("models:/")
    second = client.create_model_version(MODEL, champion.source, champion.run_id, model_id=model_id)
    done = _promote(up, "--version", second.version)
    assert done.returncode == 0, done.stderr[-3000:]
    now = client.get_model_version_by_alias(MODEL, "champion")
    assert now.version == second.version and now.tags["promotion.reason"] == "manual"
    assert now.tags["promotion.champion_version_before"] == champion.version
    done = _promote(up, "--rollback")
    assert done.returncode == 0, done.stderr[-3000:]
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion.version
    assert client.get_model_version(MODEL, second.version).tags["promotion.rolled_back_to"] == champion.version
    # All of it is in MLflow's PostgreSQL database, not in a file.
    server = postgres_server.load(Path(up.postgres.state))
    aliases = server.psql(f"SELECT alias, version FROM registered_model_aliases WHERE name = '{MODEL}'",
                          "mlflow", "mlflow")
    assert f"champion|{champion.version}" in aliases.stdout.split(), aliases  # beside training's @challenger

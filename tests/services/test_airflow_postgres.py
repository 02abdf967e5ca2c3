"""`make up`'s services for real (scripts/up.py): fraud_pipeline triggered from the trigger form in a browser and run by
its scheduler with the LocalExecutor, Airflow's metadata and MLflow's registry on PostgreSQL, every task a spark-submit
to a Spark standalone cluster; PostgreSQL restarted while a task runs; then the registry's aliases, tags and
rollback through the MLflow server.

The package's fixtures (conftest.py) start everything (PostgreSQL, the cluster, MLflow, Airflow's four components)
and stop it by process group afterwards, also on failure; test_ui.py goes on from this run in the same browser."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.pipeline_data import load_script
from tests.services.conftest import DAG, IN_FLIGHT, TASKS, tolerant

up_script = load_script("up")
postgres_server = load_script("postgres_server")
airflow_api = load_script("airflow_api")

MODEL = "tributary-fraud"


def test_the_run_succeeds_through_the_scheduler_across_a_database_restart(up, pipeline_run):
    assert pipeline_run["restart"] is not None, f"{IN_FLIGHT} was never seen running"
    tasks = pipeline_run["tasks"]
    logs = "\n".join(tolerant(up.api().task_log, DAG, pipeline_run["run_id"], t, tasks[t]["try_number"]) or ""
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


def _history(up, path: str):
    with urllib.request.urlopen(f"{up.history_url}/api/v1{path}", timeout=30) as resp:
        return json.load(resp)


def test_the_history_server_replays_every_spark_job_of_the_run(up, pipeline_run):
    """Each task's driver wrote an event log under the services' var/spark-events, and `make up`'s History Server
    lists it as a finished application whose jobs and stages it can show."""
    assert up.history_url == "http://127.0.0.1:18480", up.history_url
    wanted = {f"tributary-{task}" for task in TASKS}
    deadline = time.monotonic() + 60  # the server looks for new logs every 5 s
    while True:
        apps = _history(up, "/applications?status=completed&limit=1000")
        names = {a["name"] for a in apps}
        if wanted <= names or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert wanted <= names, sorted(names)
    features = next(a for a in apps if a["name"] == "tributary-features")
    assert all(attempt["completed"] for attempt in features["attempts"]), features
    jobs = _history(up, f"/applications/{features['id']}/jobs")
    assert jobs and all(job["status"] == "SUCCEEDED" for job in jobs), [(j["jobId"], j["status"]) for j in jobs]
    logs = list((Path(up.env["TRIBUTARY_HOME"]) / "var" / "spark-events").iterdir())
    assert len(logs) >= len(wanted), logs


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

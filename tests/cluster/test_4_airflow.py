"""Airflow outside the cluster drives it, as a managed Airflow would: this host's Airflow, the same DAG files,
profile kind, and a Kubernetes connection from a kubeconfig holding the chart's Airflow worker identity
(dags/tributary/local_env.py). A task's SparkApplication succeeds with the driver's log in the task log; a failing
main fails the task with the driver's error, not a hang."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from spark_jobs.config import REPO_ROOT, load_profile
from tests.cluster.live import JOBS_NS, RELEASE_NS, Live, run

sys.path.insert(0, str(REPO_ROOT / "dags"))
from tributary.local_env import airflow_env  # noqa: E402

AIRFLOW = str(REPO_ROOT / ".venv" / "bin" / "airflow")


@pytest.fixture(scope="module")
def airflow(platform: Live, tmp_path_factory) -> dict[str, str]:
    """Airflow's environment: the chart's tributary-env ConfigMap (what its pods get), SQLite, the kubeconfig."""
    env = airflow_env(load_profile("kind"), tmp_path_factory.mktemp("airflow"), base={},
                      kubeconfig=platform.airflow_kubeconfig())
    env.update(platform.get("configmap", "tributary-env", "-n", RELEASE_NS)["data"])
    env["PYTHONPATH"] = f"{REPO_ROOT}:{REPO_ROOT / 'dags'}"
    env["KUBECONFIG"] = str(platform.airflow_kubeconfig())  # no admin identity anywhere in Airflow's reach
    migrate = run([AIRFLOW, "db", "migrate"], env=env, timeout=600)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    return env


def task(env: dict[str, str], task_id: str, params: str, platform: Live) -> tuple[int, str, float]:
    t0 = time.monotonic()
    proc = run([AIRFLOW, "tasks", "test", "fraud_pipeline", task_id, "2026-12-01T00:00:00+00:00", "-t", params],
               env=env, timeout=1200)
    platform.sample_memory()
    return proc.returncode, proc.stdout + proc.stderr, round(time.monotonic() - t0, 1)


def test_an_airflow_task_runs_its_sparkapplication_on_the_cluster(platform: Live, airflow):
    code, log, seconds = task(airflow, "ingest", '{"batch_id": "live-batch-1"}', platform)
    assert code == 0 and re.search(r"new_state=success\b", log), log[-5000:]
    assert "TRIBUTARY_RESULT" in log  # the driver's log, streamed into the task's
    assert '"rows_ingested": 0' in log  # the batch test_3 ingested: nothing new, nothing lost
    platform.report["airflow_ingest_task_s"] = seconds
    apps = platform.get("sparkapplications", "-n", JOBS_NS)["items"]
    assert any(a["metadata"]["name"].startswith("tributary-ingest-") and a["metadata"]["name"].endswith("-1")
               and a["status"]["applicationState"]["state"] == "COMPLETED" for a in apps)


def test_a_failing_application_fails_the_airflow_task_with_the_drivers_error(platform: Live, airflow):
    _, log, seconds = task(airflow, "ingest", '{"batch_id": "no-such-batch-airflow"}', platform)
    # `airflow tasks test` exits 0 whatever the task did; the task instance's new state is the verdict. The task
    # has retries, so a failed try becomes up_for_retry (the retry would submit a new application).
    assert "Task failed with exception" in log
    assert re.search(r"new_state=(up_for_retry|failed)\b", log), log[-3000:]
    assert "nothing landed at s3a://tributary-lake/landing/batch/no-such-batch-airflow" in log
    platform.report["airflow_failing_task_s"] = seconds
    assert seconds < 600

"""`make up`'s metrics, after the package's pipeline run: Airflow's StatsD metrics through statsd_exporter and
MLflow's /metrics serve every metric the Grafana dashboard's Airflow and MLflow panels query (parsed by a PromQL
parser, tests/grafana.py), and they count what really happened: each task of the run finished successfully, the run
itself took as long as Airflow says, MLflow answered the jobs' requests."""

from __future__ import annotations

import time
import urllib.request

from tests.grafana import PLATFORM, charted, exposed, samples
from tests.services.conftest import DAG, TASKS


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read().decode()


def _airflow_and_mlflow(up) -> tuple[str, str]:
    return _get(f"{up.metrics_url}/metrics"), _get(f"{up.mlflow_url}/metrics")


def test_airflow_and_mlflow_serve_every_metric_the_dashboard_charts_for_them(up, pipeline_run):
    wanted = charted(PLATFORM)
    assert any(n.startswith("airflow_") for n in wanted) and any(n.startswith("mlflow_") for n in wanted), wanted
    deadline = time.monotonic() + 60  # StatsD is fire-and-forget UDP: give the last packets a moment
    while True:
        airflow, mlflow = _airflow_and_mlflow(up)
        missing = {name: title for name, title in wanted.items() if name not in exposed(airflow) | exposed(mlflow)}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert not missing, f"queried by the dashboard, served by neither make up's statsd_exporter nor MLflow: {missing}"


def test_the_metrics_count_the_run(up, pipeline_run):
    airflow, mlflow = _airflow_and_mlflow(up)
    finished = {labels["task_id"] for name, labels, value in samples(airflow)
                if name == "airflow_ti_finish" and labels.get("dag_id") == DAG and labels.get("state") == "success"
                and value >= 1}
    assert set(TASKS) <= finished, sorted(finished)
    durations = {labels["task_id"]: value for name, labels, value in samples(airflow)
                 if name == "airflow_task_duration_count" and labels.get("dag_id") == DAG}
    assert all(durations.get(task, 0) >= 1 for task in TASKS), durations
    runs = [value for name, labels, value in samples(airflow)
            if name == "airflow_dagrun_duration_success_count" and labels.get("dag_id") == DAG]
    assert runs and runs[0] >= 1, runs
    assert sum(v for n, _, v in samples(airflow) if n == "airflow_scheduler_heartbeat") > 0
    served = sum(value for name, labels, value in samples(mlflow)
                 if name == "mlflow_http_request_total" and labels.get("status", "").startswith("2"))
    assert served > 0, "MLflow served no request the jobs made"

"""`make up`'s services (scripts/up.py), started once for the package: PostgreSQL, a Spark standalone cluster, the
MLflow server and Airflow's four components, on ports of their own, stopped by process group afterwards (also on
failure); and one headless Chromium, logged in to that Airflow as a person is, with the credentials `make up` prints.

test_airflow_postgres.py triggers its run from the browser's trigger form as it opens and restarts PostgreSQL under it;
test_ui.py goes on in the same browser: the grid, a failing task, MLflow's UI; test_metrics.py
reads Airflow's and MLflow's metrics after the run."""

from __future__ import annotations

import shutil
import tempfile
import time
import urllib.error
from pathlib import Path

import pytest

from tests.browser import chromium
from tests.pipeline_data import load_script
from tests.services.ui import AirflowUI

up_script = load_script("up")
postgres_server = load_script("postgres_server")
airflow_api = load_script("airflow_api")

DAG = "fraud_pipeline"
TASKS = ["ingest", "features", "train", "promote", "score"]
IN_FLIGHT = "train"  # the task running when the database restarts


@pytest.fixture(scope="package")
def up():
    base = Path(tempfile.mkdtemp(prefix="tributary-up-"))
    base.chmod(0o711)  # PostgreSQL's user (postgres, when this runs as root) must reach its state below
    home = base / "home"
    home.mkdir()
    ports = up_script.Ports(airflow=18380, mlflow=15380, postgres=15433, spark=17277, spark_web=18290,
                            spark_history=18480, metrics=19402, statsd=19425)
    # Only the runs the tests trigger: unpausing @daily fraud_pipeline must not also start the latest interval's.
    extra = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    try:
        with up_script.services(home, "postgres", ports, rows=2000, pg_state=base / "pg", extra_env=extra) as s:
            print(f"services started, seconds each: {s.start_s}")
            yield s
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="package")
def airflow_ui(up):
    """Airflow's UI in headless Chromium, logged in as `make up`'s admin."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        ui = AirflowUI(page, up.airflow_url)
        ui.login(up_script.ADMIN_USER, up.password)
        yield ui


def tolerant(call, *args):
    """``call(*args)``, or None while the API cannot answer (its database is restarting)."""
    try:
        return call(*args)
    except (airflow_api.AirflowAPIError, urllib.error.URLError, TimeoutError, ConnectionError):
        return None


def states(api, run_id: str) -> dict[str, dict] | None:
    tis = tolerant(api.task_instances, DAG, run_id)
    return None if tis is None else {t["task_id"]: t for t in tis}


@pytest.fixture(scope="package")
def pipeline_run(up, airflow_ui):
    """Trigger the run in the browser with the trigger form as it opens, nothing typed (no param is required with an
    empty default, so Trigger is enabled; the form unpauses the DAG): the run ingests everything landed, the
    services' sample batch. Restart PostgreSQL while ``IN_FLIGHT`` runs, wait until the run ends. (A typed
    ``batch_id`` reaching the tasks is test_ui.py's failing run: ingest quotes what was typed.)"""
    api = up.api()
    api.wait_for_dag(DAG)
    dialog = airflow_ui.open_trigger_form(DAG)
    form = {"errors": airflow_ui.form_errors(dialog),
            "trigger_enabled": dialog.get_by_test_id("trigger-dag-submit").is_enabled()}
    assert form == {"errors": [], "trigger_enabled": True}, f"the trigger form as it opens is not valid: {form}"
    run = airflow_ui.submit(dialog, shot="02-trigger-form-as-it-opens")
    run_id = run["dag_run_id"]
    deadline = time.monotonic() + 1500
    restart = None
    state = None
    while time.monotonic() < deadline:
        tis = states(api, run_id) or {}
        if restart is None and tis.get(IN_FLIGHT, {}).get("state") == "running":
            time.sleep(3)  # well inside the task: its spark-submit has started
            t0 = time.monotonic()
            postgres_server.stop(Path(up.postgres.state))
            down_at = time.monotonic()
            time.sleep(10)
            postgres_server.start(Path(up.postgres.state))
            restart = {"stop_s": round(down_at - t0, 2), "down_s": round(time.monotonic() - down_at, 2)}
            print(f"PostgreSQL restarted while {IN_FLIGHT} ran: {restart}")
        state = tolerant(api.run_state, DAG, run_id)
        if state in airflow_api.FINISHED:
            break
        time.sleep(5)
    tis = states(api, run_id)
    print(f"run {run_id}: {state}; tries {({t: ti['try_number'] for t, ti in (tis or {}).items()})}; "
          f"restarts of components {up.supervisor.restarts}")
    return {"run_id": run_id, "state": state, "tasks": tis, "restart": restart, "triggered": run, "form": form}

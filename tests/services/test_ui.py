"""The Airflow and MLflow UIs of `make up`, in headless Chromium, the way a person uses them (issue 12): the run
test_airflow_postgres.py triggered from the form as it opens (nothing typed: no error, Trigger enabled) shows
success in the grid; a run with a typed batch that never landed fails in the UI with its error in the log (not a
hang, not three retries); MLflow's UI shows the registered model's ``@champion`` and the training run's plots. Each
step leaves a screenshot under var/ui/."""

from __future__ import annotations

import pytest

from tests.browser import screenshot
from tests.services.conftest import DAG, TASKS
from tests.services.ui import MlflowUI

MODEL = "tributary-fraud"


def test_the_trigger_form_as_it_opens_runs_the_pipeline_to_success_in_the_grid(airflow_ui, pipeline_run):
    """Nothing typed: the form opened valid (no param is required with an empty default) with Trigger enabled
    (the fixture checks both before pressing it), the run went in with no ``batch_id``, so it ingested everything
    landed, and the grid shows every task succeeded."""
    assert pipeline_run["form"] == {"errors": [], "trigger_enabled": True}, pipeline_run["form"]
    triggered = pipeline_run["triggered"]
    assert triggered["triggered_by"] == "ui" and triggered["conf"]["batch_id"] is None, triggered["conf"]
    states = airflow_ui.watch_grid(DAG, pipeline_run["run_id"], timeout=60)
    screenshot(airflow_ui.page, "03-grid-success")
    assert states == {task: "success" for task in TASKS}, states
    assert airflow_ui.run_state(DAG, pipeline_run["run_id"]) == "success"


def test_a_failing_task_shows_as_failed_with_its_error_in_the_log(airflow_ui, pipeline_run, up):
    """A batch id with a typo no landed batch can have (a space): ingest refuses it as a usage error (exit status
    2), so the task fails on its first try instead of being retried the same way, and its log in the UI says what
    is wrong."""
    run = airflow_ui.trigger(DAG, {"batch_id": "batch 0001"}, shot="04-trigger-form-typo")
    states = airflow_ui.watch_grid(DAG, run["dag_run_id"], timeout=600, poll=5)
    assert states == {"ingest": "failed", **{t: "upstream_failed" for t in TASKS[1:]}}, states
    screenshot(airflow_ui.page, "05-grid-failed")
    assert airflow_ui.run_state(DAG, run["dag_run_id"]) == "failed"
    log = airflow_ui.task_log(DAG, run["dag_run_id"], "ingest", "is not a landing batch id")
    screenshot(airflow_ui.page, "06-failed-task-log")
    assert "'batch 0001' is not a landing batch id" in log and "not retried" in log, log[-3000:]
    tries = {t["task_id"]: t["try_number"] for t in up.api().task_instances(DAG, run["dag_run_id"])}
    assert tries["ingest"] == 1, tries  # refused at once: a retry would fail the same way


@pytest.fixture(scope="module")
def mlflow_ui(up, airflow_ui):
    page = airflow_ui.page.context.browser.new_page(viewport={"width": 1440, "height": 900})
    yield MlflowUI(page, up.mlflow_url)
    page.close()


def test_mlflow_shows_the_champion_its_model_card_and_the_training_runs_plots(mlflow_ui, pipeline_run, up):
    from mlflow import MlflowClient

    champion = MlflowClient(tracking_uri=up.mlflow_url).get_model_version_by_alias(MODEL, "champion")
    mlflow_ui.open_model(MODEL)
    screenshot(mlflow_ui.page, "07-mlflow-model")
    shown = mlflow_ui.version(MODEL, champion.version)
    screenshot(mlflow_ui.page, "08-mlflow-champion")
    assert "champion" in shown["aliases"], shown["aliases"]
    assert "Trained on features_card version" in shown["text"], shown["text"][:3000]  # the model card
    plots = mlflow_ui.run_plots(MODEL, champion.version, champion.run_id)
    screenshot(mlflow_ui.page, "09-mlflow-plots")
    assert {"roc_curve.png", "pr_curve.png", "calibration.png", "score_distribution.png", "confusion_matrix.png",
            "feature_importance.png"} <= set(plots), plots

"""End to end through Airflow on the local profile: the `make run` driver (scripts/run_local.py) in a scratch
TRIBUTARY_HOME. Real `airflow dags test` runs of fraud_pipeline and fraud_stream, each task a spark-submit through
the launcher; then `make run` again on the same landed data must leave bronze and predictions unchanged."""

from __future__ import annotations

import json

import pytest

from benchmarks.make_run import task_seconds
from tests.pipeline_data import load_script

run_local = load_script("run_local")


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRIBUTARY_HOME", str(home))
    summary = run_local.run(rows=3000, profile_name="local", airflow_home=home / "airflow",
                            summary_path=home / "run-summary.json")
    yield home, summary
    mp.undo()


def test_make_run_summary(pipeline_run):
    home, summary = pipeline_run
    on_disk = json.loads((home / "run-summary.json").read_text())
    assert on_disk == summary
    for key in ("profile", "rows_landed", "rows_ingested", "rows_quarantined", "rows_duplicate", "feature_rows",
                "model_name", "champion_version", "metrics", "predictions_rows", "stream_rows", "duration_s"):
        assert key in summary, key
    assert summary["profile"] == "local"
    assert summary["champion_version"] is not None
    assert summary["predictions_rows"] > 0 and summary["stream_rows"] > 0 and summary["rows_quarantined"] > 0
    assert summary["predictions_unattributed"] == 0
    assert summary["rows_landed"] == summary["rows_ingested"] + summary["rows_quarantined"] + summary["rows_duplicate"]
    assert summary["rows_landed"] == 3000
    # Features and batch scores cover the batch's bronze rows; the stream then adds its own rows to bronze.
    assert summary["feature_rows"] == summary["rows_ingested"] == summary["predictions_rows"]
    assert summary["bronze_rows"] == summary["rows_ingested"] + summary["stream_rows"]
    assert 0.0 <= summary["metrics"]["pr_auc"] <= 1.0
    # Each step's wall seconds (P4 reads them), and they account for the run's duration.
    steps = summary["steps_s"]
    assert list(steps) == ["land", "airflow_db", "fraud_pipeline", "land_stream", "fraud_stream", "summary"]
    assert all(s > 0 for s in steps.values()) and steps["fraud_pipeline"] == max(steps.values()), steps
    assert sum(steps.values()) - steps["summary"] <= summary["duration_s"] <= sum(steps.values()) + 5, steps
    # P4 reads each task's duration back from Airflow's metadata DB: all five, within the pipeline's step.
    tasks = task_seconds(home / "airflow" / "airflow.db")
    assert set(tasks) == {"ingest", "features", "train", "promote", "score"}, tasks
    assert all(s > 0 for s in tasks.values()) and sum(tasks.values()) < steps["fraud_pipeline"], tasks


def test_rerun_on_same_landed_data_changes_nothing(pipeline_run):
    """`make run` again: the same data lands again (deterministic), the pipeline and the stream run again."""
    home, first = pipeline_run
    second = run_local.run(rows=3000, profile_name="local", airflow_home=home / "airflow",
                           summary_path=home / "run-summary-2.json")
    for key in ("bronze_rows", "quarantine_rows", "predictions_rows", "stream_rows"):
        assert second[key] == first[key], (key, first[key], second[key])
    # This run's ingest found everything already there.
    assert second["rows_landed"] == first["rows_landed"]
    assert second["rows_ingested"] == 0
    assert second["rows_duplicate"] + second["rows_quarantined"] == second["rows_landed"]
    assert second["champion_version"] is not None

"""P4's baseline is the same work as the orchestrated run: each job's spark-submit line is the one Airflow's
SparkSubmitOperator runs for fraud_pipeline's task (the provider's own command builder, the DAG's templates rendered
with its param defaults), only the application's name differs. (P4 whole runs `make run` and five spark-submits:
`make bench QUICK=1`; its task durations are read back in tests/test_pipeline_e2e.py.)"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

from benchmarks import make_run
from tributary.config import load_profile


def test_the_baseline_submits_what_airflow_submits_for_each_task(monkeypatch):
    from tributary.local_env import spark_connection

    profile = load_profile("local")
    monkeypatch.setenv("TRIBUTARY_PROFILE", "local")
    monkeypatch.setenv("AIRFLOW_CONN_TRIBUTARY_SPARK", json.dumps(spark_connection(profile)))
    dag = make_run.load_dag()
    assert make_run.dag_defaults() == {"batch_id": None, "full_refresh": False, "start": None, "end": None,
                                       "train_days": None, "promote_version": None, "epochs": 8, "seed": 7}
    params = make_run.make_run_params()
    assert not params["full_refresh"] and params["batch_id"] == "batch-0001"
    # the days make run's sample covers: an interval, so history already in bronze is not read again
    assert (params["start"], params["end"]) == ("2026-11-01T00:00:00+00:00", "2026-11-15T00:00:00+00:00")
    assert params["train_days"] == 90  # and a training window ending there
    due = datetime(2026, 12, 1, 6, 30, tzinfo=timezone.utc)
    expected = make_run.job_args("batch-0001", due.isoformat(), params)
    assert [t.task_id for t in dag.tasks] == list(make_run.JOBS) == list(expected)
    interval = {"data_interval_start": datetime(2026, 11, 30, tzinfo=timezone.utc),
                "data_interval_end": datetime(2026, 12, 1, tzinfo=timezone.utc)}
    for task in dag.tasks:
        context = {"params": params, "dag_run": SimpleNamespace(run_after=due), **interval}
        rendered = task.render_template(task.application_args, context)
        assert rendered == ["--profile", "local", *expected[task.task_id]], task.task_id
        task.application_args = rendered
        airflow = task._get_hook()._build_spark_submit_command(task.application)
        ours = make_run.submit_command(task.task_id, expected[task.task_id])
        name = airflow.index("--name") + 1
        assert ours.index("--name") + 1 == name
        assert airflow[name].startswith(ours[name] + "-")  # Airflow's adds the run and the try
        assert airflow[:name] + airflow[name + 1:] == ours[:name] + ours[name + 1:], task.task_id


def test_the_baseline_logs_its_events_and_lineage_in_its_runs_home_not_in_the_checkouts(tmp_path, monkeypatch):
    # as a shell may have them: a run's home must win, as make run's
    monkeypatch.setenv("TRIBUTARY_SPARK_EVENTS", (tmp_path / "bench" / "spark-events").as_uri())
    monkeypatch.setenv("TRIBUTARY_LINEAGE", str(tmp_path / "bench" / "lineage"))
    home = tmp_path / "home"
    command = make_run.submit_command("ingest", [], make_run.airflow_env_for(home))
    conf = dict(command[i + 1].split("=", 1) for i, item in enumerate(command) if item == "--conf")
    assert conf["spark.eventLog.dir"] == f"file://{home}/var/spark-events"
    assert conf["spark.openlineage.transport.location"] == f"{home}/var/lineage/spark.jsonl"


def test_sizes_are_labelled_as_the_table_shows_them():
    assert [make_run.label(n) for n in (3_000, 20_000, 200_000, 1_000_000, 2_500_000)] == [
        "3k", "20k", "200k", "1M", "2.5M"]

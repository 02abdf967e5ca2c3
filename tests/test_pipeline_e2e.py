"""End to end through Airflow: `tributary run` (the console script over the `make run` driver, scripts/run_local.py)
in a scratch TRIBUTARY_HOME, then `tributary status`, `promote` and `rollback` on what it left. Real
`airflow dags test` runs of fraud_pipeline and fraud_stream, each task a spark-submit through the launcher, on the
local profile; then the same again on the same landed data with TRIBUTARY_PROFILE=yarn, on a real YARN (a
ResourceManager and a NodeManager with Spark's shuffle service, scripts/yarn_cluster.py) over the same lake: it must
leave bronze and predictions unchanged and compute the local run's features, with dynamic allocation at work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from tributary.config import load_profile
from tributary.spark_conf import spark_conf
from tests import SPARK_JAVA_OPTIONS, event_log
from tests.pipeline_data import load_script

from tributary.local_env import spark_home, task_seconds

run_local = load_script("run_local")
yarn_cluster = load_script("yarn_cluster")


TRIBUTARY = Path(sys.executable).parent / "tributary"  # the console script (tributary/cli.py)
STEP_TITLES = ("land a batch of raw transactions", "prepare the Airflow metadata DB", "run fraud_pipeline through "
               "Airflow", "land a second batch for the stream", "run fraud_stream through Airflow", "summarise",
               "write the run report")


def tributary(home: Path, *args: str) -> subprocess.CompletedProcess:
    """The ``tributary`` command as a user runs it, on ``home``'s state (make run's layout here: Airflow's home
    and the summary directly under it)."""
    if args[0] in ("run", "status"):
        args = (*args, "--airflow-home", str(home / "airflow"), "--summary", str(home / "run-summary.json"))
    return subprocess.run([str(TRIBUTARY), *args], capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "TRIBUTARY_HOME": str(home), "COLUMNS": "250"})


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    """``tributary run --rows 3000`` (scripts/run_local.py, what `make run` runs, behind the command's progress
    display) in a scratch TRIBUTARY_HOME: its summary as the command printed it (--json); what it showed on the
    terminal goes to progress.txt there."""
    home = tmp_path_factory.mktemp("e2e")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRIBUTARY_HOME", str(home))
    done = tributary(home, "run", "--rows", "3000", "--profile", "local", "--json")
    assert done.returncode == 0, done.stderr[-6000:]
    (home / "progress.txt").write_text(done.stderr)  # what the command showed on the terminal
    yield home, json.loads(done.stdout)
    mp.undo()


def test_make_run_summary(pipeline_run):
    home, summary = pipeline_run
    # The command showed each of run_local's steps, ticked off, and its log holds all the run's output: Airflow
    # starting each of the five tasks.
    progress = " ".join((home / "progress.txt").read_text().split())
    assert all(f"✓ {title}" in progress for title in STEP_TITLES), progress
    log = (home / "run.log").read_text()
    assert all(f"[DAG TEST] starting task_id={task}" in log
               for task in ("ingest", "features", "train", "promote", "score", "stream"))
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
    assert summary["tasks_s"] == {"fraud_pipeline": tasks, "fraud_stream": task_seconds(home / "airflow" / "airflow.db",
                                                                                          "fraud_stream")}
    assert list(summary["tasks_s"]["fraud_stream"]) == ["stream"]


def test_make_run_writes_a_run_report_that_opens_in_a_browser(pipeline_run):
    """var/run-report.html beside the summary, opened in headless Chromium as a person would: the reconciled counts,
    the quarantine reasons' chart, every table's version, the champion's metrics, each stage's time."""
    from tests.browser import chromium, screenshot

    home, summary = pipeline_run
    report = home / "run-report.html"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(report.as_uri())
        assert page.locator("#reconciliation").inner_text() == "reconciled"
        counts = dict(tuple(row.split("\t")) for row in page.locator("#counts tbody tr").all_inner_texts())
        assert counts["landed"] == f"{summary['rows_landed']:,}" and counts["quarantined"] == \
            f"{summary['rows_quarantined']:,}", counts
        charts = page.locator("img")
        assert charts.count() == 2 and all(charts.nth(i).evaluate("i => i.complete && i.naturalWidth > 300")
                                           for i in range(2))
        tables = {row.split("\t")[0]: row.split("\t")[1] for row in page.locator("#tables tbody tr").all_inner_texts()}
        assert {"bronze_transactions", "features_card", "predictions", "stream_predictions"} <= set(tables), tables
        assert all(tables[t].isdigit() for t in ("bronze_transactions", "features_card", "predictions")), tables
        metrics = page.locator("#metrics").inner_text()
        assert "pr_auc" in metrics and "champion" in metrics, metrics
        stages = page.locator("#stages").inner_text()
        assert all(f"fraud_pipeline.{t}" in stages for t in ("ingest", "features", "train", "promote", "score"))
        screenshot(page, "run-report", full_page=True)


def test_tributary_status_promote_and_rollback_on_the_run(pipeline_run, spark):
    """`tributary status` reports what the run left, as Airflow, MLflow and Delta themselves say it; a manual
    promotion of the champion changes nothing, and a rollback with nothing to roll back to fails and says why."""
    from delta.tables import DeltaTable

    home, summary = pipeline_run
    done = tributary(home, "status", "--json")
    assert done.returncode == 0, done.stderr[-4000:]
    found = json.loads(done.stdout)
    assert found["last_run"] == summary
    assert {dag: runs[0]["state"] for dag, runs in found["runs"].items()} == {"fraud_pipeline": "success",
                                                                               "fraud_stream": "success"}
    champion = found["model"]["champion"]
    assert (champion["version"], champion["run_id"]) == (summary["champion_version"], summary["champion_run_id"])
    assert champion["metrics"] == pytest.approx(summary["metrics"]) and champion["promotion"]["decision"]
    catalog = load_profile("local", env={**os.environ, "TRIBUTARY_HOME": str(home)}).catalog
    for name, table in found["tables"].items():  # each table's version and last operation, as Delta tells them
        last = DeltaTable.forPath(spark, catalog.uri(name)).history(1).collect()[0]
        assert (table["version"], table["operation"]) == (last["version"], last["operation"]), name
    assert found["tables"]["bronze_transactions"]["version"] >= 1  # the batch's MERGE, then the stream's
    assert found["stream"]["stream_checkpoint"]["last_batch"] >= 0
    shown = tributary(home, "status")
    assert shown.returncode == 0 and "@champion" in shown.stdout and "reconciled" in shown.stdout, shown.stdout

    version = str(summary["champion_version"])
    same = tributary(home, "promote", "--version", version, "--json")
    assert same.returncode == 0, same.stderr[-4000:]
    assert json.loads(same.stdout)["decision"] == "unchanged"
    unknown = tributary(home, "promote", "--version", "999")
    assert unknown.returncode == 2 and "has no version 999; registered versions" in unknown.stderr, unknown.stderr
    back = tributary(home, "rollback")
    assert back.returncode == 2, back.stderr
    assert "nothing to roll back to. Promote a version explicitly: tributary promote --version N" in " ".join(
        back.stderr.split())
    from mlflow import MlflowClient

    uri = load_profile("local", env={**os.environ, "TRIBUTARY_HOME": str(home)}).mlflow["tracking_uri"]
    held = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(summary["model_name"],
                                                                                        "champion")
    assert int(held.version) == summary["champion_version"]  # neither refusal moved @champion


def test_lineage_walks_a_prediction_back_to_its_landing_file(pipeline_run, spark):
    """OpenLineage as the run's three emitters wrote it under var/lineage (Airflow's provider, Spark's listener, the
    jobs' own version events): from a batch prediction to its model version, that version's training run, the
    feature table version it trained on, the bronze version behind it and the file the transaction landed in; each
    job's event hangs under its Airflow task's run, beside the Spark application the listener reported there."""
    from pyspark.sql import functions as F

    from spark_jobs import lineage_walk

    home, summary = pipeline_run
    profile = load_profile("local", env={**os.environ, "TRIBUTARY_HOME": str(home)})
    catalog = profile.catalog
    where = home / "var" / "lineage"
    assert sorted(p.name for p in where.glob("*.jsonl")) == ["airflow.jsonl", "spark.jsonl"]
    events = lineage_walk.read_events(where)
    batch = spark.read.format("delta").load(catalog.uri("predictions")).orderBy("transaction_id").first()
    done = tributary(home, "lineage", batch["transaction_id"], "--profile", "local", "--json")
    assert done.returncode == 0, done.stderr[-4000:]
    hops = [lineage_walk.Hop(**hop) for hop in json.loads(done.stdout)]
    assert [hop.what for hop in hops] == ["prediction", "model_version", "training_run", "features_version",
                                          "bronze_version", "landing_file"], hops
    found = {hop.what: hop for hop in hops}
    assert found["model_version"].value == f"{summary['model_name']}/{summary['champion_version']}"
    assert found["training_run"].value == summary["champion_run_id"]
    landed = Path(found["landing_file"].value.removeprefix("file:"))
    assert landed.is_file() and landed.is_relative_to(home / "var" / "landing")
    assert f'"{batch["transaction_id"]}"' in landed.read_text()  # the line it came in
    bronze_then = spark.read.format("delta").option("versionAsOf", found["bronze_version"].value) \
        .load(catalog.uri("bronze_transactions"))
    assert bronze_then.where(F.col("transaction_id") == batch["transaction_id"]).count() == 1
    # Every hop's event is a child of its Airflow task's run, whose COMPLETE event Airflow's provider wrote; the
    # Spark listener's application ran under the same task run and wrote the same tables.
    runs = {event["run"]["runId"]: event for event in events}
    for hop in hops[3:]:
        ours = runs[hop.run_id]
        task_run = ours["run"]["facets"]["parent"]["run"]["runId"]
        job = ours["job"]["name"].removeprefix("tributary.")
        assert any(e["run"]["runId"] == task_run and e["eventType"] == "COMPLETE"
                   and e["job"]["name"] == f"fraud_pipeline.{job}" for e in events), (job, task_run)
        apps = {e["run"]["runId"] for e in events if e["job"]["name"] == f"tributary_{job}"
                and e["run"]["facets"]["parent"]["run"]["runId"] == task_run}
        assert len(apps) == 1, (job, apps)
        written = {(d["namespace"], d["name"]) for e in events for d in e.get("outputs", [])
                   if e["run"]["facets"].get("parent", {}).get("run", {}).get("runId") in apps}
        assert {(d["namespace"], d["name"]) for d in ours["outputs"] if d["namespace"] != "mlflow"} <= written, job
    unknown = tributary(home, "lineage", "no-such-transaction", "--profile", "local")
    assert unknown.returncode == 2 and "no prediction for transaction no-such-transaction" in unknown.stderr


@pytest.fixture(scope="module")
def yarn(tmp_path_factory):
    """A ResourceManager and a NodeManager on loopback: room for an application master and two executors."""
    cluster = yarn_cluster.start(tmp_path_factory.mktemp("yarn"), memory_mb=4096, vcores=4)
    yield cluster
    cluster.stop()


def table_rows(spark, home, name: str) -> list:
    from spark_jobs import io

    catalog = load_profile("local", env={**os.environ, "TRIBUTARY_HOME": str(home)}).catalog
    return io.read_table(spark, catalog, name).collect()


def test_rerun_on_yarn_changes_nothing(pipeline_run, yarn, spark, monkeypatch, capsys):
    """`make run` again, on YARN (`make yarn-run`): the same data lands again (deterministic), the pipeline and the
    stream run again, every Spark job a YARN application."""
    home, first = pipeline_run
    # YARN's containers compile with C1 only, as the tests' JVMs here (tests.SPARK_JAVA_OPTIONS; checked below).
    for key, value in {**yarn.client_env(home), **SPARK_JAVA_OPTIONS}.items():
        monkeypatch.setenv(key, value)
    second = run_local.run(rows=3000, profile_name="yarn", airflow_home=home / "airflow",
                           summary_path=home / "run-summary-2.json")
    assert second["profile"] == "yarn"
    for key in ("bronze_rows", "quarantine_rows", "predictions_rows", "stream_rows"):
        assert second[key] == first[key], (key, first[key], second[key])
    # This run's ingest found everything already there.
    assert second["rows_landed"] == first["rows_landed"]
    assert second["rows_ingested"] == 0
    assert second["rows_duplicate"] + second["rows_quarantined"] == second["rows_landed"]
    assert second["champion_version"] is not None

    # Every Spark job ran as a YARN application, and each succeeded.
    apps = yarn.apps()
    jobs = {a["name"].split("-")[1] for a in apps}
    assert {"ingest", "features", "train", "score", "stream"} <= jobs, sorted(a["name"] for a in apps)
    logged = event_log.applications(yarn.event_log_dir)
    succeeded = {a["id"] for a in apps if a["finalStatus"] == "SUCCEEDED"}
    # Except one whose SparkContext failed to start (no event log: Spark's UI filter race, docs/yarn.md), and only
    # when Airflow's retry of it then succeeded as a later application of the same job.
    for failed in (a for a in apps if a["id"] not in succeeded):
        assert failed["id"] not in logged, (failed["name"], failed["finalStatus"], failed["diagnostics"])
        assert any(a["id"] in succeeded and a["name"] == failed["name"] and a["startedTime"] > failed["startedTime"]
                   for a in apps), (failed["name"], failed["finalStatus"], failed["diagnostics"])
        with capsys.disabled():
            print(f"\nretried: {failed['name']} {failed['id']} {failed['finalStatus']} before its SparkContext was up")
    # What each application ran with, and its executors over time, from the cluster's event logs.
    assert set(logged) == succeeded
    timelines = {}
    for app_id, events in logged.items():
        props = event_log.properties(events)
        assert props["spark.master"] == "yarn"
        assert props["spark.shuffle.service.enabled"] == "true"
        assert props["spark.dynamicAllocation.enabled"] == "true"
        # The options given, last (Spark writes the module flags it adds on Java 17 before them).
        for side in ("executor", "yarn.am"):
            given = props[f"spark.{side}.extraJavaOptions"].split()
            assert given[-1:] == SPARK_JAVA_OPTIONS["TRIBUTARY_SPARK_JAVA_OPTIONS"].split(), (side, given)
        timelines[f"{event_log.app_name(events).split('-')[1]} {app_id}"] = event_log.executor_timeline(events)
    with capsys.disabled():
        print("\nYARN executors over time (seconds since the application started, executors alive):")
        for app, timeline in timelines.items():
            print(f"  {app}: {timeline}")
    # Dynamic allocation requested executors as work came (their release: the next test).
    assert all(max(count for _, count in timeline) >= 1 for timeline in timelines.values()), timelines
    # The executors registered their shuffle files with the NodeManager's spark_shuffle service.
    nm_log = (Path(yarn.state) / "logs" / "nodemanager.log").read_text()
    for app_id in logged:
        assert f"Registered executor ExternalShuffleBlockResolver[appId={app_id}" in nm_log, app_id

    # The features the YARN job wrote equal the local job's on the same bronze: the local features job, run here
    # in-process on make run's interval (the sample's days, as the DAG passed it), recomputes that slice.
    from spark_jobs import features

    features_yarn = table_rows(spark, home, "features_card")
    conf = run_local.PIPELINE_CONF
    features.main(["--profile", "local", f"--start={conf['start']}", f"--end={conf['end']}"])
    assertDataFrameEqual(table_rows(spark, home, "features_card"), features_yarn)


def test_yarn_releases_idle_executors_and_serves_their_shuffle_output(yarn, tmp_path, capsys):
    """tests/yarn_shuffle_app.py on this YARN with the yarn profile's conf: a shuffle is written, every executor is
    released while the application idles, and new executors read the released ones' map output from the
    NodeManager's spark_shuffle service, so the map stage runs once."""
    env = {**os.environ, **yarn.client_env(tmp_path / "home"), **SPARK_JAVA_OPTIONS, "SPARK_HOME": spark_home()}
    cmd = [str(Path(sys.executable).parent / "spark-submit"), "--master", "yarn"]
    for key, value in spark_conf(load_profile("yarn", env=env)).items():
        cmd += ["--conf", f"{key}={value}"]
    out = tmp_path / "result.json"
    app = [*cmd, str(Path(__file__).parent / "yarn_shuffle_app.py"), "25", str(out)]
    done = subprocess.run(app, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 and "SparkUI.attachAllHandlers" in done.stderr:
        # Spark's UI filter race at start-up (docs/yarn.md): retried once, as Airflow retries a task.
        with capsys.disabled():
            print("\nretried: the SparkContext failed to start (Spark's UI filter race)")
        done = subprocess.run(app, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["equal"] and result["keys"] == 97 and result["total"] == sum(range(200_000)), result

    events = event_log.applications(yarn.event_log_dir)[result["app_id"]]
    timeline = event_log.executor_timeline(events)
    counts = [count for _, count in timeline[:-1]]  # the last point is the application's end
    first_up = next(i for i, c in enumerate(counts) if c > 0)
    all_released = next(i for i in range(first_up, len(counts)) if counts[i] == 0)
    assert any(c > 0 for c in counts[all_released:]), timeline  # and executors came back for the second job
    removed = [e for e in events if e["Event"] == "SparkListenerExecutorRemoved"]
    assert removed and all("killed by driver" in e["Removed Reason"] for e in removed), removed
    # Three stages completed: the map and result stages of the first job, the second job's result stage. A fetch
    # from a released executor without the shuffle service would fail and run the map stage again.
    completed = [e for e in events if e["Event"] == "SparkListenerStageCompleted"]
    assert len(completed) == 3, [e["Stage Info"]["Stage Name"] for e in completed]
    assert not any("FetchFailed" in json.dumps(e.get("Task End Reason", {})) for e in events
                   if e["Event"] == "SparkListenerTaskEnd")
    nm_log = (Path(yarn.state) / "logs" / "nodemanager.log").read_text()
    registered = {line.split("execId=")[1].split("]")[0] for line in nm_log.splitlines()
                  if f"ExternalShuffleBlockResolver[appId={result['app_id']}" in line and "Registered executor" in line}
    assert len(registered) >= 2, registered
    with capsys.disabled():
        print(f"\nYARN executors over time, {result['app_id']} (seconds, executors alive): {timeline}")

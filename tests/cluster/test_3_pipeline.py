"""fraud_pipeline on the live cluster, driven as `make cluster-run` drives it: Airflow on this host (API server,
scheduler, DAG processor, triggerer; the same DAG files, profile kind, only the chart's Airflow worker identity in
its kubeconfig), the run triggered through Airflow's REST API, every task a SparkKubernetesOperator whose
SparkApplication spark-operator runs in the job namespace, data in the chart's S3 store, every table Delta on it.

The batch lands late: the run is triggered first, so ingest's first try fails with the driver's "nothing landed"
error (a failed SparkApplication, its error in the task log), the batch then lands, and Airflow's retry submits a new,
uniquely named application, which succeeds. spark-operator removes the failed one after its timeToLiveSeconds
(shortened here through the profile's TRIBUTARY_SPARKAPP_TTL_SECONDS). Once the run succeeded, the score task is
cleared as a user would in the UI: it runs again as a new application and MERGEs the same predictions. Then the
chart's stream scores a landed batch, and a summary application reads the tables and MLflow back.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
import yaml

from spark_jobs.config import REPO_ROOT
from tests.cluster.live import JOBS_NS, Live

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import cluster_run  # noqa: E402
from cluster_platform import failure_report  # noqa: E402

# New batches each session, so that on a developer's reused cluster too the batch is late and the stream has new files.
SESSION = time.strftime("%Y%m%dt%H%M%S", time.gmtime())
BATCH = f"live-batch-{SESSION}"
# The interval the run covers (past: ingest's future check uses its end); another than make cluster-run's.
LOGICAL_DATE = datetime(2026, 11, 28, tzinfo=timezone.utc)
CONF = {"batch_id": BATCH, "epochs": 3, "seed": 42}
PIPELINE = ("ingest", "features", "train", "promote", "score")
TTL_S = 150
AIRFLOW_PORT = 8093
RUN_TIMEOUT_S = 2400


@dataclass
class PipelineRun:
    run_id: str
    state: str
    tasks: dict[str, dict[str, Any]]
    logs: dict[tuple[str, int], str]
    first_try_app: dict[str, Any]
    apps_seen: dict[str, str] = field(default_factory=dict)  # every application seen during the run: its last state
    first_score: dict[str, Any] = field(default_factory=dict)  # the score task instance before it was cleared
    trouble: str = ""  # the cluster's unhealthy conditions and Warning events, when the run failed

    def app_name(self, job: str, try_number: int) -> str:
        """The name the DAG's template gives (dags/tributary/sparkapp.py K8S_RUN_SUFFIX): run hash and try."""
        digest = uuid.uuid5(uuid.NAMESPACE_URL, f"fraud_pipeline/{self.run_id}").hex[:10]
        return f"tributary-{job}-{digest}-{try_number}"


def _wait_task(api, run_id: str, task_id: str, states: set[str], timeout: float, platform: Live) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ti = next((t for t in api.task_instances("fraud_pipeline", run_id) if t["task_id"] == task_id), {})
        if ti.get("state") in states:
            return ti
        platform.sample_memory()
        time.sleep(3)
    pytest.fail(f"{task_id} did not reach {states} in {timeout:.0f}s: {ti}")


@pytest.fixture(scope="module")
def pipeline(platform: Live, tmp_path_factory) -> PipelineRun:
    home = tmp_path_factory.mktemp("airflow")
    apps_seen: dict[str, str] = {}

    def watch(_state: str) -> None:
        platform.sample_memory()
        for app in platform.get("sparkapplications", "-n", JOBS_NS)["items"]:  # the test's view (admin): Airflow
            # may only get, create and delete the applications it names, not list them
            apps_seen[app["metadata"]["name"]] = app.get("status", {}).get("applicationState", {}).get("state", "")

    t0 = time.monotonic()
    with cluster_run.host_airflow(platform, home, AIRFLOW_PORT,
                                  extra_env={"TRIBUTARY_SPARKAPP_TTL_SECONDS": str(TTL_S)}) as api:
        platform.report["airflow_ready_s"] = round(time.monotonic() - t0, 1)
        api.wait_for_dag("fraud_pipeline")
        api.unpause("fraud_pipeline")
        run_id = api.trigger("fraud_pipeline", LOGICAL_DATE, CONF)
        first = _wait_task(api, run_id, "ingest", {"up_for_retry", "failed"}, 900, platform)
        name = PipelineRun(run_id, "", {}, {}, {}).app_name("ingest", 1)
        platform.wait_app(name, 120, until={"FAILED"})  # the task fails on the driver; the operator then marks it
        first_try_app = platform.get("sparkapplication", name, "-n", JOBS_NS)
        landed = platform.land("--rows", "10000", "--batch-id", BATCH)
        assert landed and all(key.startswith(f"s3://tributary-lake/landing/batch/{BATCH}/") for key in landed)
        t0 = time.monotonic()
        state = api.wait_run("fraud_pipeline", run_id, RUN_TIMEOUT_S, watch)
        platform.report["pipeline_after_landing_s"] = round(time.monotonic() - t0, 1)
        first_score = {}
        if state == "success":  # a user clears the finished score task (the UI's "Clear"): it runs again
            first_score = next(t for t in api.task_instances("fraud_pipeline", run_id) if t["task_id"] == "score")
            api.clear_task("fraud_pipeline", run_id, "score")
            t0 = time.monotonic()
            time.sleep(5)
            state = api.wait_run("fraud_pipeline", run_id, 900, watch)
            platform.report["score_cleared_rerun_s"] = round(time.monotonic() - t0, 1)
        tasks = {t["task_id"]: t for t in api.task_instances("fraud_pipeline", run_id)}
        logs = {(task, n): api.task_log("fraud_pipeline", run_id, task, n)
                for task, ti in tasks.items() for n in range(1, (ti.get("try_number") or 0) + 1)}
    platform.report["airflow_task_seconds"] = {t: tasks[t].get("duration") for t in PIPELINE if t in tasks}
    platform.report["ingest_first_try_state"] = first["state"]
    trouble = "" if state == "success" else platform.trouble()
    return PipelineRun(run_id, state, tasks, logs, first_try_app, apps_seen, first_score, trouble)


def results(log: str) -> list[dict[str, Any]]:
    return Live.results("\n".join(re.sub(r"^.*?(TRIBUTARY_RESULT )", r"\1", line) for line in log.splitlines()))


def test_fraud_pipeline_triggered_through_the_rest_api_succeeds_task_by_task_on_spark_operator(
        pipeline: PipelineRun, platform: Live):
    states = {t: pipeline.tasks[t]["state"] for t in PIPELINE}
    failed = failure_report({k: log for k, log in pipeline.logs.items() if pipeline.tasks[k[0]]["state"] != "success"})
    assert pipeline.state == "success", f"{states}\n{failed}\n--- the cluster ---\n{pipeline.trouble}"
    assert pipeline.tasks["ingest"]["try_number"] == 2  # the late batch's retry
    found = {}
    for job in PIPELINE:
        try_number = pipeline.tasks[job]["try_number"]
        log = pipeline.logs[(job, try_number)]
        # Each task's SparkApplication, named for the run and the try, reached COMPLETED.
        assert pipeline.apps_seen.get(pipeline.app_name(job, try_number)) == "COMPLETED", pipeline.apps_seen
        assert "forbidden" not in log, f"{job}: a refused Kubernetes call\n{log[-3000:]}"
        emitted = results(log)  # the driver's log, streamed into the task's by the operator
        assert emitted and emitted[-1]["job"] == job, f"{job}: no TRIBUTARY_RESULT in the task log\n{log[-3000:]}"
        found[job] = emitted[-1]
    ingest = found["ingest"]
    assert ingest["rows_landed"] == ingest["rows_ingested"] + ingest["rows_quarantined"] + ingest["rows_duplicate"]
    assert ingest["rows_quarantined"] > 0
    assert int(found["score"]["model_version"]) == found["promote"]["champion_version"]
    # score was cleared after the run succeeded: its second try was a new application, not a reattachment to the
    # first try's kept driver, and it scored the same rows again into the same predictions (a MERGE: no duplicates).
    assert pipeline.first_score["try_number"] == 1 and pipeline.tasks["score"]["try_number"] == 2
    assert pipeline.apps_seen.get(pipeline.app_name("score", 1)) == "COMPLETED"
    first_score = results(pipeline.logs[("score", 1)])[-1]
    assert first_score["predictions_rows"] == found["score"]["predictions_rows"]
    assert found["score"]["predictions_version"] > first_score["predictions_version"]
    if platform.report["reused_running_cluster"]:  # a developer's cluster: earlier runs' rows (maybe this batch's)
        assert found["features"]["feature_rows"] >= ingest["rows_ingested"]
    else:  # make test's fresh cluster: this batch is all there is
        assert ingest["rows_ingested"] > 0
        assert found["features"]["feature_rows"] == ingest["rows_ingested"]
        assert found["promote"]["decision"] == "promoted"
        assert found["score"]["predictions_rows"] == found["features"]["feature_rows"]


def test_a_late_batch_fails_the_first_try_with_the_drivers_error_and_the_retry_is_a_new_application(
        pipeline: PipelineRun, platform: Live):
    first_log = pipeline.logs[("ingest", 1)]
    assert f"nothing landed at s3a://tributary-lake/landing/batch/{BATCH}" in first_log, first_log[-3000:]
    assert pipeline.first_try_app["status"]["applicationState"]["state"] == "FAILED"
    assert pipeline.first_try_app["spec"]["timeToLiveSeconds"] == TTL_S
    assert pipeline.apps_seen.get(pipeline.app_name("ingest", 2)) == "COMPLETED"
    # spark-operator deletes the failed application once its time to live is over.
    deadline = time.monotonic() + TTL_S + 180
    name = pipeline.app_name("ingest", 1)
    while time.monotonic() < deadline:
        if platform.kubectl("get", "sparkapplication", name, "-n", JOBS_NS, "--ignore-not-found", "-o", "name").stdout == "":
            break
        time.sleep(5)
    else:
        pytest.fail(f"{name} still exists {TTL_S + 180}s after its run; timeToLiveSeconds {TTL_S}")


def test_scoring_executors_and_nothing_else_ran_on_the_gpu_pool(pipeline: PipelineRun, platform: Live):
    """Read from the scheduler's events (pods are gone when their application is): scoring's executors were bound to
    the tainted GPU node and its driver to spark-cpu; no pod of ingest, features, train, promote or the stream was
    ever bound to the GPU node. The node has no real GPU: scoring took its CPU fallback (launcher.gpu.simulated)."""
    scheduled = platform.get("events", "-n", JOBS_NS, "--field-selector", "reason=Scheduled")["items"]
    placed: dict[str, set[str]] = {}
    for event in scheduled:
        pod = event["involvedObject"]["name"]
        placed.setdefault(pod, set()).add(event["message"].rsplit(" to ", 1)[-1])
    by_job: dict[str, dict[str, list[str]]] = {}
    for pod, nodes in placed.items():
        job = pod.split("-")[1]
        by_job.setdefault(job, {}).setdefault(",".join(sorted(nodes)), []).append(pod)
    platform.report["pod_nodes_by_job"] = {job: {n: len(p) for n, p in nodes.items()} for job, nodes in by_job.items()}
    score_driver = pipeline.app_name("score", pipeline.tasks["score"]["try_number"]) + "-driver"
    score_executors = {p: n for p, n in placed.items() if p.startswith("tributary-score-") and "-exec-" in p}
    assert score_executors and all(n == {"tributary-worker2"} for n in score_executors.values()), score_executors
    assert placed[score_driver] == {"tributary-worker"}
    elsewhere = {p: n for p, n in placed.items() if not p.startswith("tributary-score-") and "tributary-worker2" in n}
    assert not elsewhere, f"pods of other jobs on the GPU node: {elsewhere}"
    assert {"ingest", "features", "train", "promote", "stream"} <= by_job.keys()
    # Spark's discovery script ran in the scoring executor and reported the node's (simulated) device; the tasks
    # were handed none, and the driver says it scored on the CPU.
    score = results(pipeline.logs[("score", pipeline.tasks["score"]["try_number"])])[-1]
    platform.report["score_devices"] = {"device": score["device"], "executor_gpus": score["executor_gpus"]}
    assert score["executor_gpus"] and all(a == ["simulated-0"] for a in score["executor_gpus"].values()), score
    assert score["device"] == "cpu"
    assert "scored on the CPU" in pipeline.logs[("score", pipeline.tasks["score"]["try_number"])]


def test_the_charts_stream_is_the_rendered_one_and_scores_landed_files(pipeline: PipelineRun, platform: Live):
    chart_app = platform.get("sparkapplication", "tributary-stream", "-n", JOBS_NS)
    as_rendered = yaml.safe_load((REPO_ROOT / "build" / "rendered" / "kind" / "sparkapplications" / "stream.yaml").read_text())
    assert chart_app["spec"] == as_rendered["spec"]
    assert chart_app["spec"]["restartPolicy"]["type"] == "Always"
    # It started before there was a champion, failed with the no-champion error, and the operator restarted it.
    before = cluster_run.stream_scored(platform)
    platform.land("--target", "landing_stream", "--start", "2026-11-15", "--days", "1", "--rows", "1200",
                  "--files", "2", "--batch-id", f"live-stream-{SESSION}")
    t0 = time.monotonic()
    scored = cluster_run.wait_for_stream(platform, before, 900.0)
    platform.report["stream_first_scored_s"] = round(time.monotonic() - t0, 1)
    platform.report["stream_rows_scored"] = scored
    state, _ = platform.app_state("tributary-stream")
    assert state == "RUNNING"


def test_the_summary_read_back_on_the_cluster_reconciles(pipeline: PipelineRun, platform: Live):
    """What `make cluster-run` writes to var/cluster-run-summary.json, with the keys of var/run-summary.json."""
    summary = cluster_run.cluster_summary(platform)
    platform.report["summary"] = summary
    from run_local import summary_problems

    assert summary_problems(summary) == []
    assert summary["profile"] == "kind" and summary["predictions_unattributed"] == 0
    assert summary["predictions_rows"] >= summary["rows_ingested"]
    assert summary["bronze_rows"] >= summary["rows_ingested"] + summary["stream_rows"]

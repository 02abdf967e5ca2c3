"""fraud_pipeline on the live cluster, driven as `make cluster-run` drives it: Airflow on this host (API server,
scheduler, DAG processor, triggerer; the same DAG files, profile kind, only the chart's Airflow worker identity in
its kubeconfig), the run triggered through Airflow's REST API, every task a SparkKubernetesOperator whose
SparkApplication spark-operator runs in the job namespace, data in the chart's S3 store, every table Delta on it.

One DAG run, with the faults and the user actions a cluster sees, in this order:
1. The batch lands late: the run is triggered first, so ingest's first try fails with the driver's "nothing landed"
   error (a failed SparkApplication, its error in the task log), the batch then lands, and Airflow's retry submits a
   new, uniquely named application, which succeeds. spark-operator removes the failed one after its
   timeToLiveSeconds (shortened here through the profile's TRIBUTARY_SPARKAPP_TTL_SECONDS).
2. While features runs, one of its executor pods is killed (deleted with no grace period) while a stage of it has
   running tasks, read from the driver's REST API; the job still completes, with the result of an undisturbed run.
3. The run succeeded; the interval is re-triggered: ingest and score are cleared, as a user would in the UI, and run
   again as new applications; bronze and predictions are unchanged.
4. An ML engineer promotes another model version by hand (`make cluster-promote VERSION=N`); then MLflow is taken
   down and score is cleared: its try fails at start with the tracking server's error and writes nothing, MLflow comes
   back, and Airflow's retry scores with the promoted version.
Then the chart's stream scores a landed batch, the History Server lists the run's applications and shows the features
job's executors scaling with dynamic allocation, and a summary application reads the tables and MLflow back.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
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
from cluster_platform import PlatformError, failure_report  # noqa: E402

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
MODEL = "tributary-fraud"


@dataclass
class PipelineRun:
    run_id: str
    state: str
    tasks: dict[str, dict[str, Any]]
    logs: dict[tuple[str, int], str]
    first_try_app: dict[str, Any]
    apps_seen: dict[str, dict[str, str]] = field(default_factory=dict)  # every application seen: state, Spark app id
    phases: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # task instances after each phase
    executor_kill: dict[str, Any] = field(default_factory=dict)  # what the fault injector did in features
    promoted: dict[str, Any] = field(default_factory=dict)  # the version promoted by hand, and the command's result
    mlflow_down: dict[str, Any] = field(default_factory=dict)  # score's try while MLflow was down
    trouble: str = ""  # the cluster's unhealthy conditions and Warning events, when the run failed

    def app_name(self, job: str, try_number: int) -> str:
        """The name the DAG's template gives (dags/tributary/sparkapp.py K8S_RUN_SUFFIX): run hash and try."""
        digest = uuid.uuid5(uuid.NAMESPACE_URL, f"fraud_pipeline/{self.run_id}").hex[:10]
        return f"tributary-{job}-{digest}-{try_number}"

    def app_state(self, job: str, try_number: int) -> str:
        return self.apps_seen.get(self.app_name(job, try_number), {}).get("state", "")

    def result(self, job: str, try_number: int | None = None) -> dict[str, Any]:
        """The TRIBUTARY_RESULT of a task's try (default: its last), from the driver's log in the task's log."""
        found = results(self.logs.get((job, try_number or self.tasks[job]["try_number"]), ""))
        return found[-1] if found else {}


def _wait_task(api, run_id: str, task_id: str, states: set[str], timeout: float, platform: Live) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ti = next((t for t in api.task_instances("fraud_pipeline", run_id) if t["task_id"] == task_id), {})
        if ti.get("state") in states:
            return ti
        platform.sample_memory()
        time.sleep(3)
    pytest.fail(f"{task_id} did not reach {states} in {timeout:.0f}s: {ti}")


class ExecutorKiller(threading.Thread):
    """Kills one executor pod of a running application, once, while a stage has tasks running on that executor:
    the driver's REST API (its pod IP, port 4040) says which executor has active tasks, and its pod is deleted with
    no grace period (SIGKILL, no decommissioning)."""

    def __init__(self, platform: Live, app: str):
        super().__init__(daemon=True)
        self.platform, self.app = platform, app
        self.done = threading.Event()
        self.killed: dict[str, Any] = {}
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.done.is_set() and not self.killed:
            try:
                self.try_kill()
            except Exception as exc:  # noqa: BLE001 - the driver or a pod comes and goes; keep watching
                self.errors = (self.errors + [repr(exc)[:300]])[-5:]
            self.done.wait(1)

    def try_kill(self) -> None:
        import urllib.request

        def rest(ip: str, path: str) -> Any:
            with urllib.request.urlopen(f"http://{ip}:4040/api/v1{path}", timeout=5) as reply:
                return json.loads(reply.read().decode())

        pods = self.platform.get("pods", "-n", JOBS_NS, "-l", f"sparkoperator.k8s.io/app-name={self.app}")["items"]
        driver = next((p for p in pods if p["metadata"]["labels"].get("spark-role") == "driver"
                       and p["status"].get("phase") == "Running" and p["status"].get("podIP")), None)
        if driver is None:
            return
        ip = driver["status"]["podIP"]
        (app,) = rest(ip, "/applications")
        stages = rest(ip, f"/applications/{app['id']}/stages?status=active")
        busy = {e["id"]: e["activeTasks"] for e in rest(ip, f"/applications/{app['id']}/executors")
                if e["id"] != "driver" and e["activeTasks"] > 0}
        running = [s for s in stages if s.get("numActiveTasks", 0) > 0]
        pod = next((p for p in pods if p["metadata"]["labels"].get("spark-exec-id") in busy
                    and p["status"].get("phase") == "Running"), None)
        if not running or pod is None:
            return
        executor = pod["metadata"]["labels"]["spark-exec-id"]
        self.platform.kubectl("delete", "pod", pod["metadata"]["name"], "-n", JOBS_NS, "--grace-period=0", "--force",
                              "--wait=false")
        self.killed = {"pod": pod["metadata"]["name"], "executor_id": executor, "active_tasks": busy[executor],
                       "app_id": app["id"], "at": time.time(),
                       "stages": [{"id": s["stageId"], "name": s["name"][:80], "active_tasks": s["numActiveTasks"],
                                   "complete_tasks": s["numCompleteTasks"], "tasks": s["numTasks"]} for s in running]}


def register_copy_of_champion(platform: Live) -> int:
    """A new version of the model from the champion's artifacts and tags (a second version to promote by hand,
    without training again), registered in the chart's MLflow from this host; returns its number."""
    with platform.mlflow_env() as env:
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)  # the client reads its credentials from the environment
        try:
            import mlflow

            mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
            mlflow.set_registry_uri(env["MLFLOW_TRACKING_URI"])
            client = mlflow.MlflowClient()
            champion = client.get_model_version_by_alias(MODEL, "champion")
            tags = {k: v for k, v in champion.tags.items() if not k.startswith("promotion.")}
            # The champion's logged model (models:/m-<id>) registered again: a new version with the same weights.
            return int(mlflow.register_model(champion.source, MODEL, tags=tags).version)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="module")
def pipeline(platform: Live, tmp_path_factory) -> PipelineRun:
    home = tmp_path_factory.mktemp("airflow")
    apps_seen: dict[str, dict[str, str]] = {}

    def watch(_state: str = "") -> None:
        platform.sample_memory()
        for app in platform.get("sparkapplications", "-n", JOBS_NS)["items"]:  # the test's view (admin): Airflow
            # may only get, create and delete the applications it names, not list them
            status = app.get("status", {})
            seen = apps_seen.setdefault(app["metadata"]["name"], {})
            seen["state"] = status.get("applicationState", {}).get("state", "")
            seen["spark_app_id"] = status.get("sparkApplicationId") or seen.get("spark_app_id", "")

    def task_instances() -> dict[str, dict[str, Any]]:
        return {t["task_id"]: t for t in api.task_instances("fraud_pipeline", run_id)}

    run = PipelineRun("", "", {}, {}, {}, apps_seen)
    t0 = time.monotonic()
    with cluster_run.host_airflow(platform, home, AIRFLOW_PORT,
                                  extra_env={"TRIBUTARY_SPARKAPP_TTL_SECONDS": str(TTL_S)}) as api:
        platform.report["airflow_ready_s"] = round(time.monotonic() - t0, 1)
        api.wait_for_dag("fraud_pipeline")
        api.unpause("fraud_pipeline")
        run_id = run.run_id = api.trigger("fraud_pipeline", LOGICAL_DATE, CONF)
        killer = ExecutorKiller(platform, run.app_name("features", 1))
        killer.start()
        try:
            first = _wait_task(api, run_id, "ingest", {"up_for_retry", "failed"}, 900, platform)
            name = run.app_name("ingest", 1)
            platform.wait_app(name, 120, until={"FAILED"})  # the task fails on the driver; the operator marks it
            run.first_try_app = platform.get("sparkapplication", name, "-n", JOBS_NS)
            watch()
            landed = platform.land("--rows", "10000", "--batch-id", BATCH)
            assert landed and all(key.startswith(f"s3://tributary-lake/landing/batch/{BATCH}/") for key in landed)
            t0 = time.monotonic()
            state = api.wait_run("fraud_pipeline", run_id, RUN_TIMEOUT_S, watch)
            platform.report["pipeline_after_landing_s"] = round(time.monotonic() - t0, 1)
        finally:
            killer.done.set()
        run.executor_kill = {**killer.killed, "watch_errors": killer.errors}
        run.phases["run"] = task_instances()
        if state == "success":  # the same interval again: a user clears ingest and score (the UI's "Clear")
            api.clear_tasks("fraud_pipeline", run_id, "ingest", "score")
            t0 = time.monotonic()
            time.sleep(5)
            state = api.wait_run("fraud_pipeline", run_id, 900, watch)
            platform.report["retrigger_ingest_and_score_s"] = round(time.monotonic() - t0, 1)
            run.phases["retrigger"] = task_instances()
        if state == "success":  # another version, promoted by hand with the documented command
            version = register_copy_of_champion(platform)
            run.promoted = {"version": version, "result": cluster_run.promote_by_hand(platform, version)}
            # MLflow is down when scoring starts: the try fails with the tracking server's error, writing nothing;
            # with MLflow back, Airflow's retry scores with the promoted version.
            platform.scale("tributary-mlflow", 0)
            try:
                api.clear_tasks("fraud_pipeline", run_id, "score")
                time.sleep(5)
                failed = _wait_task(api, run_id, "score", {"up_for_retry", "failed", "success"}, 900, platform)
                run.mlflow_down = {"try_number": failed["try_number"], "state": failed["state"]}
            finally:
                t0 = time.monotonic()
                platform.scale("tributary-mlflow", 1)
                run.mlflow_down["mlflow_ready_again_s"] = round(time.monotonic() - t0, 1)
            state = api.wait_run("fraud_pipeline", run_id, 900, watch)
            run.phases["promoted"] = task_instances()
        watch()
        run.tasks = task_instances()
        run.logs = {(task, n): api.task_log("fraud_pipeline", run_id, task, n)
                    for task, ti in run.tasks.items() for n in range(1, (ti.get("try_number") or 0) + 1)}
    run.state = state
    platform.report["airflow_task_seconds"] = {
        phase: {t: tasks[t].get("duration") for t in PIPELINE if t in tasks} for phase, tasks in run.phases.items()}
    platform.report["ingest_first_try_state"] = first["state"]
    platform.report["executor_kill"] = run.executor_kill
    run.trouble = "" if state == "success" else platform.trouble()
    return run


def results(log: str) -> list[dict[str, Any]]:
    return Live.results("\n".join(re.sub(r"^.*?(TRIBUTARY_RESULT )", r"\1", line) for line in log.splitlines()))


def test_fraud_pipeline_triggered_through_the_rest_api_succeeds_task_by_task_on_spark_operator(
        pipeline: PipelineRun, platform: Live):
    states = {t: pipeline.tasks[t]["state"] for t in PIPELINE}
    failed = failure_report({k: log for k, log in pipeline.logs.items() if pipeline.tasks[k[0]]["state"] != "success"})
    assert pipeline.state == "success", f"{states}\n{failed}\n--- the cluster ---\n{pipeline.trouble}"
    run = pipeline.phases["run"]
    assert run["ingest"]["try_number"] == 2  # the late batch's retry
    found = {}
    for job in PIPELINE:
        try_number = run[job]["try_number"]
        log = pipeline.logs[(job, try_number)]
        # Each task's SparkApplication, named for the run and the try, reached COMPLETED.
        assert pipeline.app_state(job, try_number) == "COMPLETED", pipeline.apps_seen
        assert "forbidden" not in log, f"{job}: a refused Kubernetes call\n{log[-3000:]}"
        found[job] = pipeline.result(job, try_number)  # the driver's log, streamed into the task's by the operator
        assert found[job].get("job") == job, f"{job}: no TRIBUTARY_RESULT in the task log\n{log[-3000:]}"
    ingest = found["ingest"]
    assert ingest["rows_landed"] == ingest["rows_ingested"] + ingest["rows_quarantined"] + ingest["rows_duplicate"]
    assert ingest["rows_quarantined"] > 0
    assert int(found["score"]["model_version"]) == found["promote"]["champion_version"]
    if platform.report["reused_running_cluster"]:  # a developer's cluster: earlier runs' rows (maybe this batch's)
        assert found["features"]["feature_rows"] >= ingest["rows_ingested"]
    else:  # make test's fresh cluster: this batch is all there is
        assert ingest["rows_ingested"] > 0
        assert found["features"]["feature_rows"] == ingest["rows_ingested"]
        assert found["promote"]["decision"] == "promoted"
        assert found["score"]["predictions_rows"] == found["features"]["feature_rows"]


def test_re_triggering_the_interval_runs_new_applications_and_leaves_bronze_and_predictions_unchanged(
        pipeline: PipelineRun):
    """ingest and score cleared after the run succeeded: each ran again as a new application (not a reattachment to
    the kept driver of its earlier try); ingest found every landed row already in bronze or quarantine and committed
    nothing, and score MERGEd the same predictions (no duplicates)."""
    run, again = pipeline.phases["run"], pipeline.phases["retrigger"]
    for job in ("ingest", "score"):
        assert again[job]["try_number"] == run[job]["try_number"] + 1 and again[job]["state"] == "success"
        assert pipeline.app_state(job, again[job]["try_number"]) == "COMPLETED"
    for job in ("features", "train", "promote"):  # not cleared: not run again
        assert again[job]["try_number"] == run[job]["try_number"]
    before, after = (pipeline.result("ingest", phase["ingest"]["try_number"]) for phase in (run, again))
    assert after["rows_landed"] == before["rows_landed"] and after["rows_ingested"] == 0
    assert after["rows_duplicate"] == before["rows_ingested"] + before["rows_duplicate"]
    assert after["rows_quarantined_new"] == 0
    assert (after["bronze_version"], after["quarantine_version"]) == (before["bronze_version"], before["quarantine_version"])
    before, after = (pipeline.result("score", phase["score"]["try_number"]) for phase in (run, again))
    assert after["predictions_rows"] == before["predictions_rows"]
    assert (after["model_version"], after["model_run_id"]) == (before["model_version"], before["model_run_id"])
    assert after["predictions_version"] > before["predictions_version"]


def test_a_version_promoted_by_hand_is_used_by_the_next_scoring_run(pipeline: PipelineRun):
    again = pipeline.phases["retrigger"]
    champion_before = pipeline.result("score", again["score"]["try_number"])["model_version"]
    promoted = pipeline.promoted
    assert promoted["result"]["decision"] == "promoted" and promoted["result"]["reason"] == "manual"
    assert promoted["result"]["champion_version"] == promoted["version"] != champion_before
    assert promoted["result"]["champion_version_before"] == champion_before
    last = pipeline.result("score")
    assert last["model_version"] == promoted["version"]
    assert last["predictions_rows"] == pipeline.result("score", again["score"]["try_number"])["predictions_rows"]


def test_scoring_while_mlflow_is_down_fails_with_the_cause_writes_nothing_and_the_retry_succeeds(
        pipeline: PipelineRun):
    down = pipeline.mlflow_down
    assert down["state"] == "up_for_retry", down
    log = pipeline.logs[("score", down["try_number"])]
    assert "the MLflow tracking server at http://tributary-mlflow" in log and "did not answer" in log, log[-3000:]
    assert pipeline.app_state("score", down["try_number"]) == "FAILED"
    assert results(log) == []
    # The retry, with MLflow back, committed exactly one version on top of the last successful scoring: the failed
    # try wrote nothing.
    assert pipeline.tasks["score"]["try_number"] == down["try_number"] + 1
    assert pipeline.app_state("score", down["try_number"] + 1) == "COMPLETED"
    earlier = pipeline.result("score", pipeline.phases["retrigger"]["score"]["try_number"])
    assert pipeline.result("score")["predictions_version"] == earlier["predictions_version"] + 1


def test_a_late_batch_fails_the_first_try_with_the_drivers_error_and_the_retry_is_a_new_application(
        pipeline: PipelineRun, platform: Live):
    first_log = pipeline.logs[("ingest", 1)]
    assert f"nothing landed at s3a://tributary-lake/landing/batch/{BATCH}" in first_log, first_log[-3000:]
    assert pipeline.first_try_app["status"]["applicationState"]["state"] == "FAILED"
    assert pipeline.first_try_app["spec"]["timeToLiveSeconds"] == TTL_S
    assert pipeline.app_state("ingest", 2) == "COMPLETED"
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


def _history_app(platform: Live, app_id: str, timeout: float = 180) -> dict[str, Any]:
    """The History Server's entry for ``app_id``, once it has parsed the application's event log (it polls the
    bucket every historyServer.updateInterval)."""
    deadline = time.monotonic() + timeout
    while True:
        listed = {a["id"]: a for a in platform.history("/applications?limit=1000")}
        if app_id in listed and all(a.get("completed") for a in listed[app_id]["attempts"]):
            return listed[app_id]
        if time.monotonic() > deadline:
            pytest.fail(f"the History Server did not list {app_id} as completed in {timeout:.0f}s: {sorted(listed)}")
        time.sleep(5)


def _millis(text: str) -> float:
    """Seconds since the epoch of the History Server's timestamps (2026-12-01T03:04:05.678GMT)."""
    return datetime.strptime(text.replace("GMT", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def _seconds(duration: str) -> float:
    """A Spark duration (``15s``, ``500ms``, ``2min``) in seconds."""
    number, unit = re.fullmatch(r"(\d+)\s*(ms|s|m|min|h)?", duration.strip()).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600}[unit or "s"]


def executor_timeline(executors: list[dict[str, Any]], start: float, gone: dict[str, float]) -> list[tuple[float, int]]:
    """(seconds since the application started, executors alive) at each executor added or removed; ``gone`` gives
    the time an executor's pod was killed, before the driver noticed and removed it."""
    def end(e: dict[str, Any]) -> float | None:
        removed = _millis(e["removeTime"]) if e.get("removeTime") else None
        return min(t for t in (removed, gone.get(e["id"])) if t is not None) if (removed or e["id"] in gone) else None

    changes = sorted([(_millis(e["addTime"]), 1) for e in executors]
                     + [(end(e), -1) for e in executors if end(e) is not None])
    alive, timeline = 0, []
    for at, step in changes:
        alive += step
        timeline.append((round(at - start, 1), alive))
    return timeline


def test_the_history_server_lists_the_runs_applications_from_their_event_logs(pipeline: PipelineRun, platform: Live):
    """Every application the run created that started Spark (each task's tries, ingest's failed one too) wrote its
    event log to the S3 store, and the chart's Spark History Server lists it, completed, under its Spark application
    id. (Scoring's try while MLflow was down stopped before its SparkSession: it has no event log.)"""
    digest = pipeline.app_name("x", 1).split("-")[2]
    no_spark = pipeline.app_name("score", pipeline.mlflow_down["try_number"])
    ids = {name: seen["spark_app_id"] for name, seen in pipeline.apps_seen.items() if digest in name and name != no_spark}
    assert len(ids) >= 2 * len(PIPELINE) - 1 and all(ids.values()), pipeline.apps_seen
    for name, app_id in ids.items():
        app = _history_app(platform, app_id)
        assert app["name"] in {name, "tributary-" + name.split("-")[1]}, (name, app)
    platform.report["history_server_applications"] = len(ids)


def test_features_scaled_with_dynamic_allocation_and_survived_an_executor_killed_mid_stage(
        pipeline: PipelineRun, platform: Live):
    """From the features job's event log, read through the History Server: dynamic allocation with shuffle tracking
    within the profile's bounds, executors added when its stages had work and released once idle; the executor the
    test killed mid-stage was lost with its running tasks, Spark re-ran them, and the job's output equals that of an
    undisturbed run of the same code on the same bronze version."""
    from spark_jobs.config import load_profile

    kill = pipeline.executor_kill
    assert kill.get("pod"), f"no features executor was seen running a task: {kill}"
    app_id = pipeline.apps_seen[pipeline.app_name("features", 1)]["spark_app_id"]
    assert kill["app_id"] == app_id
    app = _history_app(platform, app_id)
    (attempt,) = app["attempts"]
    start, end = _millis(attempt["startTime"]), _millis(attempt["endTime"])
    props = dict(platform.history(f"/applications/{app_id}/environment")["sparkProperties"])
    bounds = load_profile("kind").resources["dynamic_allocation"]
    assert props["spark.dynamicAllocation.enabled"] == "true"
    assert props["spark.dynamicAllocation.shuffleTracking.enabled"] == "true"
    assert int(props["spark.dynamicAllocation.minExecutors"]) == bounds["min_executors"]
    assert int(props["spark.dynamicAllocation.maxExecutors"]) == bounds["max_executors"]
    idle_timeout = props["spark.dynamicAllocation.executorIdleTimeout"]
    executors = [e for e in platform.history(f"/applications/{app_id}/allexecutors") if e["id"] != "driver"]
    jobs = platform.history(f"/applications/{app_id}/jobs")
    timeline = executor_timeline(executors, start, {kill["executor_id"]: kill["at"]})
    platform.report["features_dynamic_allocation"] = {
        "app_id": app_id, "duration_s": round(end - start, 1), "executor_idle_timeout": idle_timeout,
        "executors_over_time": timeline,
        "executors": [{"id": e["id"], "added_s": round(_millis(e["addTime"]) - start, 1),
                       "removed_s": round(_millis(e["removeTime"]) - start, 1) if e.get("removeTime") else None,
                       "reason": e.get("removeReason", ""), "tasks": e["totalTasks"], "failed": e["failedTasks"]}
                      for e in executors],
        "jobs": [{"id": j["jobId"], "submitted_s": round(_millis(j["submissionTime"]) - start, 1),
                  "completed_s": round(_millis(j["completionTime"]) - start, 1) if j.get("completionTime") else None,
                  "tasks": j["numTasks"], "failed_tasks": j["numFailedTasks"]} for j in jobs],
        "killed": kill,
    }
    assert max(alive for _, alive in timeline) <= bounds["max_executors"], timeline
    killed = next(e for e in executors if e["id"] == kill["executor_id"])
    assert killed.get("removeTime") and killed["failedTasks"] >= 1, killed
    assert all(j["status"] == "SUCCEEDED" for j in jobs), jobs
    assert sum(j["numFailedTasks"] for j in jobs) >= 1  # the killed executor's tasks failed, and were run again
    # Executors were added while jobs were running (work arrived), and dynamic allocation released idle ones while
    # the application ran ("spark scale down": decommissioned, no sooner than executorIdleTimeout after they came).
    running = [(_millis(j["submissionTime"]), _millis(j["completionTime"])) for j in jobs]
    added_for_work = [e for e in executors if any(a <= _millis(e["addTime"]) <= b for a, b in running)]
    assert added_for_work, platform.report["features_dynamic_allocation"]
    scaled_down = [e for e in executors if "spark scale down" in (e.get("removeReason") or "")]
    assert scaled_down and all(_millis(e["removeTime"]) < end for e in scaled_down), platform.report["features_dynamic_allocation"]
    assert all(_millis(e["removeTime"]) - _millis(e["addTime"]) >= _seconds(idle_timeout) for e in scaled_down)
    # The same output as an undisturbed run of the same code on the same input.
    features = pipeline.result("features", pipeline.phases["run"]["features"]["try_number"])
    s3 = platform.s3_env()
    check = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "cluster" / "features_check.py"), s3["S3_ENDPOINT"],
         s3["AWS_ACCESS_KEY_ID"], s3["AWS_SECRET_ACCESS_KEY"], str(features["bronze_version"]),
         str(features["features_version"])], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert check.returncode == 0, check.stderr[-3000:]
    compared = json.loads(check.stdout.strip().splitlines()[-1])
    assert compared["difference"] == "" and compared["cluster_rows"] == compared["undisturbed_rows"] == features["feature_rows"], compared


def test_the_summary_read_back_on_the_cluster_reconciles(pipeline: PipelineRun, platform: Live):
    """What `make cluster-run` writes to var/cluster-run-summary.json, with the keys of var/run-summary.json."""
    summary = cluster_run.cluster_summary(platform)
    platform.report["summary"] = summary
    from run_local import summary_problems

    assert summary_problems(summary) == []
    assert summary["profile"] == "kind" and summary["predictions_unattributed"] == 0
    assert summary["predictions_rows"] >= summary["rows_ingested"]
    assert summary["bronze_rows"] >= summary["rows_ingested"] + summary["stream_rows"]

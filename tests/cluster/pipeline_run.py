"""The DAG run tests/cluster share (conftest's package fixture ``pipeline``): fraud_pipeline on the live cluster,
driven as `make cluster-run` drives it: Airflow on this host (API server, scheduler, DAG processor, triggerer; the
same DAG files, profile kind, only the chart's Airflow worker identity in its kubeconfig), the run triggered through
Airflow's REST API, every task a SparkKubernetesOperator whose SparkApplication spark-operator runs in the job
namespace, data in the chart's S3 store, every table Delta on it.

One DAG run, with the faults and the user actions a cluster sees, in this order:
0. fraud_stream is unpaused and triggered (cluster_run.ensure_stream): its task creates the long-running stream
   application, owned by the chart's ConfigMap tributary-env; there is no model yet, so the stream waits.
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
test_3_pipeline.py checks what each phase did; test_4_stream_faults.py takes the stream phase 0 created, which
waits for the champion this run promotes, through driver pods deleted mid-batch.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tributary.config import REPO_ROOT
from tests import SPARK_JAVA_OPTIONS
from tests.cluster.live import JOBS_NS, Live, driver_api

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import cluster_run  # noqa: E402

# New batches each session, so that on a developer's reused cluster too the batch is late and the stream has new files.
SESSION = time.strftime("%Y%m%dt%H%M%S", time.gmtime())
BATCH = f"live-batch-{SESSION}"
# The interval the run covers (past: ingest's future check uses its end); another than make cluster-run's.
LOGICAL_DATE = datetime(2026, 11, 28, tzinfo=timezone.utc)
CONF = {"batch_id": BATCH, "full_refresh": True, "epochs": 3, "seed": 42}  # its batch spans November
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
    trouble: str = ""  # the cluster's unhealthy conditions and latest Warning events, after the run
    stream_task: dict[str, Any] = field(default_factory=dict)  # phase 0: fraud_stream's run (cluster_run.ensure_stream)

    def app_name(self, job: str, try_number: int) -> str:
        """The name the DAG's template gives (tributary/sparkapp.py K8S_RUN_SUFFIX): run hash and try."""
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
    """Kills an executor pod of a running application while it runs a task, with no grace period (SIGKILL, no
    decommissioning): the driver's REST API (its pod IP, port 4040) lists the running tasks of the active stages, and
    the executor running the most recently launched one loses its pod. A task can still finish between that look and
    the kill (the container outlives its deleted pod by a moment), so the killer follows the task in the driver's API:
    if it succeeded after all, it kills again, at most ``tries`` pods. ``killed`` is the kill that cost the
    application a running task; ``kills`` every kill."""

    OUTCOME_WAIT_S = 90  # the driver notices a vanished executor by its pod watch, or after missingPodDetectDelta 30 s

    def __init__(self, platform: Live, app: str, tries: int = 3):
        super().__init__(daemon=True)
        self.platform, self.app, self.tries = platform, app, tries
        self.done = threading.Event()
        self.killed: dict[str, Any] = {}
        self.kills: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.done.is_set() and not self.killed and len(self.kills) < self.tries:
            try:
                kill = self.kill_one()
            except Exception as exc:  # noqa: BLE001 - the driver or a pod comes and goes; keep watching
                self.note(exc)
                kill = None
            if kill:
                self.kills.append(kill)
                kill["task_status"] = self.task_outcome(kill)
                if kill["task_status"] != "SUCCESS":
                    self.killed = kill
            self.done.wait(1)

    def note(self, exc: Exception) -> None:
        self.errors = (self.errors + [repr(exc)[:300]])[-5:]

    def kill_one(self) -> dict[str, Any] | None:
        pods = self.platform.get("pods", "-n", JOBS_NS, "-l", f"sparkoperator.k8s.io/app-name={self.app}")["items"]
        driver = next((p for p in pods if p["metadata"]["labels"].get("spark-role") == "driver"
                       and p["status"].get("phase") == "Running" and p["status"].get("podIP")), None)
        if driver is None:
            return None
        ip = driver["status"]["podIP"]
        (app,) = driver_api(ip, "/applications")
        live = {p["metadata"]["labels"].get("spark-exec-id"): p for p in pods
                if p["status"].get("phase") == "Running" and p["metadata"]["labels"].get("spark-role") == "executor"}
        running = []  # (stage, task) for each task running on an executor whose pod is up
        for summary in driver_api(ip, f"/applications/{app['id']}/stages?status=active"):
            if summary.get("numActiveTasks"):
                stage = driver_api(ip, f"/applications/{app['id']}/stages/{summary['stageId']}/{summary['attemptId']}"
                                       "?details=true&taskStatus=RUNNING")
                running += [(stage, task) for task in (stage.get("tasks") or {}).values() if task["executorId"] in live]
        if not running:
            return None
        stage, task = max(running, key=lambda pair: pair[1]["launchTime"])
        pod = live[task["executorId"]]["metadata"]["name"]
        self.platform.kubectl("delete", "pod", pod, "-n", JOBS_NS, "--grace-period=0", "--force", "--wait=false")
        return {"pod": pod, "executor_id": task["executorId"], "app_id": app["id"], "at": time.time(),
                "driver_ip": ip, "task": {"id": task["taskId"], "launched": task["launchTime"]},
                "stage": {"id": stage["stageId"], "attempt": stage["attemptId"], "name": stage["name"][:80],
                          "active_tasks": stage["numActiveTasks"], "complete_tasks": stage["numCompleteTasks"],
                          "tasks": stage["numTasks"]}}

    def task_outcome(self, kill: dict[str, Any]) -> str:
        """The killed task's status once the driver has settled it: SUCCESS (it finished before its executor died),
        FAILED or KILLED; RUNNING if the driver had not settled it within OUTCOME_WAIT_S (its executor is gone: it
        cannot succeed); UNKNOWN if the driver stopped answering."""
        path = (f"/applications/{kill['app_id']}/stages/{kill['stage']['id']}/{kill['stage']['attempt']}"
                "?details=true")
        deadline, status = time.monotonic() + self.OUTCOME_WAIT_S, "UNKNOWN"
        while time.monotonic() < deadline and not self.done.is_set():
            try:
                status = driver_api(kill["driver_ip"], path)["tasks"][str(kill["task"]["id"])]["status"]
            except Exception as exc:  # noqa: BLE001 - a busy driver times out now and then
                self.note(exc)
            if status not in {"RUNNING", "UNKNOWN"}:
                break
            self.done.wait(2)
        return status


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


def run_pipeline(platform: Live, home: Path) -> PipelineRun:
    """The DAG run of this module's docstring, on ``platform``, with Airflow's home in ``home``."""
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
    # The cluster's Spark drivers and executors compile with C1 only (tests.SPARK_JAVA_OPTIONS), given to Airflow,
    # whose tasks render their applications at run time, and to the render the tests compare with (conftest.py).
    extra_env = {"TRIBUTARY_SPARKAPP_TTL_SECONDS": str(TTL_S), **SPARK_JAVA_OPTIONS}
    with cluster_run.host_airflow(platform, home, AIRFLOW_PORT, extra_env=extra_env) as api:
        platform.report["airflow_ready_s"] = round(time.monotonic() - t0, 1)
        run.stream_task = cluster_run.ensure_stream(api)
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
        run.executor_kill = {**killer.killed, "kills": killer.kills, "watch_errors": killer.errors}
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
    platform.report["airflow_task_seconds"] = task_seconds(run.phases)
    platform.report["ingest_first_try_state"] = first["state"]
    platform.report["executor_kill"] = run.executor_kill
    run.trouble = platform.trouble()  # probe failures, restarts, evictions: the cause when a try failed unexpectedly
    platform.report["warnings_after_run"] = run.trouble.splitlines()
    return run


def task_seconds(phases: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Each phase's Airflow task durations, of the tasks that ran in that phase (a re-trigger clears only some: the
    others keep their earlier try, which is not listed again)."""
    out: dict[str, dict[str, float]] = {}
    before: dict[str, dict[str, Any]] = {}
    for phase, tasks in phases.items():
        out[phase] = {t: tasks[t].get("duration") for t in PIPELINE
                      if t in tasks and tasks[t].get("start_date") != before.get(t, {}).get("start_date")}
        before = tasks
    return out


def results(log: str) -> list[dict[str, Any]]:
    return Live.results("\n".join(re.sub(r"^.*?(TRIBUTARY_RESULT )", r"\1", line) for line in log.splitlines()))



"""What the shared DAG run on the live cluster (tests/cluster/pipeline_run.py, the package fixture ``pipeline``) did,
phase by phase: the late batch, the features executor killed mid-stage, the re-triggered interval, the version promoted
by hand, scoring with MLflow down; where the scheduler placed every pod; the History Server's view of the run's
applications and of features' dynamic allocation; and the summary `make cluster-run` writes, read back on the cluster.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import pytest

from tributary.config import REPO_ROOT
from tests.cluster.live import JOBS_NS, RELEASE_NS, Live
from tests.cluster.pipeline_run import BATCH, PIPELINE, TTL_S, PipelineRun, results
from cluster_platform import failure_report  # noqa: E402  (scripts/, on sys.path through tests.cluster.live)


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
        extra = {(job, n): pipeline.logs.get((job, n), "") for n in range(run[job]["try_number"] + 1,
                                                                          again[job]["try_number"])}
        assert again[job]["try_number"] == run[job]["try_number"] + 1 and again[job]["state"] == "success", (
            f"{job}: {again[job]}\n{failure_report(extra)}\n--- the cluster ---\n{pipeline.trouble}")
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
    test killed mid-stage was lost with its running task (failed, in the stage's task list), Spark re-ran that
    partition on another executor, and the job's output equals that of an undisturbed run of the same code on
    the same bronze version."""
    from tributary.config import load_profile

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
    assert int(props["spark.dynamicAllocation.initialExecutors"]) == bounds["initial_executors"]
    idle_timeout = props["spark.dynamicAllocation.executorIdleTimeout"]
    executors = [e for e in platform.history(f"/applications/{app_id}/allexecutors") if e["id"] != "driver"]
    jobs = platform.history(f"/applications/{app_id}/jobs")
    timeline = executor_timeline(executors, start, {k["executor_id"]: k["at"] for k in kill["kills"]})
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
    assert killed.get("removeTime"), killed
    # The task the killer followed failed with its executor, and Spark ran its partition again elsewhere. (Read from
    # the stage's tasks: the executor summary's failedTasks can miss a failure that arrives after the executor's
    # removal, as the task of a vanished pod often does.)
    attempts = platform.history(f"/applications/{app_id}/stages/{kill['stage']['id']}?details=true")
    tasks = [t for stage_attempt in attempts for t in (stage_attempt.get("tasks") or {}).values()]
    lost = next((t for t in tasks if t["taskId"] == kill["task"]["id"]), None)
    assert lost, f"task {kill['task']['id']} is not in stage {kill['stage']['id']}'s attempts: {attempts}"
    platform.report["features_dynamic_allocation"]["lost_task"] = {
        k: lost.get(k) for k in ("taskId", "index", "attempt", "executorId", "status", "errorMessage")}
    assert (lost["status"], lost["executorId"]) == ("FAILED", kill["executor_id"]), lost
    assert any(t["index"] == lost["index"] and t["status"] == "SUCCESS" and t["executorId"] != kill["executor_id"]
               for t in tasks), [(t["index"], t["attempt"], t["status"], t["executorId"]) for t in tasks]
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


def test_mlflow_serves_its_metrics_behind_its_basic_auth(pipeline: PipelineRun, platform: Live):
    """The chart's MLflow runs with --expose-prometheus. Its basic-auth guards /metrics: 401 without credentials or
    with a wrong password, and for the admin (whose Secret metrics.podMonitor scrapes with) the request counters the
    Grafana dashboard's MLflow panels query, counting the run's calls. (A non-admin user gets 403; the jobs' client
    Secret here holds the admin, k8s/install.sh, so that is not checked here.)"""
    import base64
    import urllib.error
    import urllib.request

    from tests.grafana import samples

    def get(url: str, user: str | None = None, password: str | None = None) -> tuple[int, str]:
        headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()} if user \
            else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    admin = [platform.secret(RELEASE_NS, "tributary-mlflow-auth", key) for key in ("username", "password")]
    with platform.mlflow_env() as env:
        url = env["MLFLOW_TRACKING_URI"] + "/metrics"
        assert get(url)[0] == 401
        assert get(url, admin[0], admin[1] + "-wrong")[0] == 401
        status, text = get(url, *admin)
    assert status == 200
    served = samples(text)
    requests = [value for name, labels, value in served if name == "mlflow_http_request_total"
                and labels.get("status", "").startswith("2")]
    assert requests and sum(requests) > 0, sorted({name for name, _, _ in served})
    assert any(name.startswith("mlflow_http_request_duration_seconds") for name, _, _ in served)
    platform.report["mlflow_metrics_2xx_requests"] = sum(requests)

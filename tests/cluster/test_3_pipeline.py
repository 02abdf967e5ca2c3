"""spark-operator reconciles the pipeline's real SparkApplications: the specs `make render` writes for the kind
profile, applied as rendered (Airflow's per-run templates filled as the operator fills them) in pipeline order,
with the Airflow worker's service account, then the chart's long-running stream. Data lands in the chart's S3
store and every table is Delta on it."""

from __future__ import annotations

import re
import time

import yaml

from spark_jobs.config import REPO_ROOT
from tests.cluster.live import JOBS_NS, Live, rendered

BATCH = "live-batch-1"
RUN = "live0000001"  # stands for the hash of the DAG run id in the name
PARAMS = {"batch_id": BATCH, "epochs": "3", "seed": "42", "promote_version": ""}
PIPELINE = ("ingest", "features", "train", "promote", "score")
APP_TIMEOUT_S = 900


def test_batch_applications_complete_in_pipeline_order(platform: Live):
    landed = platform.land("--rows", "10000", "--batch-id", BATCH)
    assert landed and all(key.startswith(f"s3://tributary-lake/landing/batch/{BATCH}/") for key in landed)
    durations, results = {}, {}
    for job in PIPELINE:
        name = platform.apply_app(rendered(job, f"tributary-{job}-{RUN}-1", **PARAMS))
        state, seconds, status = platform.wait_app(name, APP_TIMEOUT_S)
        log = platform.driver_log(name)
        assert state == "COMPLETED", f"{job}: {state} after {seconds}s, {status}\n{log[-4000:]}"
        # The chart's RBAC and quota were enough: no Kubernetes call of the driver was refused.
        assert "forbidden" not in log, f"{job}: a refused Kubernetes call\n" + "\n".join(
            line for line in log.splitlines() if "forbidden" in line)[:3000]
        emitted = platform.results(log)
        assert emitted and emitted[-1]["job"] == job, f"{job}: no TRIBUTARY_RESULT in the driver log\n{log[-2000:]}"
        durations[job], results[job] = seconds, emitted[-1]
    platform.report["sparkapplication_seconds"] = durations
    platform.report["results"] = results
    ingest = results["ingest"]
    assert ingest["rows_landed"] == ingest["rows_ingested"] + ingest["rows_quarantined"] + ingest["rows_duplicate"]
    assert ingest["rows_quarantined"] > 0
    if ingest["rows_ingested"]:  # the batch's first ingestion (a fresh cluster, as in `make test`)
        assert results["features"]["feature_rows"] == ingest["rows_ingested"]
        assert results["promote"]["decision"] == "promoted"
    else:  # a developer's cluster where an earlier run ingested it: nothing new, nothing lost
        assert ingest["rows_duplicate"] > 0
    assert results["score"]["predictions_rows"] == results["features"]["feature_rows"]
    assert int(results["score"]["model_version"]) == results["promote"]["champion_version"]


def test_scoring_executors_were_scheduled_on_the_gpu_pool(platform: Live):
    """The scheduler put scoring's executors on the tainted GPU node (its request, toleration and node selector)
    and the driver on spark-cpu. Executors are deleted when the application ends, so their placement is read from
    the scheduler's events; the node has no real GPU, so scoring took its CPU fallback (launcher.gpu.simulated)."""
    app = platform.get("sparkapplication", f"tributary-score-{RUN}-1", "-n", JOBS_NS)
    executors = set(app["status"].get("executorState", {}))
    assert executors, app["status"]
    scheduled = platform.get("events", "-n", JOBS_NS, "--field-selector", "reason=Scheduled")["items"]
    placed = {e["involvedObject"]["name"]: e["message"].rsplit(" to ", 1)[-1] for e in scheduled
              if e["involvedObject"]["name"] in executors}
    driver = platform.get("pod", f"tributary-score-{RUN}-1-driver", "-n", JOBS_NS)
    platform.report["score_pod_nodes"] = {"driver": driver["spec"]["nodeName"], "executors": placed}
    assert placed.keys() == executors, (executors, placed)
    assert set(placed.values()) == {"tributary-worker2"}
    assert driver["spec"]["nodeName"] == "tributary-worker"


def test_the_charts_stream_is_the_rendered_one_and_scores_landed_files(platform: Live):
    chart_app = platform.get("sparkapplication", "tributary-stream", "-n", JOBS_NS)
    as_rendered = yaml.safe_load((REPO_ROOT / "build" / "rendered" / "kind" / "sparkapplications" / "stream.yaml").read_text())
    assert chart_app["spec"] == as_rendered["spec"]
    assert chart_app["spec"]["restartPolicy"]["type"] == "Always"
    # It started before there was a champion, failed with the no-champion error, and the operator restarts it.
    platform.land("--target", "landing_stream", "--start", "2026-11-15", "--days", "1", "--rows", "1200",
                  "--files", "2", "--batch-id", "live-stream-1")
    deadline, scored = time.monotonic() + APP_TIMEOUT_S, 0
    t0 = time.monotonic()
    while time.monotonic() < deadline and not scored:
        log = platform.driver_log("tributary-stream")
        scored = sum(int(n) for n in re.findall(r"stream batch \d+ .*'rows_ingested': (\d+)", log))
        platform.sample_memory()
        time.sleep(5)
    state, _ = platform.app_state("tributary-stream")
    platform.report["stream_first_scored_s"] = round(time.monotonic() - t0, 1)
    assert scored > 0, f"the stream scored nothing ({state}):\n{log[-3000:]}"
    assert state == "RUNNING"
    platform.report["stream_rows_scored"] = scored


def test_a_failing_main_is_marked_failed_with_the_drivers_error(platform: Live):
    name = platform.apply_app(rendered("ingest", f"tributary-ingest-{RUN}-fail", **{**PARAMS, "batch_id": "no-such-batch"}))
    state, seconds, status = platform.wait_app(name, 600)
    log = platform.driver_log(name)
    platform.report["failed_app_seconds_to_failed"] = seconds
    assert state == "FAILED", f"{state}: {status}"
    assert "nothing landed at s3a://tributary-lake/landing/batch/no-such-batch" in log
    assert seconds < 300

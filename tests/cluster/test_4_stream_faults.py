"""The stream on the live cluster, its driver pod deleted mid-batch three times.

tributary-stream is the fraud_stream task's (ADR 0006: one owner), which the shared DAG run (the fixture
``pipeline``, phase 0) triggered through Airflow's REST API before anything else: the task created it from the
rendered spec, ``restartPolicy: Always``, its checkpoint on the S3 store, as a dependent of the chart's ConfigMap
tributary-env. No model existed yet, so it waited for the champion the DAG run then promoted, without failing. Then:

1. A group of transactions lands for it (generated files, dirty lines included).
2. At a random moment of the micro-batch that takes them (a random 0-KILL_WINDOW_S s after the batch's first Spark
   job, read from the driver's REST API, and while the checkpoint has no commit for that batch), the driver pod is
   deleted with no grace period (SIGKILL). spark-operator submits the application again; the new driver replays the
   batch from the checkpoint. The next group lands, and so on: three kills.
3. Once the checkpoint has committed every landed file, a local Spark application (tests/cluster/stream_check.py)
   reads bronze, stream_predictions and quarantine over s3a: every valid landed transaction is in bronze and in
   stream_predictions exactly once, every rejected line in quarantine exactly once. The generator is the oracle.
Last, the summary `make cluster-run` writes is read back on the cluster, with the stream's rows in it, and the
running driver's Prometheus metrics are read where its prometheus.io annotations point: every metric the Grafana
dashboard charts for the stream is there.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tributary.config import REPO_ROOT, load_profile
from tests.cluster.live import JOBS_NS, Live, driver_api
from cluster_platform import error_lines  # noqa: E402  (scripts/, on sys.path through tests.cluster.live)
from tests import SPARK_JAVA_OPTIONS
from tests.cluster.pipeline_run import SESSION, TTL_S, PipelineRun, cluster_run
from tests.grafana import charted, exposed

APP = "tributary-stream"
DRIVER = f"{APP}-driver"
KILLS = 3
KILL_WINDOW_S = 20.0
GROUP = {"rows": 600, "start": "2026-11-16", "days": 1, "dirty_fraction": 0.1}
GROUP_FILES = 2
MAX_GROUPS = 6  # a batch that ends before its drawn moment gets another group landed
SEED = int(SESSION[-6:]) * 10  # new transaction ids each session (a developer's cluster keeps earlier ones)
BATCH_IN_DESCRIPTION = re.compile(r"batch = (\d+)")


class Checkpoint:
    """The stream's checkpoint on the S3 store, read with boto3: which batches committed and which files each
    batch took (the file source's log, ``sources/0/<batch>`` and its ``.compact`` files)."""

    def __init__(self, platform: Live):
        import boto3

        env = platform.s3_env()
        self.s3 = boto3.client("s3", endpoint_url=env["S3_ENDPOINT"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                               aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
        uri = urlparse(load_profile("kind").catalog.uri("stream_checkpoint"))
        self.bucket, self.prefix = uri.netloc, uri.path.strip("/")

    def _names(self, folder: str) -> list[str]:
        names = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                      Prefix=f"{self.prefix}/{folder}/"):
            names += [obj["Key"].rsplit("/", 1)[-1] for obj in page.get("Contents", [])]
        return names

    def committed(self) -> set[int]:
        return {int(name) for name in self._names("commits") if name.isdigit()}

    def batch_files(self) -> dict[int, set[str]]:
        files: dict[int, set[str]] = {}
        for name in self._names("sources/0"):
            if not (name.isdigit() or name.endswith(".compact")):
                continue
            body = self.s3.get_object(Bucket=self.bucket, Key=f"{self.prefix}/sources/0/{name}")["Body"].read()
            for line in body.decode().splitlines()[1:]:  # the first line is the log's version
                entry = json.loads(line)
                files.setdefault(int(entry["batchId"]), set()).add(entry["path"].rsplit("/", 1)[-1])
        return files

    def processed(self) -> set[str]:
        """File names of every committed batch."""
        committed = self.committed()
        return {f for batch, names in self.batch_files().items() if batch in committed for f in names}


@dataclass
class StreamFaults:
    attempts_before: int
    first_log: str  # the driver's log before the first group landed
    log_at_first_kill: str = ""  # the first driver's log, just before it was killed
    groups: list[dict[str, Any]] = field(default_factory=list)
    kills: list[dict[str, Any]] = field(default_factory=list)
    first_batch_s: float = 0.0  # first group landed -> its batch's first Spark job
    all_committed_s: float = 0.0  # last kill -> every landed file committed
    attempts_after: int = 0
    state_after: str = ""
    check: dict[str, Any] = field(default_factory=dict)
    driver_annotations: dict[str, str] = field(default_factory=dict)  # the driver pod's, after the kills
    metrics: str = ""  # what the driver served where those annotations point (or why it could not be read)


def _driver(platform: Live) -> dict[str, Any] | None:
    pod = platform.kubectl("get", "pod", DRIVER, "-n", JOBS_NS, "-o", "json", "--ignore-not-found").stdout
    return json.loads(pod) if pod.strip() else None


def _scrape(driver: dict[str, Any] | None) -> tuple[dict[str, str], str]:
    """The driver pod's annotations, and the text its ``prometheus.io/port`` and ``path`` serve, as Prometheus's
    kubernetes-pods job would scrape them (the host routes to pod IPs); an error's text when it cannot be read."""
    if not driver:
        return {}, "no driver pod"
    annotations = driver["metadata"].get("annotations") or {}
    url = (f"http://{driver['status'].get('podIP')}:{annotations.get('prometheus.io/port', '?')}"
           f"{annotations.get('prometheus.io/path', '/?')}")
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return annotations, reply.read().decode()
    except (OSError, ValueError) as exc:
        return annotations, f"{url}: {exc}"


def _running_batches(ip: str) -> tuple[list[int], list[str]]:
    """Streaming batch ids of the jobs running on the driver now, and those jobs' names (what the batch was doing)."""
    (app,) = driver_api(ip, "/applications")
    jobs = driver_api(ip, f"/applications/{app['id']}/jobs?status=running")
    batches = [int(m.group(1)) for j in jobs if (m := BATCH_IN_DESCRIPTION.search(j.get("description") or ""))]
    return batches, [j["name"][:80] for j in jobs]


def _land_group(platform: Live, faults: StreamFaults) -> None:
    k = len(faults.groups)
    group = {**GROUP, "seed": SEED + k, "batch_id": f"live-stream-{SESSION}-{k}"}
    keys = platform.land("--target", "landing_stream", "--files", str(GROUP_FILES),
                         *[arg for key, value in group.items() for arg in (f"--{key.replace('_', '-')}", str(value))])
    assert len(keys) == GROUP_FILES, keys
    faults.groups.append({**group, "files": [key.rsplit("/", 1)[-1] for key in keys], "landed_at": time.time()})


def _landed(faults: StreamFaults) -> set[str]:
    return {name for group in faults.groups for name in group["files"]}


def kill_mid_batch(platform: Live, checkpoint: Checkpoint, faults: StreamFaults, rng: random.Random,
                   timeout: float = 900) -> dict[str, Any]:
    """Delete the driver pod once, at a random moment of a running micro-batch; returns what was killed."""
    drawn: dict[tuple[str, int], tuple[float, float]] = {}  # (driver uid, batch) -> (first seen, delay drawn)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        platform.sample_memory()
        pod = _driver(platform)
        ip = pod and pod["status"].get("phase") == "Running" and pod["status"].get("podIP")
        try:
            batches, jobs = _running_batches(ip) if ip else ([], [])
        except (OSError, ValueError):  # the driver's UI is not up yet
            batches, jobs = [], []
        now = time.monotonic()
        for batch in batches:
            if (pod["metadata"]["uid"], batch) not in drawn:
                drawn[(pod["metadata"]["uid"], batch)] = (now, rng.uniform(0, KILL_WINDOW_S))
                if not faults.first_batch_s:
                    faults.first_batch_s = round(time.time() - faults.groups[0]["landed_at"], 1)
        due = [(batch, seen, delay) for (uid, batch), (seen, delay) in drawn.items()
               if pod and uid == pod["metadata"]["uid"] and now - seen >= delay]
        if due:
            batch, seen, delay = due[-1]
            if batch not in checkpoint.committed():
                if not faults.kills:
                    faults.log_at_first_kill = platform.driver_log(APP)
                platform.kubectl("delete", "pod", DRIVER, "-n", JOBS_NS, "--grace-period=0", "--force", "--wait=false")
                files = checkpoint.batch_files().get(batch, set())
                return {"batch": batch, "delay_drawn_s": round(delay, 1), "seconds_into_batch": round(now - seen, 1),
                        "running_jobs": jobs, "files": len(files), "uid": pod["metadata"]["uid"],
                        "node": pod["spec"].get("nodeName"), "at": time.time(), "killed_at": time.monotonic()}
            del drawn[next(key for key in drawn if key[1] == batch and key[0] == pod["metadata"]["uid"])]
        if not batches and _landed(faults) <= checkpoint.processed():  # idle with nothing left to take
            assert len(faults.groups) < MAX_GROUPS, f"no batch was caught running in {MAX_GROUPS} groups: {faults}"
            _land_group(platform, faults)
        time.sleep(0.5)
    pytest.fail(f"no micro-batch of {APP} was caught running in {timeout:.0f}s: {faults.kills}")


def _wait_restarted(platform: Live, old_uid: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = _driver(platform)
        if pod and pod["metadata"]["uid"] != old_uid and pod["status"].get("phase") == "Running":
            return pod
        platform.sample_memory()
        time.sleep(1)
    state, status = platform.app_state(APP)
    pytest.fail(f"spark-operator did not restart {APP} in {timeout:.0f}s: {state} {status}")


@pytest.fixture(scope="module")
def stream_faults(pipeline: PipelineRun, platform: Live) -> StreamFaults:
    assert pipeline.state == "success", "the stream needs the champion the DAG run promotes"
    checkpoint = Checkpoint(platform)
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    _, status = platform.app_state(APP)
    faults = StreamFaults(attempts_before=status.get("submissionAttempts", 0),
                          first_log=platform.driver_log(APP))
    _land_group(platform, faults)
    for _ in range(KILLS):
        kill = kill_mid_batch(platform, checkpoint, faults, rng)
        restarted = _wait_restarted(platform, kill["uid"])
        kill["restarted_s"] = round(time.monotonic() - kill.pop("killed_at"), 1)
        kill["new_driver_node"] = restarted["spec"].get("nodeName")
        faults.kills.append(kill)
        if len(faults.kills) < KILLS:
            _land_group(platform, faults)
    t0 = time.monotonic()
    deadline = t0 + 900
    while not _landed(faults) <= checkpoint.processed():
        if time.monotonic() > deadline:
            state, status = platform.app_state(APP)
            pytest.fail(f"{sorted(_landed(faults) - checkpoint.processed())} not committed in 900s: {state} {status}")
        platform.sample_memory()
        time.sleep(5)
    faults.all_committed_s = round(time.monotonic() - t0, 1)
    faults.state_after, status = platform.app_state(APP)
    faults.attempts_after = status.get("submissionAttempts", 0)
    faults.driver_annotations, faults.metrics = _scrape(_driver(platform))
    groups = platform.report.setdefault("stream_faults", {})
    groups.update({"seed": seed, "groups": len(faults.groups), "kills": faults.kills,
                   "first_batch_s": faults.first_batch_s, "all_committed_after_last_kill_s": faults.all_committed_s,
                   "submission_attempts": [faults.attempts_before, faults.attempts_after]})
    spec = REPO_ROOT / "var" / "stream-fault-groups.json"
    spec.write_text(json.dumps(faults.groups, indent=1))
    s3 = platform.s3_env()
    check = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "cluster" / "stream_check.py"), s3["S3_ENDPOINT"],
         s3["AWS_ACCESS_KEY_ID"], s3["AWS_SECRET_ACCESS_KEY"], str(spec)],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert check.returncode == 0, check.stderr[-3000:]
    faults.check = json.loads(check.stdout.strip().splitlines()[-1])
    groups["exactly_once"] = faults.check
    return faults


def test_the_stream_task_created_the_rendered_stream_which_waited_for_the_champion(stream_faults: StreamFaults,
                                                                                    platform: Live,
                                                                                    pipeline: PipelineRun):
    app = platform.get("sparkapplication", APP, "-n", JOBS_NS)
    as_rendered = yaml.safe_load((REPO_ROOT / "build" / "rendered" / "kind" / "sparkapplications" / "stream.yaml")
                                 .read_text())
    # The task rendered it in the cluster, from the kind profile and the environment the chart gives Airflow, in which
    # this session shortens every application's timeToLiveSeconds (TRIBUTARY_SPARKAPP_TTL_SECONDS), the stream's too.
    assert as_rendered["spec"]["timeToLiveSeconds"] != TTL_S
    # ... and gives every driver and executor its JVM options (tests.SPARK_JAVA_OPTIONS), both renders alike.
    java_options = SPARK_JAVA_OPTIONS["TRIBUTARY_SPARK_JAVA_OPTIONS"]
    assert {app["spec"]["sparkConf"].get(f"spark.{side}.extraJavaOptions") for side in ("driver", "executor")} == {
        java_options}, app["spec"]["sparkConf"]
    assert app["spec"] == {**as_rendered["spec"], "timeToLiveSeconds": TTL_S}
    assert app["spec"]["restartPolicy"]["type"] == "Always"
    assert load_profile("kind").catalog.uri("stream_checkpoint").startswith("s3a://")
    assert pipeline.stream_task["state"] == "success", pipeline.stream_task["log"][-3000:]
    owner = platform.get("configmap", "tributary-env", "-n", JOBS_NS)  # the chart's: helm uninstall deletes it
    assert app["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "tributary-env", "uid": owner["metadata"]["uid"]}]
    assert owner["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    if not platform.report["reused_running_cluster"]:
        assert "is absent; creating it from the rendered spec" in pipeline.stream_task["log"], \
            pipeline.stream_task["log"][-3000:]
        # Installed before there was a model: it waited for the champion, and was never restarted for it.
        assert stream_faults.attempts_before == 1, (
            f"{stream_faults.attempts_before} submissions before the first kill; what the driver now running said "
            f"failed:\n{error_lines(stream_faults.first_log)}\n"
            f"--- the cluster after the DAG run ---\n{pipeline.trouble}")
        assert "the stream waits for one" in stream_faults.first_log, stream_faults.first_log[-3000:]


def test_the_running_stream_took_the_version_promoted_by_hand_at_its_next_batch(stream_faults: StreamFaults,
                                                                               pipeline: PipelineRun, platform: Live):
    """The stream started with the champion the DAG run promoted; an ML engineer then promoted another version by
    hand (pipeline_run.py, phase 4). The first micro-batch after that (this module's first group, before any kill)
    looked @champion up again and scored with the new version, with no restart; every row of the groups carries it
    (the drivers that replayed batches after the kills resolved it when they started)."""
    promoted = pipeline.promoted
    if not platform.report["reused_running_cluster"]:  # on a developer's cluster the stream may have started later
        moved = (f"moved from version {promoted['result']['champion_version_before']} to {promoted['version']}: "
                 f"the stream scores with {promoted['version']} from this batch on")
        assert moved in stream_faults.log_at_first_kill, error_lines(stream_faults.log_at_first_kill)
    assert stream_faults.check["model_versions"] == [promoted["version"]], stream_faults.check


def test_the_driver_was_deleted_mid_batch_three_times_and_the_operator_restarted_it(stream_faults: StreamFaults):
    kills = stream_faults.kills
    assert len(kills) == KILLS
    for kill in kills:
        assert kill["files"] >= 1 and kill["seconds_into_batch"] >= kill["delay_drawn_s"], kill
        assert kill["node"] == kill["new_driver_node"] == "tributary-worker", kill  # spark-cpu, never the gpu node
    assert stream_faults.attempts_after == stream_faults.attempts_before + KILLS
    assert stream_faults.state_after == "RUNNING"


def test_every_landed_transaction_is_in_bronze_and_stream_predictions_exactly_once(stream_faults: StreamFaults):
    check = stream_faults.check
    assert check["groups"] == len(stream_faults.groups) and check["files"] == GROUP_FILES * len(stream_faults.groups)
    for table in ("bronze", "stream_predictions"):
        counts = check[table]
        assert counts["expected"] > 0, check
        assert counts["rows"] == counts["expected"] and counts["missing"] == counts["more_than_expected"] == 0, check
        assert counts["unexpected"] == 0, check
    assert check["unattributed_predictions"] == 0, check


def test_every_rejected_line_is_in_quarantine_exactly_once(stream_faults: StreamFaults):
    counts = stream_faults.check["quarantine"]
    assert counts["expected"] > 0
    assert counts["rows"] == counts["expected"] and counts["missing"] == counts["more_than_expected"] == 0, counts
    assert counts["unexpected"] == 0, counts


def test_the_summary_read_back_on_the_cluster_reconciles(stream_faults: StreamFaults, platform: Live):
    """What `make cluster-run` writes to var/cluster-run-summary.json, with the keys of var/run-summary.json."""
    summary = cluster_run.cluster_summary(platform)
    platform.report["summary"] = summary
    from run_local import summary_problems

    assert summary_problems(summary) == []
    assert summary["profile"] == "kind" and summary["predictions_unattributed"] == 0
    assert summary["predictions_rows"] >= summary["rows_ingested"]
    assert summary["stream_rows"] >= stream_faults.check["stream_predictions"]["expected"]
    assert summary["bronze_rows"] >= summary["rows_ingested"] + summary["stream_rows"]


def test_the_stream_driver_serves_the_dashboards_metrics_where_its_annotations_point(stream_faults: StreamFaults):
    """The restarted driver, scraped as its prometheus.io annotations say, serves every metric the Grafana
    dashboard's stream panels query (the query's rates and batch duration, the driver's task counters)."""
    assert stream_faults.driver_annotations.get("prometheus.io/scrape") == "true", stream_faults.driver_annotations
    served = exposed(stream_faults.metrics)  # an error text here parses to nothing useful and fails below
    stream = set(charted("tributary-stream"))  # the queries scoped to the stream's driver pod
    assert stream and stream <= served, (sorted(stream - served), stream_faults.metrics[:2000])


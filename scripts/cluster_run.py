"""`make cluster-run`: what `make run` does, on the local Kubernetes cluster, driven the way a user drives it.

After `make cluster-up` (root), each step is the real component:
1. the images `make images-build` built are pushed to the cluster's registry and loaded on its nodes, and
   helm/tributary is installed or upgraded with the kind values (both no-ops when nothing changed);
2. a batch of raw transactions lands in the chart's S3 store;
3. Airflow runs on this host, as a managed Airflow would (API server, scheduler, DAG processor, triggerer), with the
   same DAG files, the kind profile and a Kubernetes connection holding the chart's Airflow worker identity;
   `fraud_stream` is unpaused and triggered through Airflow's REST API: its task creates the long-running stream
   application if absent (ADR 0006), which waits for a champion model; then `fraud_pipeline` is unpaused and
   triggered, and every task is a SparkKubernetesOperator whose SparkApplication spark-operator runs in the job
   namespace;
4. a second batch (new transactions each time) lands for the stream, which scores it;
5. a `summary` SparkApplication reads the tables and MLflow on the cluster and prints the summary that becomes
   var/cluster-run-summary.json, with the same keys as var/run-summary.json, plus each task's duration.

    python scripts/cluster_run.py [--rows 20000] [--airflow-port 8090]
    python scripts/cluster_run.py --promote-version N     # make cluster-promote VERSION=N

Running it again is safe: each invocation triggers a new run (its logical date is the trigger time), the same batch
lands again and ingest's MERGE finds nothing new in it, features, training, the policy and scoring run again, and
the stream gets a new batch. Clearing a finished task in the UI runs it again as a new application.

``--promote-version N`` only promotes: ``python -m spark_jobs.promote --profile kind --version N`` on this host,
against the chart's MLflow through ``kubectl port-forward`` with the jobs' client credentials, as an ML engineer
would; the next scoring run and the stream's next batch use that version.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from airflow_api import AirflowAPI  # noqa: E402
from cluster_platform import (  # noqa: E402
    JOBS_NS, RELEASE_NS, REPO_ROOT, Platform, PlatformError, failure_report, rendered)

BATCH_ID = "cluster-batch-0001"
# The stream's batch is new data each time (its id names the landing time; the same seed keeps the same cards), so
# there is always something for the long-running stream to score; re-landing files it has seen would give it none.
STREAM_BATCH_PREFIX = "cluster-stream-"
ADMIN = "admin"


def say(message: str) -> None:
    print(f"cluster-run: {message}", flush=True)


def step(title: str, fn, *args):
    say(f"{title} ...")
    t0 = time.monotonic()
    result = fn(*args)
    if isinstance(result, subprocess.CompletedProcess) and result.returncode != 0:
        raise PlatformError(f"{title} failed (exit {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    say(f"{title}: {time.monotonic() - t0:.0f}s")
    return result


def airflow_environment(platform: Platform, home: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This host's Airflow for the kind profile: SQLite and LocalExecutor under ``home``, the chart's tributary-env
    ConfigMap (what its pods get), and only the Airflow worker's kubeconfig in reach (no admin identity); ``extra``
    last (the tests shorten the applications' timeToLiveSeconds through the profile's variable)."""
    from tributary.config import load_profile
    from tributary.local_env import airflow_env

    kubeconfig = platform.airflow_kubeconfig()
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8"}
    env = airflow_env(load_profile("kind"), home, base=base, kubeconfig=kubeconfig)
    env.update(platform.get("configmap", "tributary-env", "-n", RELEASE_NS)["data"])
    env.update({
        "PYTHONPATH": str(REPO_ROOT),
        "KUBECONFIG": str(kubeconfig),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        # Only the runs this script triggers: unpausing @daily fraud_pipeline must not also start the scheduler's
        # own run of the latest interval (which max_active_runs=1 would queue behind ours).
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    })
    env.update(extra or {})
    return env


@contextmanager
def host_airflow(platform: Platform, home: Path, port: int, extra_env: dict[str, str] | None = None,
                 timeout: float = 300) -> Iterator[AirflowAPI]:
    """`airflow standalone` on this host for the kind profile, its metadata DB migrated first; yields its REST API
    and stops it (by process group), also when the body fails."""
    env = airflow_environment(platform, home, port, extra_env)
    home.mkdir(parents=True, exist_ok=True)
    migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], cwd=REPO_ROOT, capture_output=True,
                             text=True, env=env)
    if migrate.returncode != 0:
        raise PlatformError(f"airflow db migrate failed:\n{migrate.stderr[-3000:]}")
    log = home / "standalone.log"
    proc = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=env, cwd=REPO_ROOT,
                            start_new_session=True, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        password = None
        while password is None:
            if proc.poll() is not None:
                raise PlatformError(f"airflow standalone exited ({proc.returncode}); see {log}")
            if time.monotonic() > deadline:
                raise PlatformError(f"Airflow's API at {url} did not answer in {timeout:.0f}s; see {log}")
            password = _answering(url, home)
            time.sleep(2)
        say(f"Airflow UI {url}  login: {ADMIN} / {password}  (logs: {log})")
        yield AirflowAPI(url, ADMIN, password)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _answering(url: str, home: Path) -> str | None:
    """The admin password once the API server answers its health check (standalone writes it at start)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5):
            pass
        return json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())[ADMIN]
    except (OSError, ValueError, KeyError):
        return None


def run_pipeline(api: AirflowAPI, logical_date: datetime, timeout: float,
                 platform: Platform | None = None) -> tuple[str, dict[str, dict]]:
    """fraud_pipeline for ``logical_date``, triggered through the REST API; returns the run id and each task's
    state, try number and duration."""
    api.wait_for_dag("fraud_pipeline")
    api.unpause("fraud_pipeline")
    run_id = api.trigger("fraud_pipeline", logical_date, {"batch_id": BATCH_ID, "full_refresh": True})
    say(f"fraud_pipeline run {run_id} triggered; waiting (each task a SparkApplication)")
    last = {"state": ""}

    def progress(state: str) -> None:
        if state != last["state"]:
            say(f"  run state: {state}")
            last["state"] = state

    state = api.wait_run("fraud_pipeline", run_id, timeout, progress)
    tasks = {t["task_id"]: {"state": t["state"], "try_number": t["try_number"], "duration_s": t.get("duration")}
             for t in api.task_instances("fraud_pipeline", run_id)}
    if state != "success":
        failed = [t for t, info in tasks.items() if info["state"] not in ("success", None)]
        tails = failure_report({(t, n): api.task_log("fraud_pipeline", run_id, t, n)
                                for t in failed for n in range(1, tasks[t]["try_number"] + 1)})
        cluster = f"\n--- the cluster ---\n{platform.trouble()}" if platform else ""
        raise PlatformError(f"fraud_pipeline run {run_id} ended '{state}'; tasks {tasks}\n{tails}{cluster}")
    return run_id, tasks


def ensure_stream(api: AirflowAPI, timeout: float = 600) -> dict:
    """fraud_stream unpaused and triggered through the REST API, as a user starts the stream: its task creates
    tributary-stream (a dependent of the chart's tributary-env) when absent, else finds it. Returns the run id and
    the task's state, try number and log."""
    api.wait_for_dag("fraud_stream")
    api.unpause("fraud_stream")
    run_id = api.trigger("fraud_stream", datetime.now(timezone.utc).replace(microsecond=0), {})
    state = api.wait_run("fraud_stream", run_id, timeout)
    (task,) = api.task_instances("fraud_stream", run_id)
    log = api.task_log("fraud_stream", run_id, task["task_id"], task["try_number"] or 1)
    if state != "success":
        raise PlatformError(f"fraud_stream run {run_id} ended '{state}' (task {task['state']}):\n{log[-3000:]}")
    return {"run_id": run_id, "state": task["state"], "try_number": task["try_number"], "log": log}


def stream_scored(platform: Platform) -> tuple[str, int]:
    """The stream's driver pod (its uid: the operator replaces it on a restart) and the rows it ingested so far,
    from its per-batch log lines."""
    pod = platform.kubectl("get", "pod", "tributary-stream-driver", "-n", JOBS_NS, "-o", "jsonpath={.metadata.uid}",
                           check=False).stdout.strip()
    log = platform.driver_log("tributary-stream")
    return pod, sum(int(n) for n in re.findall(r"stream batch \d+ .*'rows_ingested': (\d+)", log))


def wait_for_stream(platform: Platform, before: tuple[str, int], timeout: float) -> int:
    """Wait until the stream application has ingested rows beyond ``before`` (counted afresh in a new driver pod);
    returns how many more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod, count = stream_scored(platform)
        scored = count - before[1] if pod == before[0] else count
        if scored > 0:
            return scored
        time.sleep(10)
    state, status = platform.app_state("tributary-stream")
    raise PlatformError(f"the stream scored nothing new in {timeout:.0f}s (state {state}): {status}")


def cluster_summary(platform: Platform, timeout: int = 900) -> dict:
    """spark_jobs.summary as a SparkApplication on the cluster (the ingest job's spec, image, identity and conf,
    another main): it reads the Delta tables on the S3 store and the champion from the in-cluster MLflow."""
    name = f"tributary-summary-{int(time.time())}"
    spec = rendered("ingest", name, batch_id="-")
    spec["metadata"]["name"] = name
    spec["metadata"]["labels"]["tributary.dev/job"] = "summary"
    spec["spec"]["mainApplicationFile"] = "local:///opt/tributary/spark_jobs/summary.py"
    spec["spec"]["arguments"] = ["--profile", "kind", "--out", "/tmp/summary.json"]
    platform.apply_app(spec)
    state, seconds, status = platform.wait_app(name, timeout)
    log = platform.driver_log(name)
    results = [r for r in platform.results(log) if r.get("job") == "summary"]
    if state != "COMPLETED" or not results:
        raise PlatformError(f"summary application {name} ended {state} after {seconds}s: {status}\n{log[-3000:]}")
    platform.kubectl("delete", "sparkapplication", name, "-n", JOBS_NS, "--wait=false",
                     kubeconfig=platform.airflow_kubeconfig())
    return results[-1]


def promote_by_hand(platform: Platform, version: int) -> dict:
    """``python -m spark_jobs.promote --profile kind --version N`` on this host against the chart's MLflow; returns
    its result (decision, champion_version, champion_version_before)."""
    with platform.mlflow_env() as mlflow:
        env = {**os.environ, **mlflow, "TRIBUTARY_PROFILE": "kind", "PYTHONPATH": str(REPO_ROOT)}
        proc = subprocess.run([sys.executable, "-m", "spark_jobs.promote", "--profile", "kind", "--version",
                               str(version)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    results = [r for r in Platform.results(proc.stdout) if r.get("job") == "promote"]
    if proc.returncode != 0 or not results:
        raise PlatformError(f"promoting version {version} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return results[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000, help="transactions in the first batch")
    parser.add_argument("--airflow-port", type=int, default=8090)
    parser.add_argument("--airflow-home", type=Path, default=REPO_ROOT / "var" / "airflow-cluster")
    parser.add_argument("--summary", type=Path, default=REPO_ROOT / "var" / "cluster-run-summary.json")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds fraud_pipeline may take")
    parser.add_argument("--promote-version", type=int, metavar="N",
                        help="only point @champion at registered version N by hand (no pipeline run)")
    args = parser.parse_args(argv)
    # A TERM (make interrupted, CI cancelled) unwinds like Ctrl-C, so host Airflow is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    platform = Platform()
    try:
        if not platform.running():
            raise PlatformError("no local cluster is running: `sudo make cluster-up` first")
        if args.promote_version is not None:
            result = promote_by_hand(platform, args.promote_version)
            say(f"@champion is version {result['champion_version']} (was {result['champion_version_before']})")
            return 0
        if not (REPO_ROOT / "build" / "rendered" / "kind" / "sparkapplications" / "ingest.yaml").exists():
            raise PlatformError("no rendered kind specs: `make render PROFILE=kind` first (make cluster-run does)")
        step("push the images to the cluster", platform.push_images)
        step("install helm/tributary (kind values)", platform.install)
        landed = step("land a batch in the S3 store", platform.land, "--rows", str(args.rows), "--batch-id", BATCH_ID,
                      "--seed", "42")
        say(f"  {len(landed)} file(s) under s3://tributary-lake/landing/batch/{BATCH_ID}/")
        with host_airflow(platform, args.airflow_home, args.airflow_port) as api:
            step("start the stream (fraud_stream)", ensure_stream, api)
            run_id, tasks = run_pipeline(api, datetime.now(timezone.utc).replace(microsecond=0), args.timeout, platform)
        for task, info in tasks.items():
            say(f"  {task:<10} {info['state']:<8} try {info['try_number']}  {info['duration_s'] or 0:.0f}s")
        before = stream_scored(platform)
        stream_batch = STREAM_BATCH_PREFIX + datetime.now(timezone.utc).strftime("%Y%m%dt%H%M%S")
        step("land a second batch for the stream", platform.land, "--target", "landing_stream", "--batch-id",
             stream_batch, "--rows", str(max(args.rows // 4, 200)), "--files", "4", "--seed", "42",
             "--start", "2026-11-15", "--days", "1")
        scored = step("wait for the stream to score it", wait_for_stream, platform, before, 1200.0)
        say(f"  the stream scored {scored} row(s)")
        summary = step("summarise on the cluster", cluster_summary, platform)
    except PlatformError as exc:
        print(f"cluster-run: error: {exc}", file=sys.stderr)
        return 1
    summary.pop("job", None)
    summary.update({"duration_s": round(time.time() - started, 1), "dag_run_id": run_id, "tasks": tasks})
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    args.summary.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    from run_local import print_summary, summary_problems

    print_summary(summary)
    print(f"\nwrote {args.summary}")
    problems = summary_problems(summary)
    if problems:
        print(f"cluster-run: error: the run finished but {'; '.join(problems)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The chart on the local cluster (k8s/cluster), driven from this host: kubectl as admin or as the chart's Airflow
worker (its service account's token, nothing more), data landed in the chart's S3 store, the rendered
SparkApplications applied and watched. Used by `make cluster-run` (scripts/cluster_run.py) and tests/cluster."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
STATE = REPO_ROOT / "var" / "cluster"
KUBECONFIG = STATE / "kubeconfig"
BIN = STATE / "bin"
CLUSTER_PY = REPO_ROOT / "k8s" / "cluster" / "cluster.py"
RENDERED = REPO_ROOT / "build" / "rendered" / "kind" / "sparkapplications"
JOBS_NS, RELEASE_NS = "tributary-jobs", "tributary"
AIRFLOW_SA = "tributary-airflow-worker"
TERMINAL = {"COMPLETED", "FAILED", "SUBMISSION_FAILED", "FAILING"}

# k8s/cluster/cluster.py is a script, not a package module: loaded by path, registered so its dataclasses resolve.
_spec = importlib.util.spec_from_file_location("cluster_py", CLUSTER_PY)
cluster_py = importlib.util.module_from_spec(_spec)
sys.modules["cluster_py"] = cluster_py
_spec.loader.exec_module(cluster_py)


def run(cmd: list[str], timeout: int = 300, env: dict[str, str] | None = None,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    base = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "KUBECONFIG": str(KUBECONFIG)}
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, input=input,
                          env={**base, **(env or {})})


class PlatformError(RuntimeError):
    """A step on the live cluster failed; the message says which and what it printed."""


class Platform:
    """helm/tributary on the running local cluster, seen from the host: as admin, or as the Airflow worker."""

    # --- kubectl -------------------------------------------------------------------------------------------------
    def kubectl(self, *args: str, kubeconfig: Path = KUBECONFIG, input: str | None = None, timeout: int = 180,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = run([str(BIN / "kubectl"), "--kubeconfig", str(kubeconfig), *args], timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise PlatformError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def get(self, *args: str, **kwargs: Any) -> dict[str, Any]:
        return json.loads(self.kubectl("get", *args, "-o", "json", **kwargs).stdout)

    def on_poll(self) -> None:
        """Called on every poll of a wait (the tests sample host memory there)."""

    def trouble(self) -> str:
        """What the cluster says went wrong, for a failure message: node conditions other than healthy (pressure, not
        Ready) and the latest Warning events in the chart's and the jobs' namespaces (evictions, OOM kills, back-offs,
        failed scheduling)."""
        lines = []
        nodes = self.kubectl("get", "nodes", "-o", "json", check=False)
        for node in json.loads(nodes.stdout or '{"items": []}')["items"]:
            for cond in node.get("status", {}).get("conditions", []):
                if (cond["type"] == "Ready") != (cond["status"] == "True"):
                    lines.append(f"node {node['metadata']['name']}: {cond['type']}={cond['status']} {cond.get('message', '')}")
        for ns in (RELEASE_NS, JOBS_NS):
            events = self.kubectl("get", "events", "-n", ns, "--field-selector", "type=Warning", "-o", "json",
                                  check=False)
            items = json.loads(events.stdout or '{"items": []}')["items"]
            items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
            for e in items[-25:]:
                lines.append(f"{ns} {e['involvedObject'].get('kind')}/{e['involvedObject'].get('name')}: "
                             f"{e.get('reason')} x{e.get('count') or 1}: {(e.get('message') or '')[:300]}")
        return "\n".join(lines) or "(no unhealthy node condition, no Warning event)"

    # --- images and chart ----------------------------------------------------------------------------------------
    def running(self) -> bool:
        return run([sys.executable, str(CLUSTER_PY), "status"]).returncode == 0

    def push_images(self) -> subprocess.CompletedProcess[str]:
        """The images `make images-build` built, into the cluster's registry and onto its nodes (cached: seconds)."""
        return run(["bash", str(REPO_ROOT / "k8s" / "cluster" / "images.sh"), "push"], timeout=1800)

    def install(self) -> subprocess.CompletedProcess[str]:
        return run(["bash", str(REPO_ROOT / "k8s" / "install.sh"), "kind", "--local-cluster"], timeout=1800)

    # --- the chart's services, from the host --------------------------------------------------------------------
    def secret(self, ns: str, name: str, key: str) -> str:
        return base64.b64decode(self.get("secret", name, "-n", ns)["data"][key]).decode()

    def service_endpoint(self, name: str, port: int, ns: str = RELEASE_NS) -> str:
        """The Service's ClusterIP, which kube-proxy also routes for processes on the host."""
        return f"http://{self.get('service', name, '-n', ns)['spec']['clusterIP']}:{port}"

    def s3_env(self) -> dict[str, str]:
        return {
            "S3_ENDPOINT": self.service_endpoint("tributary-s3", 9000),
            "AWS_ACCESS_KEY_ID": self.secret(RELEASE_NS, "tributary-object-store", "AWS_ACCESS_KEY_ID"),
            "AWS_SECRET_ACCESS_KEY": self.secret(RELEASE_NS, "tributary-object-store", "AWS_SECRET_ACCESS_KEY"),
            "AWS_REGION": "us-east-1",
        }

    @contextmanager
    def port_forward(self, service: str, port: int, ns: str = RELEASE_NS, timeout: float = 30) -> Iterator[str]:
        """``kubectl port-forward svc/<service>`` to a free local port, as a user reaches a chart's UI; yields
        ``http://127.0.0.1:<port>`` and stops the forward (by PID) on the way out. MLflow answers only host names it
        allows (tributary-mlflow, localhost), not the Service's ClusterIP, so its clients go through here."""
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            local = s.getsockname()[1]
        proc = subprocess.Popen([str(BIN / "kubectl"), "--kubeconfig", str(KUBECONFIG), "port-forward", "-n", ns,
                                 f"svc/{service}", f"{local}:{port}", "--address", "127.0.0.1"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", local), timeout=1):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        out = proc.stdout.read() if proc.poll() is not None else ""
                        raise PlatformError(f"kubectl port-forward svc/{service} did not listen: {out[-1000:]}")
                    time.sleep(0.3)
            yield f"http://127.0.0.1:{local}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @contextmanager
    def mlflow_env(self) -> Iterator[dict[str, str]]:
        """What a process on this host needs to use the chart's MLflow as the jobs do: MLFLOW_TRACKING_URI (the kind
        profile reads it) through a port-forward to the Service, and the jobs' client credentials
        (tributary-mlflow-client)."""
        secret = "tributary-mlflow-client"
        creds = {key: self.secret(JOBS_NS, secret, key) for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
        with self.port_forward("tributary-mlflow", 5000) as url:
            yield {"MLFLOW_TRACKING_URI": url, **creds}

    def history(self, path: str, timeout: float = 30) -> Any:
        """GET ``/api/v1<path>`` of the chart's Spark History Server (tributary-spark-history), as JSON."""
        import urllib.request

        url = self.service_endpoint("tributary-spark-history", 18080) + "/api/v1" + path
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return json.loads(reply.read().decode())

    def scale(self, deployment: str, replicas: int, timeout: int = 300) -> None:
        """Scale a Deployment of the chart and wait until exactly ``replicas`` pods are Ready (0: all gone)."""
        self.kubectl("scale", "deployment", deployment, "-n", RELEASE_NS, f"--replicas={replicas}")
        selector = ",".join(f"{k}={v}" for k, v in
                            self.get("deployment", deployment, "-n", RELEASE_NS)["spec"]["selector"]["matchLabels"].items())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = self.get("pods", "-n", RELEASE_NS, "-l", selector)["items"]
            ready = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                            for c in p.get("status", {}).get("conditions", []))]
            if (not pods) if replicas == 0 else len(ready) == replicas:
                return
            self.on_poll()
            time.sleep(2)
        raise PlatformError(f"{deployment} did not reach {replicas} ready pod(s) in {timeout}s")

    def land(self, *generate_args: str) -> list[str]:
        """Generate a batch on the host and upload it to the kind profile's landing zone in the S3 store."""
        proc = run([str(REPO_ROOT / ".venv" / "bin" / "python"), str(REPO_ROOT / "docker" / "spark" / "land-sample.py"),
                    *generate_args], timeout=300, env={**self.s3_env(), "TRIBUTARY_PROFILE": "kind",
                                                       "PYTHONPATH": str(REPO_ROOT)})
        if proc.returncode != 0:
            raise PlatformError(f"landing {' '.join(generate_args)} failed:\n{proc.stderr[-3000:]}")
        return [line.split()[-1] for line in proc.stdout.splitlines() if line.startswith("landed ")]

    # --- identities ----------------------------------------------------------------------------------------------
    def airflow_kubeconfig(self) -> Path:
        """A kubeconfig holding a token of the chart's Airflow worker service account, and nothing else; the token
        lasts 4 hours, so one older than 3 is replaced."""
        path = STATE / "airflow-worker.kubeconfig"
        if path.exists() and time.time() - path.stat().st_mtime < 3 * 3600:
            return path
        token = self.kubectl("create", "token", AIRFLOW_SA, "-n", RELEASE_NS, "--duration=4h").stdout.strip()
        admin = yaml.safe_load(KUBECONFIG.read_text())
        cluster = admin["clusters"][0]
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "airflow-worker",
            "clusters": [cluster],
            "users": [{"name": AIRFLOW_SA, "user": {"token": token}}],
            "contexts": [{"name": "airflow-worker", "context": {"cluster": cluster["name"], "user": AIRFLOW_SA,
                                                                "namespace": JOBS_NS}}],
        }))
        path.chmod(0o600)
        return path

    # --- SparkApplications ----------------------------------------------------------------------------------------
    def apply_app(self, spec: dict[str, Any]) -> str:
        """Create a SparkApplication as the Airflow worker would (its service account's RBAC only); one left by an
        earlier run on a reused cluster is deleted first, as a retry of the task would do."""
        name = spec["metadata"]["name"]
        self.kubectl("delete", "sparkapplication", name, "-n", JOBS_NS, "--ignore-not-found", "--wait",
                     kubeconfig=self.airflow_kubeconfig())
        self.kubectl("create", "-f", "-", kubeconfig=self.airflow_kubeconfig(), input=json.dumps(spec))
        return spec["metadata"]["name"]

    def app_state(self, name: str) -> tuple[str, dict[str, Any]]:
        app = self.get("sparkapplication", name, "-n", JOBS_NS, kubeconfig=self.airflow_kubeconfig())
        status = app.get("status", {})
        return status.get("applicationState", {}).get("state", ""), status

    def wait_app(self, name: str, timeout: int = 900, until: set[str] = TERMINAL) -> tuple[str, float, dict]:
        """Poll the application until one of ``until`` (default: a terminal state); returns state, seconds, status."""
        t0 = time.monotonic()
        state, status = "", {}
        while time.monotonic() - t0 < timeout:
            state, status = self.app_state(name)
            self.on_poll()
            if state in until:
                break
            time.sleep(3)
        return state, round(time.monotonic() - t0, 1), status

    def driver_log(self, name: str) -> str:
        return self.kubectl("logs", f"{name}-driver", "-n", JOBS_NS, "--tail=-1",
                            kubeconfig=self.airflow_kubeconfig(), check=False).stdout

    @staticmethod
    def results(log: str) -> list[dict[str, Any]]:
        return [json.loads(line.split(" ", 1)[1]) for line in log.splitlines() if line.startswith("TRIBUTARY_RESULT ")]


ERROR_LINE = re.compile(r"Traceback|Error|Exception|FAILED|Killed|ExitCode|exit code|OOM|Evict|forbidden")


def error_lines(log: str, limit: int = 40) -> str:
    """The lines of a task or driver log that say what failed (exceptions, errors, kills), without Java stack frames:
    a log's tail is often only the shutdown that followed."""
    hits = [line[:600] for line in log.splitlines()
            if ERROR_LINE.search(line) and not line.lstrip().startswith("at ") and "\tat " not in line]
    return "\n".join(hits[-limit:])


def failure_report(logs: dict[tuple[str, int], str]) -> str:
    """For each (task, try) log: the lines that say what failed, then its tail."""
    return "\n".join(f"--- {task}, try {n}: what failed ---\n{error_lines(log)}\n--- its tail ---\n{log[-1500:]}"
                     for (task, n), log in logs.items())


def rendered(job: str, name: str, **params: str) -> dict[str, Any]:
    """A SparkApplication as `make render` wrote it, with Airflow's per-run templates filled in the way the
    operator fills them (a run id's hash and the try number in the name, the run's params in the arguments)."""
    import jinja2

    text = (RENDERED / f"{job}.yaml").read_text()
    spec = yaml.safe_load(text)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["ts"] = lambda value: value
    due = params.get("data_interval_end", "2026-12-01T00:00:00+00:00")
    context = {"params": params, "data_interval_start": params.get("data_interval_start", ""), "data_interval_end": due,
               "dag_run": {"run_after": due}}
    spec["spec"]["arguments"] = [env.from_string(a).render(**context) for a in spec["spec"].get("arguments", [])]
    if "{{" in spec["metadata"]["name"]:
        spec["metadata"]["name"] = name
    return spec

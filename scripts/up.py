"""`make up`: the Airflow UI and the MLflow UI on the same local state that `make run` uses.

Starts ``airflow standalone`` (API server + scheduler + DAG processor + triggerer, SimpleAuthManager) and
``mlflow server`` on the profile's tracking store, waits until both answer, prints the URLs and the login, then
runs until Ctrl-C. ``--check`` stops after both answered (used by the tests).

    python scripts/up.py [--airflow-port 8080] [--mlflow-port 5000] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "dags")]

from spark_jobs.config import load_profile  # noqa: E402
from tributary.local_env import airflow_env  # noqa: E402

ADMIN_USER = "admin"


def wait_http(url: str, timeout: float, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a server exited before {url} answered; see the logs under var/")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status < 500:
                    return
        except OSError:
            time.sleep(2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def airflow_password(airflow_home: Path) -> str:
    generated = airflow_home / "simple_auth_manager_passwords.json.generated"
    try:
        return json.loads(generated.read_text()).get(ADMIN_USER, "(see the file)")
    except (OSError, ValueError):
        return f"(not generated yet; see {generated})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--airflow-port", type=int, default=8080)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("--airflow-home", type=Path, default=REPO_ROOT / "var" / "airflow")
    parser.add_argument("--check", action="store_true", help="exit once both UIs answer")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()

    profile = load_profile()
    env = airflow_env(profile, args.airflow_home)
    env.update({
        "AIRFLOW__API__PORT": str(args.airflow_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{args.airflow_port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
    })
    mlflow_dir = Path(profile.mlflow["artifact_root"]).parent
    mlflow_dir.mkdir(parents=True, exist_ok=True)
    logs = args.airflow_home.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    procs = [
        subprocess.Popen([py, "-m", "airflow", "standalone"], env=env, start_new_session=True,
                         stdout=(logs / "airflow-standalone.log").open("ab"), stderr=subprocess.STDOUT),
        subprocess.Popen([py, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(args.mlflow_port),
                          "--backend-store-uri", profile.mlflow["tracking_uri"],
                          "--default-artifact-root", profile.mlflow["artifact_root"]],
                         env=env, start_new_session=True,
                         stdout=(logs / "mlflow-server.log").open("ab"), stderr=subprocess.STDOUT),
    ]
    try:
        airflow_url, mlflow_url = f"http://127.0.0.1:{args.airflow_port}", f"http://127.0.0.1:{args.mlflow_port}"
        wait_http(f"{mlflow_url}/health", args.timeout, procs)
        wait_http(f"{airflow_url}/api/v2/monitor/health", args.timeout, procs)
        print(f"Airflow UI  {airflow_url}   login: {ADMIN_USER} / {airflow_password(args.airflow_home)}")
        print(f"MLflow UI   {mlflow_url}   (no login locally; the Kubernetes install turns basic-auth on)")
        print(f"Logs under {logs}. Trigger 'fraud_pipeline' in the Airflow UI; Ctrl-C stops both.", flush=True)
        if not args.check:
            while all(p.poll() is None for p in procs):
                time.sleep(2)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()

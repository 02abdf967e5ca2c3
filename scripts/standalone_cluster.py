"""Start or stop a Spark standalone cluster (one master, one worker) on loopback with pip's pyspark.

pip's pyspark has no sbin/start-master.sh, so this runs ``spark-class`` for the Master and the Worker, waits until
the worker is ALIVE in the master's JSON status, and writes their pids under the state directory.

    python scripts/standalone_cluster.py start [--state var/standalone] [--port 7077] [--cores 2] [--memory 2g]
    python scripts/standalone_cluster.py stop  [--state var/standalone]

Then run a job on it: ``TRIBUTARY_PROFILE=standalone SPARK_MASTER_URL=spark://127.0.0.1:7077 ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import process_group  # noqa: E402  (scripts/process_group.py)


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@dataclass
class Cluster:
    """A running master + worker; ``url`` is the ``spark://`` master URL."""

    url: str
    web_url: str
    state: Path
    pids: list[int]

    def status(self) -> dict:
        with urllib.request.urlopen(f"{self.web_url}/json/", timeout=5) as resp:
            return json.load(resp)

    def stop(self) -> None:
        stop(self.state)


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> int:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc.pid


def start(state: Path, port: int = 7077, web_port: int = 8090, cores: int = 2, memory: str = "2g",
          shuffle_service: bool = False, timeout: float = 120.0) -> Cluster:
    """Start master and worker bound to 127.0.0.1 and wait for the worker to register."""
    state.mkdir(parents=True, exist_ok=True)
    stop(state)
    spark_class = str(_spark_home() / "bin" / "spark-class")
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", SPARK_HOME=str(_spark_home()),
               SPARK_WORKER_DIR=str(state / "work"), SPARK_LOG_DIR=str(state / "logs"))
    url, web_url = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web_port}"
    worker_opts = [f"-Dspark.shuffle.service.enabled={str(shuffle_service).lower()}"]
    env["SPARK_WORKER_OPTS"] = " ".join(worker_opts)
    pids = [
        _spawn([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                "--webui-port", str(web_port)], state / "master.log", env),
    ]
    cluster = Cluster(url=url, web_url=web_url, state=state, pids=pids)
    _wait(lambda: cluster.status(), timeout, "master did not answer", state)
    pids.append(_spawn([spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                        "--cores", str(cores), "--memory", memory, "--webui-port", str(web_port + 1), url],
                       state / "worker.log", env))
    (state / "pids").write_text(" ".join(map(str, pids)))
    _wait(lambda: any(w["state"] == "ALIVE" for w in cluster.status()["workers"]) or None, timeout,
          "worker did not register with the master", state)
    return cluster


def _wait(probe, timeout: float, what: str, state: Path) -> None:
    if process_group.wait_for(probe, timeout):
        return
    logs = "\n".join(p.read_text()[-2000:] for p in state.glob("*.log"))
    stop(state)
    raise RuntimeError(f"standalone cluster: {what} within {timeout:.0f}s; logs:\n{logs}")


def stop(state: Path) -> None:
    """Stop the worker's and then the master's process groups recorded under ``state`` (SIGTERM, then SIGKILL)."""
    pid_file = state / "pids"
    if not pid_file.exists():
        return
    for pid in reversed([int(p) for p in pid_file.read_text().split()]):
        process_group.stop_pid(pid, signal.SIGTERM, grace=10.0)
    pid_file.unlink()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--state", type=Path, default=Path("var/standalone"))
    parser.add_argument("--port", type=int, default=7077)
    parser.add_argument("--web-port", type=int, default=8090)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--memory", default="2g")
    args = parser.parse_args(argv)
    if args.action == "stop":
        stop(args.state)
        return
    cluster = start(args.state, args.port, args.web_port, args.cores, args.memory)
    print(f"standalone master {cluster.url} (UI {cluster.web_url}); stop with: {sys.argv[0]} stop --state {args.state}")


if __name__ == "__main__":
    main()

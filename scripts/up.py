"""`make up`: Tributary's services on this machine, the way a team runs them: a real database, a real cluster.

With the default ``--db postgres`` (profile ``standalone``), each piece is a separate server on loopback:
1. PostgreSQL (scripts/postgres_server.py, state under var/postgres): Airflow's and MLflow's databases;
2. a Spark standalone master and worker (scripts/standalone_cluster.py, state under var/standalone), where the
   tasks' spark-submit runs, with dynamic allocation (the standalone profile);
3. the MLflow tracking server, its backend store on PostgreSQL, artifacts under var/mlflow/artifacts, its Prometheus
   metrics at /metrics;
4. the Spark History Server (pyspark's own ``spark-class``) over the jobs' event logs (var/spark-events);
5. Prometheus's statsd_exporter (``make metrics-tools``), which Airflow's components and tasks send their StatsD
   metrics to and which serves them to Prometheus (conf/metrics/statsd-mapping.yaml);
6. Airflow 3 on PostgreSQL with the LocalExecutor, as its four components (API server, scheduler, DAG processor,
   triggerer), each in its own process group and restarted when it exits, as systemd or Kubernetes would: a
   scheduler that loses its database connection exits, and comes back when the database does.
The tasks get the cluster's master URL and the MLflow server's URL. A sample batch lands first when it has not
(``batch-0001``, ``--rows``), so fraud_pipeline can be triggered at once from the UI.

``--db sqlite`` is the read-mostly view of what `make run` left: `airflow standalone` and an MLflow server on the
SQLite files under var/ (var/airflow/airflow.db, var/mlflow/mlflow.db), the History Server over its jobs' event
logs, and the metrics exporter; no database server, no cluster.

    python scripts/up.py [--db postgres|sqlite] [--airflow-port 8080] [--mlflow-port 5000] [--history-port 18080]
                         [--metrics-port 9102] [--statsd-port 9125] [--rows 20000]
    python scripts/up.py --check     # start, wait until the UIs answer, print them, stop
    python scripts/up.py --down      # stop what an interrupted `make up` left, by the PIDs it recorded

Everything started is stopped by its process group when up.py ends (Ctrl-C, SIGTERM, or an error).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT / "scripts"), str(REPO_ROOT)]

import postgres_server  # noqa: E402
import process_group  # noqa: E402
import standalone_cluster  # noqa: E402
from airflow_api import AirflowAPI  # noqa: E402
from tributary.config import load_profile  # noqa: E402
from tributary.local_env import airflow_env  # noqa: E402
from tributary.spark_conf import local_event_log_dir, spark_conf  # noqa: E402

ADMIN_USER = "admin"
SAMPLE_BATCH = "batch-0001"
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


@dataclass
class Ports:
    airflow: int = 8080
    mlflow: int = 5000
    postgres: int = 5432
    spark: int = 7077
    spark_web: int = 8090  # the worker's UI is the next port
    spark_history: int = 18080
    metrics: int = 9102  # statsd_exporter's /metrics
    statsd: int = 9125  # statsd_exporter's StatsD (UDP)


@dataclass
class Services:
    """What `make up` started: the URLs, Airflow's admin login, and the servers behind them."""

    airflow_url: str
    mlflow_url: str
    history_url: str | None  # the Spark History Server; None where the profile's event logs are not on this machine
    metrics_url: str  # Airflow's metrics as Prometheus scrapes them (statsd_exporter); MLflow's: {mlflow_url}/metrics
    password: str
    env: dict[str, str] = field(repr=False)  # Airflow's and its tasks' environment
    logs: Path
    postgres: postgres_server.Server | None = None
    cluster: standalone_cluster.Cluster | None = None
    supervisor: Supervisor | None = None
    start_s: dict[str, float] = field(default_factory=dict)  # each service's start-up seconds

    def api(self) -> AirflowAPI:
        return AirflowAPI(self.airflow_url, ADMIN_USER, self.password)


class Supervisor:
    """Keeps processes running: each in its own process group (its PID recorded under ``run_dir``), restarted when
    it exits, stopped by its group. ``restarts`` counts the restarts per name."""

    def __init__(self, run_dir: Path, logs: Path, env: dict[str, str]):
        self.run_dir, self.logs, self.env = run_dir, logs, env
        self.commands: dict[str, list[str]] = {}
        self.envs: dict[str, dict[str, str]] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        run_dir.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        """Start ``command`` as ``name``, in the shared environment with ``env`` over it."""
        self.commands[name] = command
        self.envs[name] = env or {}
        self.restarts.setdefault(name, 0)
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(command, env={**self.env, **self.envs[name]}, cwd=REPO_ROOT,
                                    start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        (self.run_dir / f"{name}.pid").write_text(str(proc.pid))

    def watch(self, interval: float = 2.0) -> None:
        """Restart whatever exits, from a background thread, until ``stop``."""
        def loop() -> None:
            while not self._stopping.wait(interval):
                for name, proc in list(self.procs.items()):
                    if proc.poll() is not None and not self._stopping.is_set():
                        self.restarts[name] += 1
                        note = f"{name} exited ({proc.returncode}); restart {self.restarts[name]}"
                        say(f"{note} (log: {self.logs / f'{name}.log'})")
                        with (self.logs / f"{name}.log").open("a") as log:
                            log.write(f"\n--- up.py: {note} ---\n")
                        self.start(name, self.commands[name], self.envs[name])

        self._thread = threading.Thread(target=loop, name="up-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        # All at once, by the PIDs held (whatever the files say); each group SIGKILLed if it outlives the grace.
        stoppers = [threading.Thread(target=process_group.stop_pid, args=(proc.pid, signal.SIGTERM, 30.0))
                    for proc in self.procs.values()]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        for name in self.procs:
            (self.run_dir / f"{name}.pid").unlink(missing_ok=True)


def say(message: str) -> None:
    print(f"up: {message}", flush=True)


def wait_http(url: str, timeout: float) -> None:
    """Until ``url`` answers below 500 (the supervisor restarts a server that exits meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status < 500:
                    return
        except OSError:
            time.sleep(2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def airflow_password(airflow_home: Path, timeout: float = 60) -> str:
    """The admin password SimpleAuthManager generated (the API server writes it at start)."""
    generated = airflow_home / "simple_auth_manager_passwords.json.generated"
    deadline = time.monotonic() + timeout
    while True:
        try:
            return json.loads(generated.read_text())[ADMIN_USER]
        except (OSError, ValueError, KeyError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no password for {ADMIN_USER} in {generated} after {timeout:.0f}s") from None
            time.sleep(1)


class _Timer:
    """Seconds between laps, by name."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, name: str) -> float:
        now = time.monotonic()
        self.laps[name] = round(now - self._last, 2)
        self._last = now
        return self.laps[name]


def _secret(path: Path) -> str:
    """A secret kept under ``path`` (0600), generated the first time: the same JWT key for every component."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def start_history_server(supervisor: Supervisor, events: Path, port: int, run_dir: Path) -> str:
    """Start the Spark History Server from pyspark's own ``spark-class`` over the event logs in ``events``, on
    127.0.0.1:``port``; returns its URL. It lists a job as soon as its log appears (every 5 s)."""
    import pyspark

    events.mkdir(parents=True, exist_ok=True)
    properties = run_dir / "spark-history.conf"
    properties.write_text(f"spark.history.fs.logDirectory {events.as_uri()}\n"
                          f"spark.history.ui.port {port}\n"
                          "spark.history.fs.update.interval 5s\n")
    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    supervisor.start("spark-history", [str(spark_class), "org.apache.spark.deploy.history.HistoryServer",
                                       "--properties-file", str(properties)],
                     env={"SPARK_LOCAL_IP": "127.0.0.1", "SPARK_PUBLIC_DNS": "127.0.0.1",
                          "SPARK_DAEMON_MEMORY": "512m"})
    return f"http://127.0.0.1:{port}"


STATSD_EXPORTER = REPO_ROOT / ".tools" / "bin" / "statsd_exporter"
STATSD_MAPPING = REPO_ROOT / "conf" / "metrics" / "statsd-mapping.yaml"


def statsd_env(ports: Ports) -> dict[str, str]:
    """The Airflow settings that send every metric to the exporter's StatsD port, with their tags as labels
    (InfluxDB-style tags, which the exporter parses; the legacy dotted names off)."""
    return {"AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(ports.statsd), "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True", "AIRFLOW__METRICS__LEGACY_NAMES_ON": "False"}


def start_metrics_exporter(supervisor: Supervisor, ports: Ports) -> str:
    """Start statsd_exporter (StatsD on UDP 127.0.0.1:``ports.statsd``, Prometheus's text at
    127.0.0.1:``ports.metrics``/metrics); returns its URL."""
    if not os.access(STATSD_EXPORTER, os.X_OK):
        raise SystemExit(f"error: {STATSD_EXPORTER.relative_to(REPO_ROOT)} is missing: run `make metrics-tools`")
    supervisor.start("statsd-exporter", [str(STATSD_EXPORTER), f"--statsd.listen-udp=127.0.0.1:{ports.statsd}",
                                         "--statsd.listen-tcp=", f"--web.listen-address=127.0.0.1:{ports.metrics}",
                                         f"--statsd.mapping-config={STATSD_MAPPING}"])
    return f"http://127.0.0.1:{ports.metrics}"


def land_sample(env: dict[str, str], profile: str, rows: int, landing: Path) -> None:
    """Land the sample batch (deterministic) unless it is there."""
    if (landing / SAMPLE_BATCH).is_dir():
        return
    say(f"landing {rows} sample transactions as batch {SAMPLE_BATCH}")
    subprocess.run([sys.executable, "-m", "spark_jobs.generate", "--profile", profile, "--batch-id", SAMPLE_BATCH,
                    "--rows", str(rows), "--seed", "42"], env=env, cwd=REPO_ROOT, check=True)


@contextmanager
def services(home: Path, db: str = "postgres", ports: Ports | None = None, rows: int = 20000,
             pg_state: Path | None = None, timeout: float = 300,
             extra_env: dict[str, str] | None = None) -> Iterator[Services]:
    """Start every service `make up` runs under ``home`` (TRIBUTARY_HOME) and stop them all on exit, also when the
    body or a start fails."""
    ports = ports or Ports()
    var = home / "var"
    logs, run_dir = var / "logs", var / "up"
    env = dict(os.environ, TRIBUTARY_HOME=str(home))
    timer = _Timer()
    with ExitStack() as stack:
        postgres = cluster = None
        if db == "postgres":
            profile_name = "standalone"
            postgres = postgres_server.start(pg_state or var / "postgres", ports.postgres)
            stack.callback(postgres.stop)
            say(f"PostgreSQL on 127.0.0.1:{postgres.port} (state {postgres.state}) in {timer.lap('postgres'):.1f}s")
            cluster = standalone_cluster.start(var / "standalone", ports.spark, ports.spark_web)
            stack.callback(cluster.stop)
            say(f"Spark standalone master {cluster.url} (UI {cluster.web_url}) in {timer.lap('spark'):.1f}s")
            env.update({"SPARK_MASTER_URL": cluster.url,
                        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports.mlflow}"})
            backend = postgres.url("mlflow")
        elif db == "sqlite":
            profile_name = os.environ.get("TRIBUTARY_PROFILE", "local")
            backend = None
        else:
            raise SystemExit(f"error: --db must be postgres or sqlite, not {db!r}")
        profile = load_profile(profile_name, env=env)
        airflow_home = var / "airflow-pg" if postgres else var / "airflow"
        env = airflow_env(profile, airflow_home, base=env)
        airflow_url = f"http://127.0.0.1:{ports.airflow}"
        env.update({
            "AIRFLOW__API__PORT": str(ports.airflow),
            "AIRFLOW__API__BASE_URL": airflow_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{airflow_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret(run_dir / "jwt-secret"),
        })
        if postgres:
            env.update({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url("airflow"),
                        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                        "AIRFLOW__CORE__PARALLELISM": "4"})
        env.update(statsd_env(ports))
        env.update(extra_env or {})
        artifacts = Path(profile.mlflow["artifact_root"])
        artifacts.mkdir(parents=True, exist_ok=True)
        backend = backend or profile.mlflow["tracking_uri"]

        supervisor = Supervisor(run_dir, logs, env)
        stack.callback(supervisor.stop)
        metrics_url = start_metrics_exporter(supervisor, ports)
        timer.lap("prepare")
        # MLflow's Prometheus metrics: the exporter's per-process files, emptied at each start as prometheus_client
        # asks of a multiprocess directory.
        prometheus_dir = var / "mlflow" / "prometheus"
        shutil.rmtree(prometheus_dir, ignore_errors=True)
        supervisor.start("mlflow", [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
                                    str(ports.mlflow), "--workers", "2", "--backend-store-uri", backend,
                                    "--default-artifact-root", str(artifacts),
                                    "--expose-prometheus", str(prometheus_dir)])
        migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, cwd=REPO_ROOT,
                                 capture_output=True, text=True)
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stderr[-3000:]}")
        say(f"Airflow's metadata DB migrated in {timer.lap('airflow_migrate'):.1f}s")
        if postgres:
            for component in AIRFLOW_COMPONENTS:
                supervisor.start(component, [sys.executable, "-m", "airflow", component])
        else:
            supervisor.start("airflow-standalone", [sys.executable, "-m", "airflow", "standalone"])
        events = local_event_log_dir(spark_conf(profile, check_jars=False))
        history_url = start_history_server(supervisor, events, ports.spark_history, run_dir) if events else None
        supervisor.watch()
        mlflow_url = f"http://127.0.0.1:{ports.mlflow}"
        wait_http(f"{airflow_url}/api/v2/monitor/health", timeout)
        say(f"Airflow answers in {timer.lap('airflow'):.1f}s")
        wait_http(f"{mlflow_url}/health", timeout)
        say(f"MLflow answers {timer.lap('mlflow'):.1f}s later")
        wait_http(f"{metrics_url}/metrics", timeout)
        if history_url:
            wait_http(f"{history_url}/api/v1/version", timeout)
            say(f"the Spark History Server answers {timer.lap('spark_history'):.1f}s later (event logs: {events})")
        if postgres:
            land_sample(env, profile.name, rows, Path(profile.catalog.uri("landing_batch").removeprefix("file:")))
            timer.lap("land")
        yield Services(airflow_url, mlflow_url, history_url, metrics_url, airflow_password(airflow_home), env, logs,
                       postgres, cluster, supervisor, timer.laps)


def down(home: Path) -> None:
    """Stop what a `make up` under ``home`` recorded (Airflow's components and MLflow, the cluster, PostgreSQL)."""
    var = home / "var"
    for pid_file in sorted((var / "up").glob("*.pid")):
        process_group.stop(pid_file, signal.SIGTERM, 30.0)
    standalone_cluster.stop(var / "standalone")
    postgres_server.stop(var / "postgres")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--airflow-port", type=int, default=8080)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("--postgres-port", type=int, default=5432)
    parser.add_argument("--history-port", type=int, default=18080, help="the Spark History Server's")
    parser.add_argument("--metrics-port", type=int, default=9102, help="Airflow's metrics for Prometheus")
    parser.add_argument("--statsd-port", type=int, default=9125, help="where Airflow sends StatsD (UDP)")
    parser.add_argument("--rows", type=int, default=20000, help="transactions in the sample batch (postgres)")
    parser.add_argument("--check", action="store_true", help="exit once the UIs answer")
    parser.add_argument("--down", action="store_true", help="stop what an interrupted `make up` left")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    home = Path(os.environ.get("TRIBUTARY_HOME", REPO_ROOT))
    if args.down:
        down(home)
        return
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    ports = Ports(airflow=args.airflow_port, mlflow=args.mlflow_port, postgres=args.postgres_port,
                  spark_history=args.history_port, metrics=args.metrics_port, statsd=args.statsd_port)
    try:
        with services(home, args.db, ports, args.rows, timeout=args.timeout) as up:
            print(f"Airflow UI  {up.airflow_url}   login: {ADMIN_USER} / {up.password}")
            print(f"MLflow UI   {up.mlflow_url}   (no login locally; the Kubernetes install turns basic-auth on)")
            if up.cluster:
                print(f"Spark UI    {up.cluster.web_url}   (the standalone master the tasks run on)")
            if up.history_url:
                print(f"Spark History {up.history_url}   (every Spark job's event log, finished ones included)")
            print(f"Metrics     {up.metrics_url}/metrics (Airflow), {up.mlflow_url}/metrics (MLflow), for Prometheus; "
                  "their dashboard: helm/tributary/dashboards/tributary-pipeline.json")
            if up.cluster:
                print(f"Trigger 'fraud_pipeline' with {{\"batch_id\": \"{SAMPLE_BATCH}\"}} in the Airflow UI "
                      "(a first run builds every table; later runs work on their data interval, or on everything with "
                      "\"full_refresh\": true).")
            print(f"Logs under {up.logs}. Ctrl-C stops everything.", flush=True)
            while not args.check:
                time.sleep(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

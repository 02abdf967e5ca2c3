"""Start or stop a pseudo-distributed Hadoop YARN on loopback: one ResourceManager and one NodeManager.

The daemons are Hadoop 3.5.0 (the line of the YARN client inside pyspark 4.2.0) from conf/yarn/pom.xml's jars, and
the NodeManager runs Spark's external shuffle service as its ``spark_shuffle`` aux service (jvm/yarn-shuffle, in
its own class loader). Both are fetched from Maven Central into the user's cache once (``fetch``; ``make
yarn-jars``). There is no HDFS: ``fs.defaultFS`` is the local file system, which one machine's containers share.

``start`` writes the cluster's configuration under ``<state>``, starts each daemon in its own process group with
its PID in a file, and waits until the NodeManager is RUNNING in the ResourceManager's REST API and the shuffle
service accepts connections. ``stop`` ends both process groups by those PIDs. What a client needs, ``env()``:

- ``HADOOP_CONF_DIR``: ``<state>/conf`` (core-site.xml, yarn-site.xml: where the ResourceManager is);
- ``SPARK_CONF_DIR``: ``<state>/spark-conf``, whose spark-defaults.conf holds what belongs to this cluster, not to
  the application, as on a real cluster's gateway: Spark's jars on the nodes (``spark.yarn.jars``), the staging
  directory, the shuffle service's port, and the event log directory (a history server would read it).

    python scripts/yarn_cluster.py fetch
    python scripts/yarn_cluster.py start [--state var/yarn] [--memory-mb 6144] [--vcores 4]
    python scripts/yarn_cluster.py stop  [--state var/yarn]
    python scripts/yarn_cluster.py run   [--state var/yarn] [--rows 20000]   # `make run`'s steps on it

``run`` is ``make run`` with ``TRIBUTARY_PROFILE=yarn`` and ``Yarn.client_env``: every Spark job of fraud_pipeline
and fraud_stream goes to this YARN through the launcher (docs/yarn.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))
import maven_cache  # noqa: E402  (scripts/maven_cache.py)
import process_group  # noqa: E402  (scripts/process_group.py)

REPO_ROOT = Path(__file__).resolve().parent.parent
HADOOP_POM = REPO_ROOT / "conf" / "yarn" / "pom.xml"
SHUFFLE_PROJECT = REPO_ROOT / "jvm" / "yarn-shuffle"
SHUFFLE_CLASS = "dev.tributary.yarn.SparkShuffleService"
DAEMONS = {"resourcemanager": "org.apache.hadoop.yarn.server.resourcemanager.ResourceManager",
           "nodemanager": "org.apache.hadoop.yarn.server.nodemanager.NodeManager"}
LOG4J = """\
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.org.apache.hadoop.yarn.server.nodemanager.containermanager.monitor=WARN
log4j.logger.org.eclipse.jetty=WARN
"""


def hadoop_jars() -> Path:
    """The daemons' jars (conf/yarn/pom.xml, transitively) in the user's cache."""
    dest = maven_cache.cache_root() / "yarn" / f"hadoop-{maven_cache.key(HADOOP_POM)}"
    return maven_cache.dependencies(HADOOP_POM, dest)


def shuffle_jars() -> Path:
    """The ``spark_shuffle`` aux service built from jvm/yarn-shuffle, beside the runtime dependencies its POM
    selects for the NodeManager's class loader."""
    sources = [SHUFFLE_PROJECT / "pom.xml", *sorted((SHUFFLE_PROJECT / "src").rglob("*.java"))]
    dest = maven_cache.cache_root() / "yarn" / f"shuffle-{maven_cache.key(*sources)}"
    return maven_cache.built(SHUFFLE_PROJECT, dest)


def fetch() -> tuple[Path, Path]:
    return hadoop_jars(), shuffle_jars()


def _java_home() -> Path:
    java = shutil.which("java")
    if java is None:
        raise SystemExit("error: a Java runtime (17+) is required to run YARN")
    return Path(java).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_home() -> Path:
    import importlib.util

    return Path(importlib.util.find_spec("pyspark").origin).parent


def site_xml(properties: dict[str, object]) -> str:
    """A Hadoop ``*-site.xml`` holding ``properties``."""
    rows = "".join(f"  <property><name>{escape(k)}</name><value>{escape(str(v))}</value></property>\n"
                   for k, v in properties.items())
    return f'<?xml version="1.0"?>\n<configuration>\n{rows}</configuration>\n'


@dataclass
class Yarn:
    """A running ResourceManager and NodeManager on loopback."""

    state: str
    rm_address: str
    web_url: str
    shuffle_port: int
    memory_mb: int
    vcores: int

    def env(self) -> dict[str, str]:
        """The client environment: where the cluster is (Hadoop conf) and its Spark defaults."""
        return {"HADOOP_CONF_DIR": str(Path(self.state) / "conf"),
                "SPARK_CONF_DIR": str(Path(self.state) / "spark-conf")}

    def client_env(self, home: Path) -> dict[str, str]:
        """Everything the ``yarn`` profile needs to run this project's jobs here: ``env()``, the lake, landing,
        checkpoints and MLflow store under ``<home>/var`` (where the local profile keeps them, so the two profiles
        share one lake), and Spark sizes that fit one small NodeManager, with a short idle timeout so that
        dynamic allocation visibly gives executors back."""
        var = Path(home) / "var"
        return {
            **self.env(),
            "TRIBUTARY_HOME": str(home),
            "TRIBUTARY_LAKE": str(var / "lake"),
            "TRIBUTARY_LANDING": str(var / "landing"),
            "TRIBUTARY_CHECKPOINTS": str(var / "checkpoints"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{var / 'mlflow' / 'mlflow.db'}",
            "MLFLOW_ARTIFACT_ROOT": str(var / "mlflow" / "artifacts"),
            "TRIBUTARY_JARS_DIR": os.environ.get("TRIBUTARY_JARS_DIR") or str(var / "jars"),
            "SPARK_DRIVER_MEMORY": "1g",
            "SPARK_EXECUTOR_MEMORY": "1g",
            "SPARK_EXECUTOR_CORES": "1",
            "SPARK_SQL_SHUFFLE_PARTITIONS": "4",
            "DELTA_SNAPSHOT_PARTITIONS": "2",
            "SPARK_EXECUTOR_IDLE_TIMEOUT": "10s",
            "TRIBUTARY_MIN_EXECUTORS": "0",
            "TRIBUTARY_INITIAL_EXECUTORS": "1",
            "TRIBUTARY_MAX_EXECUTORS": str(max(1, (self.memory_mb - 1024) // 1536)),
        }

    @property
    def event_log_dir(self) -> Path:
        return Path(self.state) / "spark-events"

    def rest(self, path: str) -> dict:
        """GET the ResourceManager's REST API (``/ws/v1/cluster/<path>``)."""
        with urllib.request.urlopen(f"{self.web_url}/ws/v1/cluster/{path}", timeout=10) as resp:
            return json.load(resp)

    def nodes(self) -> list[dict]:
        return (self.rest("nodes").get("nodes") or {}).get("node", [])

    def apps(self) -> list[dict]:
        return (self.rest("apps").get("apps") or {}).get("app", [])

    def stop(self) -> None:
        stop(Path(self.state))


def write_conf(state: Path, ports: dict[str, int], memory_mb: int, vcores: int, shuffle: Path) -> None:
    """The cluster's Hadoop configuration (``<state>/conf``) and its Spark defaults (``<state>/spark-conf``)."""
    conf, spark_conf = state / "conf", state / "spark-conf"
    for directory in (conf, spark_conf, state / "spark-events", state / "staging"):
        directory.mkdir(parents=True, exist_ok=True)
    host = "127.0.0.1"
    (conf / "core-site.xml").write_text(site_xml({
        "fs.defaultFS": "file:///",
        "hadoop.tmp.dir": state / "tmp",
    }))
    (conf / "yarn-site.xml").write_text(site_xml({
        "yarn.resourcemanager.hostname": host,
        "yarn.resourcemanager.address": f"{host}:{ports['rm']}",
        "yarn.resourcemanager.scheduler.address": f"{host}:{ports['scheduler']}",
        "yarn.resourcemanager.resource-tracker.address": f"{host}:{ports['tracker']}",
        "yarn.resourcemanager.admin.address": f"{host}:{ports['admin']}",
        "yarn.resourcemanager.webapp.address": f"{host}:{ports['web']}",
        "yarn.nodemanager.hostname": host,
        "yarn.nodemanager.address": f"{host}:{ports['nm']}",
        "yarn.nodemanager.localizer.address": f"{host}:{ports['localizer']}",
        "yarn.nodemanager.webapp.address": f"{host}:{ports['nm_web']}",
        "yarn.nodemanager.local-dirs": state / "nm-local",
        "yarn.nodemanager.log-dirs": state / "nm-logs",
        "yarn.nodemanager.resource.memory-mb": memory_mb,
        "yarn.nodemanager.resource.cpu-vcores": vcores,
        "yarn.scheduler.minimum-allocation-mb": 256,
        "yarn.scheduler.maximum-allocation-mb": memory_mb,
        "yarn.scheduler.maximum-allocation-vcores": vcores,
        # Spark's external shuffle service, in a class loader of its own (its Netty is not Hadoop's).
        "yarn.nodemanager.aux-services": "spark_shuffle",
        "yarn.nodemanager.aux-services.spark_shuffle.class": SHUFFLE_CLASS,
        "yarn.nodemanager.aux-services.spark_shuffle.classpath": f"{shuffle}/*",
        "spark.shuffle.service.port": ports["shuffle"],
        # One small machine: containers are sized by what they ask for, not killed for what Python workers (torch)
        # add on top; and a nearly full disk in CI must not mark the only node unhealthy.
        "yarn.nodemanager.vmem-check-enabled": "false",
        "yarn.nodemanager.pmem-check-enabled": "false",
        "yarn.nodemanager.disk-health-checker.enable": "false",
        "yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage": "100.0",
        "yarn.log-aggregation-enable": "false",
        "yarn.timeline-service.enabled": "false",
    }))
    (conf / "capacity-scheduler.xml").write_text(site_xml({
        "yarn.scheduler.capacity.root.queues": "default",
        "yarn.scheduler.capacity.root.default.capacity": "100",
        "yarn.scheduler.capacity.root.default.maximum-capacity": "100",
        # The default 0.1 would leave one small node no room for an application master.
        "yarn.scheduler.capacity.maximum-am-resource-percent": "0.5",
    }))
    (conf / "log4j.properties").write_text(LOG4J)
    defaults = {
        "spark.yarn.jars": f"local:{_spark_home() / 'jars'}/*",  # on every node already: nothing to upload
        "spark.yarn.stagingDir": (state / "staging").as_uri(),
        "spark.shuffle.service.port": ports["shuffle"],
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": (state / "spark-events").as_uri(),
        "spark.eventLog.compress": "false",
    }
    (spark_conf / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in defaults.items()))
    shutil.copy2(REPO_ROOT / "conf" / "spark" / "log4j2.properties", spark_conf / "log4j2.properties")


def _start_daemon(state: Path, name: str, classpath: str, heap: str) -> int:
    log = state / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, JAVA_HOME=str(_java_home()), HADOOP_CONF_DIR=str(state / "conf"))
    command = [str(_java_home() / "bin" / "java"), f"-Xmx{heap}", f"-Dhadoop.log.dir={log.parent}",
               f"-Dyarn.log.dir={log.parent}", "-cp", classpath, DAEMONS[name]]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    (state / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def _wait(probe, timeout: float, what: str, state: Path) -> None:
    pids = [int(p.read_text()) for p in state.glob("*.pid")]
    if process_group.wait_for(probe, timeout, pids):
        return
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in (state / "logs").glob("*.log"))
    stop(state)
    raise RuntimeError(f"YARN: {what} within {timeout:.0f}s (or a daemon exited); logs:\n{logs}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start(state: Path, memory_mb: int = 6144, vcores: int = 4, timeout: float = 180.0) -> Yarn:
    """Start a ResourceManager and a NodeManager with ``memory_mb``/``vcores`` to offer, on free loopback ports."""
    state = state.resolve()
    stop(state)
    hadoop, shuffle = fetch()
    ports = {name: _free_port() for name in ("rm", "scheduler", "tracker", "admin", "web", "nm", "localizer",
                                             "nm_web", "shuffle")}
    write_conf(state, ports, memory_mb, vcores, shuffle)
    classpath = f"{state / 'conf'}:{hadoop}/*"
    yarn = Yarn(state=str(state), rm_address=f"127.0.0.1:{ports['rm']}", web_url=f"http://127.0.0.1:{ports['web']}",
                shuffle_port=ports["shuffle"], memory_mb=memory_mb, vcores=vcores)
    _start_daemon(state, "resourcemanager", classpath, "512m")
    _wait(lambda: yarn.rest("info")["clusterInfo"]["state"] == "STARTED", timeout,
          "the ResourceManager did not start", state)
    _start_daemon(state, "nodemanager", classpath, "512m")
    _wait(lambda: any(n["state"] == "RUNNING" for n in yarn.nodes()) and _listening(ports["shuffle"]), timeout,
          "the NodeManager did not register, or its spark_shuffle service did not listen", state)
    (state / "yarn.json").write_text(json.dumps(asdict(yarn), indent=2))
    return yarn


def stop(state: Path) -> None:
    """Stop the NodeManager (its containers are in its process group) and the ResourceManager, by their PIDs."""
    for name in ("nodemanager", "resourcemanager"):
        process_group.stop(state / f"{name}.pid", signal.SIGTERM, grace=15.0)


def running(state: Path) -> Yarn:
    """The cluster ``start`` left running under ``state``; a clear error when there is none."""
    record, pid_file = state / "yarn.json", state / "resourcemanager.pid"
    if not (record.is_file() and pid_file.is_file() and process_group.alive(int(pid_file.read_text()))):
        raise SystemExit(f"error: no YARN is running under {state}; start one with `make yarn-up` "
                         f"(python scripts/yarn_cluster.py start --state {state})")
    return Yarn(**json.loads(record.read_text()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["fetch", "start", "stop", "run"])
    parser.add_argument("--state", type=Path, default=REPO_ROOT / "var" / "yarn")
    parser.add_argument("--memory-mb", type=int, default=6144, help="memory the NodeManager offers to containers")
    parser.add_argument("--vcores", type=int, default=4, help="virtual cores the NodeManager offers")
    parser.add_argument("--rows", type=int, default=20000, help="run: transactions in the first batch")
    args = parser.parse_args(argv)
    if args.action == "fetch":
        hadoop, shuffle = fetch()
        print(f"YARN daemons' jars: {hadoop}\nspark_shuffle aux service: {shuffle}")
    elif args.action == "stop":
        stop(args.state)
    elif args.action == "run":
        env = {**os.environ, **running(args.state.resolve()).client_env(REPO_ROOT)}
        summary = REPO_ROOT / "var" / "run-summary-yarn.json"
        os.execvpe(sys.executable, [sys.executable, str(REPO_ROOT / "scripts" / "run_local.py"), "--profile", "yarn",
                                    "--rows", str(args.rows), "--summary", str(summary)], env)
    else:
        yarn = start(args.state, args.memory_mb, args.vcores)
        exports = " ".join(f"{k}={v}" for k, v in yarn.env().items())
        print(f"YARN ResourceManager {yarn.rm_address} (UI {yarn.web_url}), one NodeManager with {yarn.memory_mb} MB "
              f"and {yarn.vcores} vcores, spark_shuffle on port {yarn.shuffle_port}.\n"
              f"Run jobs there with: {exports} TRIBUTARY_PROFILE=yarn ...\n"
              f"Stop it with: {sys.argv[0]} stop --state {args.state}")


if __name__ == "__main__":
    main()

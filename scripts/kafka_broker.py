"""Start or stop an Apache Kafka broker on loopback (KRaft: one node, broker and controller), and manage its topics.

The broker's jars are those of conf/kafka/pom.xml (Kafka 4.4.0 and its dependencies), fetched from Maven Central
into the user's cache once (``fetch``; ``make kafka-jars``), keyed by the POM's hash. ``start`` writes a
``server.properties`` under the state directory, formats its log directory (``kafka.tools.StorageTool``) the first
time, starts ``kafka.Kafka`` in its own process group, waits for "Kafka Server started" in its log and records the
PID; ``stop`` kills that process group. Topics are managed with Kafka's AdminClient (scripts/kafka/TopicAdmin.java,
run by the JDK's source launcher, so nothing is compiled ahead).

    python scripts/kafka_broker.py fetch
    python scripts/kafka_broker.py start [--state var/kafka] [--port 9092] [--topic transactions --partitions 3]
    python scripts/kafka_broker.py topic create|delete|list [--name transactions] [--partitions 3]
    python scripts/kafka_broker.py stop  [--state var/kafka]

A restart on the same state directory keeps every topic and offset (the broker's data lives in ``<state>/data``).
Besides the plaintext listener the broker has a SASL_PLAINTEXT one (``Broker.sasl_bootstrap``) that knows one user,
``SASL_USER``, by SCRAM-SHA-512 (created when the log directory is formatted) and PLAIN: what the profiles'
``security_protocol``/``sasl_mechanism`` and the credentials from the environment are tested against.
Point a profile at it with ``TRIBUTARY_KAFKA_BOOTSTRAP=127.0.0.1:<port>`` (the ``local-kafka`` profile).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import maven_cache  # noqa: E402  (scripts/maven_cache.py)
import process_group  # noqa: E402  (scripts/process_group.py)

REPO_ROOT = Path(__file__).resolve().parent.parent
POM = REPO_ROOT / "conf" / "kafka" / "pom.xml"
TOPIC_ADMIN = REPO_ROOT / "scripts" / "kafka" / "TopicAdmin.java"
STARTED = "Kafka Server started"
LOG4J2 = """\
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def jars_dir() -> Path:
    """Where the jars of conf/kafka/pom.xml live in the user's cache: keyed by the POM's content."""
    return maven_cache.cache_root() / "kafka" / hashlib.sha256(POM.read_bytes()).hexdigest()[:16]


def fetch() -> Path:
    """Fetch the broker's jars (transitively, runtime scope) into ``jars_dir()`` unless already there."""
    return maven_cache.dependencies(POM, jars_dir())


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise SystemExit("error: a Java runtime (17+) is required to run the Kafka broker")
    return java


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The SASL listener's one user, for SCRAM-SHA-512 (stored in the cluster's metadata when the log directory is
# formatted) and PLAIN (in the listener's JAAS config). A test broker on loopback: not a secret.
SASL_USER, SASL_PASSWORD = "tributary", "tributary-secret"


@dataclass
class Broker:
    """A broker on loopback: ``bootstrap`` for clients (PLAINTEXT), ``sasl_bootstrap`` (SASL_PLAINTEXT: SCRAM-SHA-512
    or PLAIN as ``SASL_USER``), its PID and state directory."""

    bootstrap: str
    controller_port: int
    pid: int
    state: str
    sasl_bootstrap: str = ""

    def stop(self) -> None:
        stop(Path(self.state))

    def topic(self, action: str, name: str = "", partitions: int = 1) -> str:
        return topic(self.bootstrap, action, name, partitions)


def server_properties(state: Path, port: int, controller_port: int, sasl_port: int) -> str:
    """One node that is broker and controller, on 127.0.0.1, everything replicated once; clients connect in
    plaintext on ``port`` or with SASL (SCRAM-SHA-512 or PLAIN, no TLS) on ``sasl_port``."""
    plain_users = f'user_{SASL_USER}="{SASL_PASSWORD}"'
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port},"
        f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config="
        f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
        f"log.dirs={state / 'data'}",
        # Topics are created on purpose (`topic create`): a producer or a query naming a missing topic fails.
        "auto.create.topics.enable=false",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "log.retention.hours=-1",  # a test's records stay until its state directory goes
        "",
    ])


def start(state: Path, port: int = 0, timeout: float = 90.0, heap: str = "512m") -> Broker:
    """Start the broker on ``127.0.0.1:port`` (0: a free port; a restart reuses the state's ports)."""
    state = state.resolve()
    stop(state)
    jars = fetch()
    state.mkdir(parents=True, exist_ok=True)
    previous = state / "broker.json"
    if previous.is_file() and (state / "data" / "meta.properties").is_file():
        old = json.loads(previous.read_text())
        port = port or int(old["bootstrap"].rsplit(":", 1)[1])
        controller_port = old["controller_port"]
        sasl_port = int(old["sasl_bootstrap"].rsplit(":", 1)[1]) if old.get("sasl_bootstrap") else _free_port()
    else:
        controller_port, sasl_port = _free_port(), _free_port()
    port = port or _free_port()
    (state / "server.properties").write_text(server_properties(state, port, controller_port, sasl_port))
    (state / "log4j2.properties").write_text(LOG4J2)
    classpath = f"{jars}/*"
    java_opts = [f"-Xmx{heap}", f"-Dlog4j2.configurationFile={state / 'log4j2.properties'}",
                 f"-Dkafka.logs.dir={state / 'logs'}"]
    if not (state / "data" / "meta.properties").is_file():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        subprocess.run([_java(), *java_opts, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                        "-c", str(state / "server.properties"),
                        "--add-scram", f"SCRAM-SHA-512=[name={SASL_USER},password={SASL_PASSWORD}]"],
                       check=True, capture_output=True, text=True)
    log_path = state / "broker.log"
    log_path.write_text("")
    with log_path.open("ab") as log:
        command = [_java(), *java_opts, "-cp", classpath, "kafka.Kafka", str(state / "server.properties")]
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    broker = Broker(f"127.0.0.1:{port}", controller_port, proc.pid, str(state), f"127.0.0.1:{sasl_port}")
    (state / "pid").write_text(str(proc.pid))
    previous.write_text(json.dumps(asdict(broker), indent=2))
    deadline = time.monotonic() + timeout
    while STARTED not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-3000:]
            stop(state)
            raise RuntimeError(
                f"the Kafka broker did not start within {timeout:.0f}s (exit {proc.poll()}); log:\n{tail}")
        time.sleep(0.5)
    return broker


def stop(state: Path, grace: float = 10.0) -> None:
    """Stop the broker recorded under ``state`` (SIGTERM: a clean shutdown; SIGKILL after ``grace`` seconds)."""
    process_group.stop(state / "pid", signal.SIGTERM, grace)


def topic(bootstrap: str, action: str, name: str = "", partitions: int = 1) -> str:
    """``create`` (with ``partitions``, replication 1), ``delete`` or ``list`` topics; returns the tool's output."""
    args = {"create": [name, str(partitions)], "delete": [name], "list": []}[action]
    done = subprocess.run([_java(), "-cp", f"{fetch()}/*", str(TOPIC_ADMIN), bootstrap, action, *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"kafka topic {action} {name}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["fetch", "start", "stop", "topic"])
    parser.add_argument("topic_action", nargs="?", choices=["create", "delete", "list"])
    parser.add_argument("--state", type=Path, default=REPO_ROOT / "var" / "kafka")
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--name", "--topic", dest="name", default=None, help="topic name (start: create it)")
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args(argv)
    if args.action == "fetch":
        print(f"kafka broker jars: {fetch()}")
    elif args.action == "stop":
        stop(args.state)
    elif args.action == "start":
        broker = start(args.state, args.port)
        if args.name and args.name not in broker.topic("list").split():
            broker.topic("create", args.name, args.partitions)
        print(f"kafka broker {broker.bootstrap} (pid {broker.pid}); SASL_PLAINTEXT on {broker.sasl_bootstrap} "
              f"(SCRAM-SHA-512 or PLAIN, user {SASL_USER}, password {SASL_PASSWORD}); "
              f"stop with: {sys.argv[0]} stop --state {args.state}")
    else:
        if args.topic_action is None or (args.topic_action != "list" and not args.name):
            parser.error("topic needs create|delete|list, and --name for create and delete")
        broker = json.loads((args.state / "broker.json").read_text())
        print(topic(broker["bootstrap"], args.topic_action, args.name or "", args.partitions), end="")


if __name__ == "__main__":
    main()

"""Start or stop a PostgreSQL server on loopback with a database and a user each for Airflow and MLflow.

The server is Debian's PostgreSQL (``postgresql-15``; ``install`` adds the package where it is missing, as root).
``start`` initialises a cluster under ``<state>/data`` the first time (``initdb``, SCRAM-SHA-256 passwords, a
superuser ``postgres``), starts ``postgres`` in its own process group listening on ``127.0.0.1:<port>`` only (its
Unix socket in ``<state>/run``), waits until it accepts connections, records the PID, and creates what is missing:
the users ``airflow`` and ``mlflow``, each owning its database of the same name, which no other user may connect to.
``stop`` ends that process group by its PID (SIGINT: PostgreSQL's fast shutdown; SIGKILL after a grace period).

    python scripts/postgres_server.py install
    python scripts/postgres_server.py start [--state var/postgres] [--port 5432]
    python scripts/postgres_server.py stop  [--state var/postgres]
    python scripts/postgres_server.py url airflow|mlflow [--state var/postgres]   # a SQLAlchemy URL

The passwords are generated at ``initdb`` and kept in ``<state>/server.json`` (mode 0600): a server on loopback
for one machine's Airflow and MLflow, never a shared one. A restart on the same state keeps every database. Run
as root, the server runs as the ``postgres`` system user (PostgreSQL refuses root), which then owns ``<state>``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import process_group  # noqa: E402  (scripts/process_group.py)

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "postgresql-15"  # Debian bookworm's PostgreSQL, the version the local cluster's image also runs
SERVICES = ("airflow", "mlflow")  # each: a user and a database of that name
SUPERUSER = "postgres"


def bin_dir() -> Path:
    """The newest installed PostgreSQL's programs (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise SystemExit(f"error: PostgreSQL is not installed; run `make postgres-bin` (apt-get install {PACKAGE})")
    return Path(found[-1]).parent


def install() -> Path:
    """Install Debian's PostgreSQL server package unless a server is already there; its bin directory."""
    if not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        if os.geteuid() != 0:
            raise SystemExit(f"error: PostgreSQL is not installed; as root run: apt-get install -y {PACKAGE}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
        # The package's own cluster (pg_createcluster) is not used: the project's servers live under their state.
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", PACKAGE], check=True, env=env)
    return bin_dir()


@dataclass
class Server:
    """A server on loopback: host, port, PID, state directory and each service's password."""

    host: str
    port: int
    pid: int
    state: str
    passwords: dict[str, str]

    def url(self, service: str, driver: str = "postgresql+psycopg2") -> str:
        """The SQLAlchemy URL of ``service``'s database as its own user (Airflow's and MLflow's form)."""
        return f"{driver}://{service}:{self.passwords[service]}@{self.host}:{self.port}/{service}"

    def psql(self, sql: str, user: str = SUPERUSER, database: str = SUPERUSER) -> subprocess.CompletedProcess[str]:
        """Run ``sql`` with psql over TCP as ``user`` (its password from the state); the finished process."""
        env = {**os.environ, "PGPASSWORD": self.passwords[user], "PGCONNECT_TIMEOUT": "10"}
        return subprocess.run([str(bin_dir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h",
                               self.host, "-p", str(self.port), "-U", user, "-d", database, "-c", sql],
                              env=env, capture_output=True, text=True, timeout=60)

    def stop(self) -> None:
        stop(Path(self.state))


def _owner() -> pwd.struct_passwd | None:
    """The user the server runs as: ``postgres`` when this is root, else this user (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise SystemExit(f"error: run as root, the server needs the system user '{SUPERUSER}' that {PACKAGE} "
                         "creates; run `make postgres-bin`") from None


def _as_owner(owner: pwd.struct_passwd | None) -> dict:
    return {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}


def _reachable(state: Path, owner: pwd.struct_passwd) -> None:
    """Fail with the fix if ``owner`` cannot reach ``state`` (e.g. under a root-only 0700 directory)."""
    for parent in reversed(state.parents):
        info = parent.stat()
        if info.st_uid != owner.pw_uid and not info.st_mode & 0o001:
            raise SystemExit(f"error: the server runs as '{owner.pw_name}', which cannot enter {parent} "
                             f"(mode {oct(info.st_mode & 0o777)}); choose a state directory it can reach, such as "
                             "one under var/ or /tmp")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _initdb(state: Path, owner: pwd.struct_passwd | None) -> dict[str, str]:
    passwords = {name: secrets.token_urlsafe(18) for name in (SUPERUSER, *SERVICES)}
    pwfile = state / "run" / "superuser.pw"
    pwfile.write_text(passwords[SUPERUSER])
    if owner is not None:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    try:
        done = subprocess.run([str(bin_dir() / "initdb"), "-D", str(state / "data"), "-U", SUPERUSER,
                               "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"],
                              capture_output=True, text=True, **_as_owner(owner))
    finally:
        pwfile.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return passwords


def start(state: Path, port: int = 0, timeout: float = 60.0) -> Server:
    """Start the server on ``127.0.0.1:port`` (0: a free port; a restart reuses the state's port and passwords)."""
    state = state.resolve()
    stop(state)
    owner = _owner()
    state.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        _reachable(state, owner)
    (state / "run").mkdir(exist_ok=True)
    for path in (state, state / "run"):
        path.chmod(0o700)
        if owner is not None:
            os.chown(path, owner.pw_uid, owner.pw_gid)
    record = state / "server.json"
    if record.is_file() and (state / "data" / "PG_VERSION").is_file():
        old = json.loads(record.read_text())
        port, passwords = port or old["port"], old["passwords"]
    else:
        shutil.rmtree(state / "data", ignore_errors=True)
        passwords = _initdb(state, owner)
    port = port or _free_port()
    log_path = state / "postgres.log"
    log_path.write_text("")
    if owner is not None:
        os.chown(log_path, owner.pw_uid, owner.pw_gid)
    with log_path.open("ab") as log:
        command = [str(bin_dir() / "postgres"), "-D", str(state / "data"), "-h", "127.0.0.1", "-p", str(port),
                   "-k", str(state / "run"), "-c", "log_min_messages=warning", "-c", "max_connections=100"]
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                **_as_owner(owner))
    server = Server("127.0.0.1", port, proc.pid, str(state), passwords)
    (state / "pid").write_text(str(proc.pid))
    record.write_text(json.dumps(asdict(server), indent=2))
    record.chmod(0o600)
    deadline = time.monotonic() + timeout
    while subprocess.run([str(bin_dir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(state)
            raise RuntimeError(f"PostgreSQL did not start within {timeout:.0f}s (exit {proc.poll()}); log:\n"
                               f"{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)
    _create_services(server)
    return server


def _create_services(server: Server) -> None:
    """Each service's user and database, owned by it and closed to everyone else (idempotent)."""
    for name in SERVICES:
        password = server.passwords[name].replace("'", "''")
        exists = server.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{name}'").stdout.strip()
        verb = "ALTER" if exists else "CREATE"
        _checked(server.psql(f"{verb} ROLE {name} LOGIN PASSWORD '{password}'"))
        if not server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").stdout.strip():
            _checked(server.psql(f"CREATE DATABASE {name} OWNER {name}"))
        _checked(server.psql(f"REVOKE CONNECT, TEMPORARY ON DATABASE {name} FROM PUBLIC"))
    _checked(server.psql("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC"))


def _checked(done: subprocess.CompletedProcess[str]) -> str:
    if done.returncode != 0:
        raise RuntimeError(f"psql: {done.stderr.strip()}")
    return done.stdout


def load(state: Path) -> Server:
    """The server recorded under ``state`` (started by ``start``)."""
    record = state / "server.json"
    if not record.is_file():
        raise SystemExit(f"error: no PostgreSQL server under {state}; start one with `make postgres-up`")
    return Server(**json.loads(record.read_text()))


def stop(state: Path, grace: float = 30.0) -> None:
    """Stop the server recorded under ``state`` (SIGINT: fast shutdown, open transactions rolled back; SIGKILL
    after ``grace`` seconds)."""
    process_group.stop(state / "pid", signal.SIGINT, grace)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["install", "start", "stop", "url"])
    parser.add_argument("service", nargs="?", choices=SERVICES)
    parser.add_argument("--state", type=Path, default=REPO_ROOT / "var" / "postgres")
    parser.add_argument("--port", type=int, default=5432)
    args = parser.parse_args(argv)
    if args.action == "install":
        print(f"PostgreSQL: {install()}")
    elif args.action == "stop":
        stop(args.state)
    elif args.action == "start":
        server = start(args.state, args.port)
        print(f"PostgreSQL on {server.host}:{server.port} (pid {server.pid}), databases {', '.join(SERVICES)}; "
              f"URLs: {sys.argv[0]} url airflow|mlflow; stop with: {sys.argv[0]} stop --state {args.state}")
    else:
        if args.service is None:
            parser.error("url needs the service: airflow or mlflow")
        print(load(args.state).url(args.service))


if __name__ == "__main__":
    main()

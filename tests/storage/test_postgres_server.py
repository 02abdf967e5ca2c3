"""The PostgreSQL server of scripts/postgres_server.py: Debian's PostgreSQL on loopback, started and stopped by PID,
with a user and a database each for Airflow and MLflow that the other cannot enter.

The fixture starts one server under a fresh state directory and stops it by its PID afterwards, also on failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from tests.pipeline_data import load_script

postgres_server = load_script("postgres_server")


@pytest.fixture(scope="module")
def state():
    """A state directory the server's user can reach (pytest's tmp_path is root-only when this runs as root)."""
    path = Path(tempfile.mkdtemp(prefix="tributary-pg-"))
    path.chmod(0o711)  # enterable, not listable
    yield path / "state"
    postgres_server.stop(path / "state")
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def server(state):
    server = postgres_server.start(state)
    yield server
    server.stop()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_each_service_owns_its_database_and_cannot_enter_the_other(server):
    assert server.host == "127.0.0.1" and _listening(server.port)
    for name, other in (("airflow", "mlflow"), ("mlflow", "airflow")):
        done = server.psql(f"CREATE TABLE {name}_t (x int); INSERT INTO {name}_t VALUES (1); "
                           f"SELECT count(*) FROM {name}_t", user=name, database=name)
        assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
        refused = server.psql("SELECT 1", user=name, database=other)
        assert refused.returncode != 0 and f'permission denied for database "{other}"' in refused.stderr
        wrong = postgres_server.Server(**{**vars(server), "passwords": {**server.passwords, name: "wrong"}})
        assert "password authentication failed" in wrong.psql("SELECT 1", user=name, database=name).stderr
    assert server.url("mlflow") == (f"postgresql+psycopg2://mlflow:{server.passwords['mlflow']}@127.0.0.1:"
                                    f"{server.port}/mlflow")
    assert server.psql("SHOW listen_addresses").stdout.strip() == "127.0.0.1"
    record = Path(server.state) / "server.json"
    assert record.stat().st_mode & 0o077 == 0  # the passwords: owner only


def test_stop_by_pid_then_restart_keeps_the_data_port_and_passwords(server, state):
    pid, port = server.pid, server.port
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert not _listening(port) and not (state / "pid").exists()
    postgres_server.stop(state)  # nothing left to stop: a no-op
    again = postgres_server.start(state)
    assert (again.port, again.passwords) == (port, server.passwords) and again.pid != pid
    done = again.psql("SELECT count(*) FROM airflow_t", user="airflow", database="airflow")
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
    assert postgres_server.load(state).pid == again.pid


def test_a_state_directory_the_server_user_cannot_reach_is_refused_with_the_fix(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    if os.geteuid() == 0:  # the server runs as `postgres`, which cannot enter root's 0700 directory
        with pytest.raises(SystemExit, match=r"runs as 'postgres', which cannot enter /.*\(mode 0o700\); choose a "
                                             "state directory it can reach"):
            postgres_server.start(private / "state")
        assert not (private / "state" / "pid").exists()
    else:  # the server runs as this user, who owns the directory
        server = postgres_server.start(private / "state")
        try:
            assert _listening(server.port)
        finally:
            server.stop()

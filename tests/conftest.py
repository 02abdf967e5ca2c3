"""Shared fixtures: one local SparkSession per test run, and a throw-away project home per test.

`tributary_home` points TRIBUTARY_HOME at a temporary directory, so the local profile's lake, landing,
checkpoints and MLflow store all live there; the pinned jars stay in the checkout's var/jars.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tributary.config import REPO_ROOT, load_profile

JARS_DIR = REPO_ROOT / "var" / "jars"


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    """Ctrl-C and SIGTERM end the run through pytest's KeyboardInterrupt, so every fixture's finalizer stops what it
    started (the cluster, servers) by PID. A pytest a script starts in the background (scripts/test.sh) inherits
    SIGINT ignored (POSIX: asynchronous commands without job control), so its handler is put back here."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture(scope="session", autouse=True)
def _pinned_jars_env(tmp_path_factory: pytest.TempPathFactory):
    """Every test sees the pinned jars and a neutral profile switch."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TRIBUTARY_JARS_DIR", str(JARS_DIR))
    mp.delenv("TRIBUTARY_PROFILE", raising=False)
    mp.setenv("TRIBUTARY_HOME", str(tmp_path_factory.mktemp("home")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def spark(_pinned_jars_env):
    """The session-scoped local SparkSession (the same factory the jobs use), without the profile's event log: it
    is the tests' scratch session, not a job, and one log of every test's jobs would only cost time. Nor
    OpenLineage's listener, for the same reason (spark_jobs/lineage.py emits nothing without it)."""
    from spark_jobs.session import build_session

    session = build_session(load_profile("local"), "tributary-tests",
                            {"spark.eventLog.enabled": "false", "spark.extraListeners": ""})
    session.sparkContext.setLogLevel("WARN")
    yield session
    session.stop()


@pytest.fixture
def tributary_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TRIBUTARY_HOME for one test; returns it. The local profile resolves under it."""
    monkeypatch.setenv("TRIBUTARY_HOME", str(tmp_path))
    monkeypatch.setenv("TRIBUTARY_PROFILE", "local")
    return tmp_path


@pytest.fixture
def local_profile(tributary_home: Path):
    """The local profile resolved under the per-test TRIBUTARY_HOME."""
    return load_profile("local")

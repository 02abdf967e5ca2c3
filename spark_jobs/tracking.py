"""MLflow wiring shared by every job that trains, promotes or scores: one place reads ``profile.mlflow``.

``configure_mlflow(profile)`` points this process at the profile's tracking server and model registry, creates the
experiment (with the profile's artifact root) when it is missing, makes it the active experiment and returns its
id. Nothing here reads the environment: the profile already expanded ``${...}`` references. A tracking server
(an ``http(s)://`` URI) that does not answer its health check within ``HEALTH_WAIT_S`` raises
``TrackingUnavailable`` with the URI and the cause, before anything is read or written: MLflow's client would
otherwise retry each call for minutes and end with a bare connection error.

Usage::

    from spark_jobs.tracking import configure_mlflow
    experiment_id = configure_mlflow(load_profile("local"))
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlparse

from tributary.config import Profile

SQLITE_PREFIX = "sqlite:///"
# The registered model's aliases: train sets @challenger, promote moves @champion, batch and stream scoring load it.
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
HEALTH_WAIT_S = 60.0  # a tracking server restarting (a rollout, a node drain) is back within it


class TrackingUnavailable(RuntimeError):
    """The profile's MLflow tracking server did not answer; the message says where and what to do."""


def check_tracking_server(tracking_uri: str, wait_s: float | None = None) -> None:
    """Raise ``TrackingUnavailable`` unless an ``http(s)://`` tracking server answers ``/health`` within ``wait_s``
    (retried every few seconds: a server that is restarting gets that long). Other stores (SQLite, files) pass."""
    import urllib.error
    import urllib.request

    if urlparse(tracking_uri).scheme not in ("http", "https"):
        return
    wait_s = HEALTH_WAIT_S if wait_s is None else wait_s
    url = tracking_uri.rstrip("/") + "/health"
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
                cause = f"HTTP {reply.status}"
        except urllib.error.HTTPError as exc:
            cause = f"HTTP {exc.code}"
        except OSError as exc:  # refused, unreachable, DNS, timeout
            cause = str(getattr(exc, "reason", exc))
        if time.monotonic() >= deadline:
            raise TrackingUnavailable(
                f"the MLflow tracking server at {tracking_uri} did not answer {url} for {wait_s:.0f}s ({cause}); "
                "nothing was read or written. Start it (on Kubernetes: kubectl -n tributary get pods -l "
                "app.kubernetes.io/component=mlflow) or fix the profile's mlflow.tracking_uri, then retry")
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))


def artifact_location(root: str) -> str:
    """The experiment's artifact location as a URI: a plain path becomes an absolute ``file://`` URI.

    URIs with a scheme (``s3://``, ``gs://``, ``hdfs://``, ``file://``, ``mlflow-artifacts:``) pass unchanged.
    """
    if urlparse(root).scheme and not Path(root).drive:
        return root
    return Path(root).expanduser().resolve().as_uri()


def sqlite_store(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; None for any other store (or an in-memory one)."""
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    db_path = tracking_uri[len(SQLITE_PREFIX) :].split("?", 1)[0]
    return Path(db_path) if db_path and db_path != ":memory:" else None


def _prepare_local_store(tracking_uri: str, artifact_uri: str) -> None:
    """Create the directories a local SQLite store and a ``file://`` artifact root need."""
    if db_file := sqlite_store(tracking_uri):
        db_file.parent.mkdir(parents=True, exist_ok=True)
    if artifact_uri.startswith("file://"):
        Path(urlparse(artifact_uri).path).mkdir(parents=True, exist_ok=True)


def configure_mlflow(profile: Profile, health_wait_s: float | None = None) -> str:
    """Set the tracking and registry URI from ``profile``, ensure its experiment exists, activate it, return its id;
    ``TrackingUnavailable`` when its tracking server does not answer within ``health_wait_s`` (default
    ``HEALTH_WAIT_S``)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    cfg = profile.mlflow
    tracking_uri = cfg["tracking_uri"]
    check_tracking_server(tracking_uri, health_wait_s)
    artifacts = artifact_location(cfg["artifact_root"])
    _prepare_local_store(tracking_uri, artifacts)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)

    name = cfg["experiment"]
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment_id = mlflow.create_experiment(name, artifact_location=artifacts)
        except MlflowException:  # another job created it between our lookup and create
            experiment = mlflow.get_experiment_by_name(name)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id

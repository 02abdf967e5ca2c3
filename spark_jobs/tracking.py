"""MLflow wiring shared by every job that trains, promotes or scores: one place reads ``profile.mlflow``.

``configure_mlflow(profile)`` points this process at the profile's tracking server and model registry, creates the
experiment (with the profile's artifact root) when it is missing, makes it the active experiment and returns its
id. Nothing here reads the environment: the profile already expanded ``${...}`` references.

Usage::

    from spark_jobs.tracking import configure_mlflow
    experiment_id = configure_mlflow(load_profile("local"))
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from spark_jobs.config import Profile

SQLITE_PREFIX = "sqlite:///"


def artifact_location(root: str) -> str:
    """The experiment's artifact location as a URI: a plain path becomes an absolute ``file://`` URI.

    URIs with a scheme (``s3://``, ``gs://``, ``hdfs://``, ``file://``, ``mlflow-artifacts:``) pass unchanged.
    """
    if urlparse(root).scheme and not Path(root).drive:
        return root
    return Path(root).expanduser().resolve().as_uri()


def _prepare_local_store(tracking_uri: str, artifact_uri: str) -> None:
    """Create the directories a local SQLite store and a ``file://`` artifact root need."""
    if tracking_uri.startswith(SQLITE_PREFIX):
        db_path = tracking_uri[len(SQLITE_PREFIX) :].split("?", 1)[0]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    if artifact_uri.startswith("file://"):
        Path(urlparse(artifact_uri).path).mkdir(parents=True, exist_ok=True)


def configure_mlflow(profile: Profile) -> str:
    """Set the tracking and registry URI from ``profile``, ensure its experiment exists, activate it, return its id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    cfg = profile.mlflow
    tracking_uri = cfg["tracking_uri"]
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

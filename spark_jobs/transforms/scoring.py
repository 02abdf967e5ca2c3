"""Champion resolution and batched, GPU-aware model inference over Spark DataFrames (used by batch and stream).

``resolve_champion(profile)`` pins the registered version behind ``@champion`` on the driver (once per batch job; the
stream again between micro-batches), so every worker loads the same version even if the alias moves mid-job (or
mid-batch). ``score_features`` runs ``mapInArrow``:
each Python worker loads that version ONCE (module-level cache keyed by tracking URI, model URI and device) and
scores Arrow batches of ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows on the GPU Spark assigned to the
task (``TaskContext.resources()["gpu"]``) or on the CPU. Arrow, not pandas: the passthrough strings never become
Python objects, and the model's name, version and run are constants the JVM adds (benchmarks/README.md, P1).

"Once per worker" relies on Spark reusing Python workers (``spark.python.worker.reuse``, on by default). The
tracking URI travels to the workers in the function's closure (no environment variables). Artifacts are read
from the experiment's artifact root, so on a cluster it must be shared storage (s3://, gs://, hdfs://, an NFS
path): a local ``var/mlflow`` only works with ``local[*]``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_jobs.tracking import CHAMPION_ALIAS
from spark_jobs.transforms.card_features import FEATURE_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

    from tributary.config import Profile

DEFAULT_BATCH_ROWS = 10_000
PASSTHROUGH_COLUMNS = ["transaction_id", "card_id", "event_time"]
SCORED_SCHEMA = T.StructType(
    [
        T.StructField("transaction_id", T.StringType()),
        T.StructField("card_id", T.StringType()),
        T.StructField("event_time", T.TimestampType()),
        T.StructField("fraud_score", T.DoubleType()),
        T.StructField("is_fraud_pred", T.IntegerType()),
        T.StructField("model_name", T.StringType()),
        T.StructField("model_version", T.IntegerType()),
        T.StructField("model_run_id", T.StringType()),
    ]
)
PREDICTION_COLUMNS = [*SCORED_SCHEMA.fieldNames(), "scored_at"]
MODEL_OUTPUT_SCHEMA = T.StructType(SCORED_SCHEMA.fields[:5])  # what the Python workers return


class NoChampionError(RuntimeError):
    """No model version carries the ``@champion`` alias (or the model is not registered at all)."""


@dataclass(frozen=True)
class ChampionModel:
    """The registered model version that scores; ``model_uri`` pins the version (``models:/<name>/<version>``).

    ``threshold`` turns ``fraud_score`` into ``is_fraud_pred`` (training's operating point, version tag
    ``decision_threshold``); ``feature_columns`` are the inputs it was trained on (version tag), checked before
    scoring.
    """

    name: str
    version: int
    run_id: str
    model_uri: str
    threshold: float = 0.5
    feature_columns: tuple[str, ...] | None = None


def _no_champion(name: str, why: str) -> NoChampionError:
    return NoChampionError(
        f"no champion model to score with: {why}. Train and promote one "
        f"(python -m spark_jobs.train, then python -m spark_jobs.promote), or point @{CHAMPION_ALIAS} at an "
        f"existing version with python -m spark_jobs.promote --version N"
    )


def resolve_champion(profile: "Profile", health_wait_s: float | None = None) -> ChampionModel:
    """The version behind ``models:/<model_name>@champion`` in the profile's registry; NoChampionError if none,
    ``TrackingUnavailable`` if its tracking server does not answer within ``health_wait_s`` (default: the jobs')."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from spark_jobs.tracking import configure_mlflow

    configure_mlflow(profile, health_wait_s)
    name = profile.mlflow["model_name"]
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        raise _no_champion(name, f"model '{name}' is not registered in {profile.mlflow['tracking_uri']}") from None
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        raise _no_champion(name, f"model '{name}' has no @{CHAMPION_ALIAS} alias") from None
    columns = mv.tags.get("feature_columns")
    return ChampionModel(
        name=name,
        version=int(mv.version),
        run_id=mv.run_id,
        model_uri=f"models:/{name}/{mv.version}",
        threshold=float(mv.tags.get("decision_threshold", 0.5)),
        feature_columns=tuple(columns.split(",")) if columns else None,
    )


# --- worker side: one model per (tracking URI, model URI, device) per Python process ----------------------------

_MODEL_CACHE: dict[tuple[str, str, str], Any] = {}
_LOAD_COUNTS: dict[tuple[str, str, str], int] = {}
_CACHE_LOCK = threading.Lock()


def model_load_counts() -> dict[tuple[str, str, str], int]:
    """How many times this process loaded each (tracking URI, model URI, device); for tests and debugging."""
    return dict(_LOAD_COUNTS)


def task_device() -> str:
    """``cuda:<address>`` of the GPU Spark assigned to the current task, else ``cpu`` (also outside a task)."""
    from pyspark import TaskContext

    context = TaskContext.get()
    gpu = context.resources().get("gpu") if context is not None else None
    return f"cuda:{gpu.addresses[0]}" if gpu is not None and gpu.addresses else "cpu"


def scoring_devices(spark: "SparkSession") -> dict[str, Any]:
    """Where scoring's tasks run, seen from the driver: each executor's GPU addresses as Spark's discovery script
    reported them (the driver's REST API; empty when its UI is off, as on the local profile, or behind YARN's
    proxy), the GPUs each task is handed (``spark.task.resource.gpu.amount``), and so the device ``task_device``
    picks: ``cuda`` when tasks are handed a GPU, else ``cpu``, the fallback (a local cluster's simulated GPU node
    reports a placeholder device and hands tasks none)."""
    import json
    import urllib.request

    context = spark.sparkContext
    executor_gpus: dict[str, list[str]] = {}
    if context.uiWebUrl:
        url = f"{context.uiWebUrl}/api/v1/applications/{context.applicationId}/executors"
        try:
            with urllib.request.urlopen(url, timeout=30) as reply:
                executors = json.load(reply)
        except (OSError, ValueError):  # unreachable, or not JSON: on YARN the UI redirects to the ResourceManager's
            executors = []  # proxy, which answers a program with an HTML page
        executor_gpus = {e["id"]: list(e.get("resources", {}).get("gpu", {}).get("addresses", []))
                         for e in executors if e["id"] != "driver"}
    task_amount = spark.conf.get("spark.task.resource.gpu.amount", None)
    return {"executor_gpus": executor_gpus, "task_gpu_amount": task_amount, "device": "cuda" if task_amount else "cpu"}


def load_model_cached(tracking_uri: str, model_uri: str, device: str) -> Any:
    """The torch model for ``model_uri`` on ``device``, loaded at most once per process."""
    key = (tracking_uri, model_uri, device)
    with _CACHE_LOCK:
        if key not in _MODEL_CACHE:
            import mlflow
            import mlflow.pytorch
            import torch

            torch.set_num_threads(1)  # Spark already runs one task per core
            mlflow.set_tracking_uri(tracking_uri)
            mlflow.set_registry_uri(tracking_uri)
            # pt2 (torch.export) models load on the CPU; .to() then moves weights and buffers to the task's GPU.
            _MODEL_CACHE[key] = mlflow.pytorch.load_model(model_uri).to(device)
            _LOAD_COUNTS[key] = _LOAD_COUNTS.get(key, 0) + 1
        return _MODEL_CACHE[key]


def score_batches(
    batches: Iterator["pa.RecordBatch"], champion: ChampionModel, tracking_uri: str, batch_rows: int
) -> Iterator["pa.RecordBatch"]:
    """The ``mapInArrow`` body: Arrow batches of ``PASSTHROUGH_COLUMNS`` + ``FEATURE_COLUMNS`` (doubles) in,
    ``PASSTHROUGH_COLUMNS`` + ``fraud_score``, ``is_fraud_pred`` out. The passthrough columns go back as the Arrow
    arrays they came in (no Python objects per row); the features become one float32 matrix for the model."""
    import numpy as np
    import pyarrow as pa

    from spark_jobs.transforms.model import predict_proba

    device, model = task_device(), None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if model is None:  # lazily: an empty partition loads nothing
            model = load_model_cached(tracking_uri, champion.model_uri, device)
        x = np.empty((batch.num_rows, len(FEATURE_COLUMNS)), dtype=np.float32)
        for j, name in enumerate(FEATURE_COLUMNS):
            x[:, j] = batch.column(name).to_numpy(zero_copy_only=False)
        scores = predict_proba(model, x, batch_rows, device)
        yield pa.RecordBatch.from_arrays(
            [*(batch.column(c) for c in PASSTHROUGH_COLUMNS), pa.array(scores.astype(np.float64)),
             pa.array((scores >= champion.threshold).astype(np.int32))],
            names=[*PASSTHROUGH_COLUMNS, "fraud_score", "is_fraud_pred"],
        )


def model_identity_columns(champion: ChampionModel) -> list[Column]:
    """``model_name``, ``model_version``, ``model_run_id`` and ``scored_at``: the same on every row, so constants the
    JVM adds rather than columns built per row in Python."""
    return [F.lit(champion.name).alias("model_name"), F.lit(champion.version).cast("int").alias("model_version"),
            F.lit(champion.run_id).alias("model_run_id"), F.current_timestamp().alias("scored_at")]


def score_features(features: DataFrame, champion: ChampionModel, tracking_uri: str) -> DataFrame:
    """Score feature rows (``transaction_id, card_id, event_time`` + ``FEATURE_COLUMNS``) with ``champion``.

    Returns ``transaction_id, card_id, event_time, fraud_score, is_fraud_pred, model_name, model_version,
    model_run_id, scored_at``. Raises ValueError when the champion was trained on other feature columns.
    """
    if champion.feature_columns is not None and list(champion.feature_columns) != FEATURE_COLUMNS:
        raise ValueError(
            f"champion version {champion.version} expects features {list(champion.feature_columns)}, but "
            f"features_card provides {FEATURE_COLUMNS}; retrain and promote a model on the current features"
        )
    conf = features.sparkSession.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", str(DEFAULT_BATCH_ROWS))
    batch_rows = int(conf) if conf and int(conf) > 0 else DEFAULT_BATCH_ROWS

    def score(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        return score_batches(batches, champion, tracking_uri, batch_rows)

    inputs = features.select(*PASSTHROUGH_COLUMNS, *(F.col(c).cast("double") for c in FEATURE_COLUMNS))
    scored = inputs.mapInArrow(score, MODEL_OUTPUT_SCHEMA)
    return scored.select(*PASSTHROUGH_COLUMNS, "fraud_score", "is_fraud_pred", *model_identity_columns(champion))

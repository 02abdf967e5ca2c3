"""Tests for spark_jobs.transforms.scoring and spark_jobs.score: champion resolution, batched inference, idempotent MERGE."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Iterator

import pandas as pd
import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from spark_jobs import io, promote, score
from spark_jobs.tracking import configure_mlflow
from spark_jobs.transforms import scoring
from spark_jobs.transforms.card_features import FEATURE_COLUMNS
from spark_jobs.transforms.scoring import ChampionModel, NoChampionError, resolve_champion, score_features
from tests.spark_jobs.ml_support import (  # noqa: F401
    START,
    closed_port_url,
    features_frame,
    features_pandas,
    mlflow_store,
    register_model,
    result_of,
    write_features,
)

def _champion_ready(profile, seed: int = 5) -> ChampionModel:
    """A model trained, registered and promoted (manually); the resolved champion."""
    version = register_model(profile, seed=seed)["version"]
    promote.main(["--profile", "local", "--version", str(version)])
    return resolve_champion(profile)


# --- resolve_champion -------------------------------------------------------------------------------------------


def test_no_registered_model_raises_a_helpful_error(mlflow_store) -> None:
    with pytest.raises(NoChampionError) as err:
        resolve_champion(mlflow_store)
    message = str(err.value)
    assert "not registered" in message
    assert "python -m spark_jobs.train" in message and "python -m spark_jobs.promote --version N" in message


def test_registered_model_without_champion_alias_raises(mlflow_store) -> None:
    configure_mlflow(mlflow_store)
    MlflowClient().create_registered_model(mlflow_store.mlflow["model_name"])
    with pytest.raises(NoChampionError, match="no @champion alias.*promote --version N"):
        resolve_champion(mlflow_store)


def test_score_main_without_champion_exits_2_with_the_message(mlflow_store, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        score.main(["--profile", "local"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "no champion model" in err and "spark_jobs.promote --version N" in err


# --- pure pieces ------------------------------------------------------------------------------------------------


def test_task_device_is_cpu_outside_a_gpu_task() -> None:
    assert scoring.task_device() == "cpu"


def test_a_champion_trained_on_other_features_is_refused(spark: SparkSession) -> None:
    stale = ChampionModel("m", 1, "run", "models:/m/1", feature_columns=("amount",))
    with pytest.raises(ValueError, match="retrain and promote"):
        score_features(features_frame(spark, rows=2), stale, "sqlite:///unused.db")


# --- scoring with a real champion -------------------------------------------------------------------------------


def test_worker_function_loads_the_model_once_and_scores_every_row(mlflow_store) -> None:
    import pyarrow as pa

    champion = _champion_ready(mlflow_store)
    uri = mlflow_store.mlflow["tracking_uri"]
    rows = features_pandas(rows=30)
    rows = rows[scoring.PASSTHROUGH_COLUMNS].join(rows[FEATURE_COLUMNS].astype("float64"))  # score_features' input
    key = (uri, champion.model_uri, "cpu")
    assert key not in scoring.model_load_counts()

    def batches() -> Iterator[pa.RecordBatch]:  # what mapInArrow hands a task: Arrow batches, an empty one too
        yield pa.RecordBatch.from_pandas(rows.iloc[:0], preserve_index=False)
        yield from (pa.RecordBatch.from_pandas(rows.iloc[i : i + 7], preserve_index=False) for i in range(0, len(rows), 7))

    def scored() -> pd.DataFrame:
        return pa.Table.from_batches(list(scoring.score_batches(batches(), champion, uri, batch_rows=4))).to_pandas()

    first = scored()  # one "partition"
    second = scored()  # another, same process
    assert scoring.model_load_counts()[key] == 1
    assert list(first.columns) == [*scoring.PASSTHROUGH_COLUMNS, "fraud_score", "is_fraud_pred"]
    assert first[scoring.PASSTHROUGH_COLUMNS].equals(rows[scoring.PASSTHROUGH_COLUMNS])  # passed through as they came
    assert first["fraud_score"].between(0, 1).all() and first.equals(second)
    assert (first["is_fraud_pred"] == (first["fraud_score"] >= champion.threshold).astype(int)).all()
    assert list(scoring.score_batches(iter([]), champion, uri, 4)) == []  # an empty partition loads nothing


def test_score_writes_predictions_idempotently_and_rescoring_updates_the_version(
    spark: SparkSession, mlflow_store, capsys
) -> None:
    profile = mlflow_store
    write_features(features_frame(spark, rows=300), profile)
    champion = _champion_ready(profile)
    capsys.readouterr()
    previous_batch = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "25")  # several Arrow batches per task
    try:
        hour = ["--start", START.isoformat(), "--end", START.replace(hour=1).isoformat()]
        first = score.main(["--profile", "local", *hour])  # no predictions table yet: everything, not the hour
        assert result_of(capsys.readouterr().out) == {"job": "score", **first}
        assert first["interval"] == {"start": None, "end": None} and first["rows_written"] == 300
        predictions = io.read_table(spark, profile.catalog, "predictions")
        assert predictions.columns == scoring.PREDICTION_COLUMNS
        assert first["predictions_rows"] == predictions.count() == 300
        assert (first["model_version"], first["model_run_id"]) == (champion.version, champion.run_id)
        # no GPU here and the local profile's UI (the executors' REST API) is off: the CPU, and said so
        assert (first["device"], first["executor_gpus"]) == ("cpu", {})
        wrong = (
            (F.col("model_version") != champion.version)
            | (F.col("model_run_id") != champion.run_id)
            | (F.col("model_name") != champion.name)
            | ~F.col("fraud_score").between(0.0, 1.0)
            | F.col("scored_at").isNull()
        )
        assert predictions.where(wrong).count() == 0
        keys = ["transaction_id", "card_id", "event_time"]
        features = io.read_table(spark, profile.catalog, "features_card")
        assertDataFrameEqual(predictions.select(keys), features.select(keys))

        # each Python worker loaded the model at most once, although it scored several batches
        loads = _worker_load_counts(spark, profile.mlflow["tracking_uri"], champion.model_uri)
        assert loads and max(loads.values()) == 1, loads

        assert score.main(["--profile", "local"])["predictions_rows"] == 300  # re-running: same rows

        # a new champion re-scores an interval: its rows get the new version, the others keep theirs
        newer = _champion_ready(profile, seed=9)
        end = START.replace(hour=1).isoformat()
        rescored = score.main(["--profile", "local", *hour])
        assert (rescored["predictions_rows"], rescored["model_version"]) == (300, newer.version)
        assert rescored["rows_written"] == 60 and rescored["interval"]["end"] == end
        predictions = io.read_table(spark, profile.catalog, "predictions")
        by_version = dict(predictions.groupBy("model_version").count().collect())
        assert by_version == {champion.version: 240, newer.version: 60}
        assert predictions.where(F.col("event_time") < end).where(F.col("model_run_id") != newer.run_id).count() == 0
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous_batch)


def _worker_load_counts(spark: SparkSession, tracking_uri: str, model_uri: str) -> dict[int, int]:
    """Ask the (reused) Python workers how often they loaded the model: pid -> loads, for workers that did."""

    def probe(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from spark_jobs.transforms import scoring as worker_scoring

        for _ in batches:
            pass
        loads = worker_scoring.model_load_counts().get((tracking_uri, model_uri, "cpu"), 0)
        yield pd.DataFrame({"pid": [os.getpid()], "loads": [loads]})

    rows = spark.range(0, 8, numPartitions=8).mapInPandas(probe, "pid long, loads long").collect()
    return {r.pid: r.loads for r in rows if r.loads}


def test_batch_scoring_leaves_stream_scored_transactions_to_the_stream(spark: SparkSession) -> None:
    features = spark.createDataFrame([("t1", 1.0), ("t2", 2.0), ("t3", 3.0)], "transaction_id string, amount double")
    streamed = spark.createDataFrame([("t2", 0.9)], "transaction_id string, fraud_score double")
    kept = score.not_stream_scored(features, streamed)
    assertDataFrameEqual(kept, spark.createDataFrame([("t1", 1.0), ("t3", 3.0)], features.schema))
    assertDataFrameEqual(score.not_stream_scored(features, None), features)


def test_score_with_the_tracking_server_down_fails_fast_with_the_cause_and_writes_nothing(
        tributary_home, monkeypatch, capsys) -> None:
    """The standalone profile's tracking server ($MLFLOW_TRACKING_URI) does not answer (nothing listens on the
    port): score stops before Spark starts, the message names the server and the cause, and no predictions table is
    created."""
    from spark_jobs import tracking
    from tributary.config import load_profile

    url = closed_port_url()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setattr(tracking, "HEALTH_WAIT_S", 2.0)
    with pytest.raises(SystemExit) as stopped:
        score.main(["--profile", "standalone"])
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert f"the MLflow tracking server at {url} did not answer" in err
    assert "refused" in err.lower() and "nothing was read or written" in err
    catalog = load_profile("standalone").catalog
    assert not os.path.exists(catalog.uri("predictions").removeprefix("file://"))

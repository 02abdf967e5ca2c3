"""Test support for the ml jobs (train, promote, score): a features-shaped table and a fast per-test MLflow store.

- ``features_frame``/``features_pandas`` synthesize ``features_card``-shaped rows (``transaction_id, card_id,
  event_time, is_fraud`` + ``FEATURE_COLUMNS``) with a learnable signal: fraud rows are shifted on a few features.
- ``register_model`` trains and registers a small model as ``@challenger`` without Spark.
- ``mlflow_store`` gives each test its own MLflow store where the local profile points (SQLite under
  ``TRIBUTARY_HOME/var/mlflow``). Creating a SQLite store runs MLflow's migrations (~10 s on this machine), so the
  first use builds one empty, migrated database per session and each test gets a fresh copy of it.

Import the fixture into a test module with ``from tests.spark_jobs.ml_support import mlflow_store  # noqa: F401``.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from spark_jobs import io
from spark_jobs.tracking import configure_mlflow
from spark_jobs.train import train_and_register
from spark_jobs.transforms.card_features import FEATURE_COLUMNS
from spark_jobs.transforms.model import TrainConfig
from tributary.config import Profile

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
FEATURES_SCHEMA = T.StructType(
    [
        T.StructField("transaction_id", T.StringType()),
        T.StructField("card_id", T.StringType()),
        T.StructField("event_time", T.TimestampType()),
        T.StructField("is_fraud", T.IntegerType()),
        *(T.StructField(c, T.DoubleType()) for c in FEATURE_COLUMNS),
    ]
)
SIGNAL_COLUMNS = FEATURE_COLUMNS[:4]  # fraud shifts these


def closed_port_url() -> str:
    """An ``http://`` URL on loopback where nothing listens (a port bound, then closed): a tracking server that does
    not answer."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def features_pandas(rows: int = 400, seed: int = 7, fraud_rate: float = 0.1, prefix: str = "t") -> pd.DataFrame:
    """``rows`` features_card rows, one a minute from ``START``, ~``fraud_rate`` fraud, learnable signal."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < fraud_rate).astype("int32")
    values = rng.normal(size=(rows, len(FEATURE_COLUMNS)))
    values[:, : len(SIGNAL_COLUMNS)] += 1.5 * labels[:, None]
    frame = pd.DataFrame(
        {
            "transaction_id": [f"{prefix}{i:05d}" for i in range(rows)],
            "card_id": [f"c{i % 17:03d}" for i in range(rows)],
            "event_time": pd.date_range(START.replace(tzinfo=None), periods=rows, freq="min"),
            "is_fraud": labels,
        }
    )
    return pd.concat([frame, pd.DataFrame(values, columns=FEATURE_COLUMNS)], axis=1)


def features_frame(
    spark: SparkSession, rows: int = 400, seed: int = 7, fraud_rate: float = 0.1, prefix: str = "t"
) -> DataFrame:
    """``features_pandas`` as a Spark DataFrame in the ``features_card`` schema."""
    return spark.createDataFrame(features_pandas(rows, seed, fraud_rate, prefix), FEATURES_SCHEMA)


def register_model(profile: Profile, seed: int = 5, shuffle_labels: bool = False, rows: int = 300) -> dict:
    """Train on ``features_pandas`` (no Spark; the latest 20% held out) and register it as ``@challenger``.

    ``shuffle_labels`` trains on permuted labels: a useless model, for promotion tests.
    """
    configure_mlflow(profile)
    data = features_pandas(rows)
    cut = int(rows * 0.8)
    fit_rows, holdout = data.iloc[:cut].copy(), data.iloc[cut:]
    if shuffle_labels:
        fit_rows["is_fraud"] = fit_rows["is_fraud"].sample(frac=1, random_state=0).to_numpy()
    config = TrainConfig(seed=seed, epochs=8, hidden=(8,), batch_size=32)
    name = profile.mlflow["model_name"]
    return train_and_register(fit_rows, holdout, config, model_name=name, feature_table_version=0, holdout_fraction=0.2)


def write_features(df: DataFrame, profile: Profile) -> None:
    """Replace ``features_card`` with ``df``."""
    io.overwrite_table(df, profile.catalog, "features_card")


def result_of(output: str) -> dict:
    """The job result from the last ``TRIBUTARY_RESULT {json}`` line of captured output."""
    lines = [ln for ln in output.splitlines() if ln.startswith("TRIBUTARY_RESULT ")]
    assert lines, f"no TRIBUTARY_RESULT line in:\n{output[-2000:]}"
    return json.loads(lines[-1].removeprefix("TRIBUTARY_RESULT "))


_TEMPLATE: dict[str, Path] = {}


def _migrated_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One empty MLflow SQLite database with every migration applied (built once per test session)."""
    if "db" not in _TEMPLATE:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        directory = tmp_path_factory.mktemp("mlflow-template")
        db = directory / "mlflow.db"
        SqlAlchemyStore(f"sqlite:///{db}", (directory / "artifacts").as_uri()).engine.dispose()
        _TEMPLATE["db"] = db
    return _TEMPLATE["db"]


@pytest.fixture
def mlflow_store(tributary_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """The local profile with a fresh, empty MLflow store of its own (under this test's TRIBUTARY_HOME)."""
    from tributary.config import load_profile

    profile = load_profile("local")
    db = Path(profile.mlflow["tracking_uri"].removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_mlflow_db(tmp_path_factory), db)
    return profile

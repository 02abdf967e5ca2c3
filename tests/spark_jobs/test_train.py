"""Tests for spark_jobs.transforms.model and spark_jobs.train: determinism, metrics and what MLflow records (the time
split: transforms/test_training_data.py; the report's parts: transforms/test_model_report.py)."""

from __future__ import annotations

import json
from datetime import timedelta

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from pyspark.sql import SparkSession

from spark_jobs import train
from spark_jobs.tracking import artifact_location, configure_mlflow
from spark_jobs.transforms.card_features import FEATURE_COLUMNS
from spark_jobs.transforms.model import TrainConfig, evaluate, fit, predict_proba
from spark_jobs.transforms.model_report import PLOTS
from tests.spark_jobs.ml_support import START, features_frame, mlflow_store, result_of, write_features  # noqa: F401


# --- model: determinism and metrics -----------------------------------------------------------------------------


def _toy(seed: int = 0, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.float32)
    x = (rng.normal(size=(n, 5)) * [1, 10, 100, 1, 1] + 2.0 * y[:, None]).astype(np.float32)
    return x, y


def test_fit_is_deterministic_for_a_seed_and_differs_across_seeds() -> None:
    x, y = _toy()
    config = TrainConfig(seed=3, epochs=3, hidden=(8,), batch_size=64)
    a, b = fit(x, y, config), fit(x, y, config)
    for key, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[key]), key
    other = fit(x, y, TrainConfig(seed=4, epochs=3, hidden=(8,), batch_size=64))
    assert not torch.equal(a.state_dict()["net.0.weight"], other.state_dict()["net.0.weight"])


def test_fit_standardizes_with_training_statistics_and_learns() -> None:
    x, y = _toy()
    model = fit(x, y, TrainConfig(seed=1, epochs=15, hidden=(8,), batch_size=64))
    np.testing.assert_allclose(model.mean.numpy(), x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(model.std.numpy(), x.std(axis=0), rtol=1e-4)
    assert evaluate(y, predict_proba(model, x))["roc_auc"] > 0.85


def test_evaluate_known_values() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    metrics = evaluate(y, scores, target_precision=1.0)
    assert metrics["roc_auc"] == pytest.approx(8 / 9)
    assert metrics["pr_auc"] == pytest.approx((1 + 1 + 0.75) / 3)  # AP: precision at each positive, averaged
    assert metrics["recall_at_precision"] == pytest.approx(2 / 3)  # 0.9 and 0.8 above 0.4
    assert metrics["threshold_at_precision"] == pytest.approx(0.8)


def test_evaluate_unreachable_precision_and_single_class() -> None:
    metrics = evaluate(np.array([1, 0]), np.array([0.2, 0.9]), target_precision=0.99)  # best precision is 0.5
    assert metrics["recall_at_precision"] == 0.0
    assert metrics["threshold_at_precision"] == 0.5  # the documented fallback
    with pytest.raises(ValueError, match="both classes"):
        evaluate(np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3]))


# --- the job: MLflow logging and registration -------------------------------------------------------------------

ARGS = ["--profile", "local", "--seed", "5", "--epochs", "4", "--hidden", "8", "--holdout-fraction", "0.25"]


def test_train_logs_registers_and_is_reproducible(spark: SparkSession, mlflow_store, capsys) -> None:
    profile = mlflow_store
    write_features(features_frame(spark, rows=400), profile)
    table_version = train.io.table_version(spark, profile.catalog, "features_card")

    first = train.main(ARGS)
    assert result_of(capsys.readouterr().out) == {"job": "train", **first}
    second = train.main(ARGS)
    name = profile.mlflow["model_name"]
    assert (first["model_name"], first["version"], second["version"]) == (name, 1, 2)
    assert first["metrics"] == second["metrics"]  # same seed, same table version -> same model
    assert set(first["metrics"]) >= {"roc_auc", "pr_auc", "recall_at_precision"}
    assert first["metrics"]["roc_auc"] > 0.8, "the synthetic signal should be learnt"

    client = MlflowClient()
    assert int(client.get_model_version_by_alias(name, "challenger").version) == 2
    one, two = (mlflow.pytorch.load_model(f"models:/{name}/{v}") for v in (1, 2))
    for key, tensor in one.state_dict().items():
        assert torch.equal(tensor, two.state_dict()[key]), key
    np.testing.assert_allclose(one.mean.numpy().shape, [len(FEATURE_COLUMNS)])  # standardization travels along

    run = client.get_run(first["run_id"])
    assert {"roc_auc", "pr_auc", "recall_at_precision"} <= set(run.data.metrics)
    assert run.data.metrics["pr_auc"] == pytest.approx(first["metrics"]["pr_auc"])
    assert run.data.params["feature_table_version"] == str(table_version) == run.data.tags["feature_table_version"]
    assert (run.data.params["seed"], run.data.params["epochs"], run.data.params["hidden"]) == ("5", "4", "8")
    assert run.data.params["holdout_fraction"] == "0.25"
    plots = {a.path for a in client.list_artifacts(first["run_id"], "plots")}
    assert plots == {f"plots/{name}.png" for name in PLOTS}
    importance = mlflow.artifacts.load_dict(f"runs:/{first['run_id']}/evaluation/feature_importance.json")
    assert list(importance["importance"]) != FEATURE_COLUMNS and set(importance["importance"]) == set(FEATURE_COLUMNS)
    confusion = mlflow.artifacts.load_dict(f"runs:/{first['run_id']}/evaluation/confusion_matrix.json")
    assert confusion["tp"] + confusion["fp"] + confusion["fn"] + confusion["tn"] == int(run.data.params["holdout_rows"])
    inputs = {}
    for logged in run.inputs.dataset_inputs:
        tags = {tag.key: tag.value for tag in logged.tags}
        inputs[tags["mlflow.data.context"]] = logged.dataset
        assert tags["delta_table_version"] == str(table_version)
    assert set(inputs) == {"training", "evaluation"}
    for dataset in inputs.values():
        source = json.loads(dataset.source)
        assert dataset.name == "features_card" and dataset.source_type == "delta_table"
        assert source.get("delta_table_version", 0) == table_version  # MLflow leaves a version 0 out
        assert source["path"] == profile.catalog.uri("features_card")
    assert json.loads(inputs["training"].profile)["num_rows"] + json.loads(inputs["evaluation"].profile)["num_rows"] \
        == int(run.data.params["train_rows"]) + int(run.data.params["holdout_rows"])

    version = client.get_model_version(name, "1")
    assert version.run_id == first["run_id"]
    assert version.tags["feature_table_version"] == str(table_version)
    assert version.tags["feature_columns"].split(",") == FEATURE_COLUMNS
    assert float(version.tags["decision_threshold"]) == pytest.approx(first["metrics"]["threshold_at_precision"])
    assert f"`features_card` version {table_version}" in version.description  # the model card
    assert f"PR-AUC {first['metrics']['pr_auc']:.3f}" in version.description
    info = mlflow.models.get_model_info(first["model_uri"])
    assert info.signature.inputs.inputs[0].shape == (-1, len(FEATURE_COLUMNS))
    assert info.saved_input_example_info is not None
    assert "pytorch" in info.flavors


def test_train_window_days_ends_at_the_window_end_or_the_newest_row(spark: SparkSession, mlflow_store) -> None:
    """fraud_pipeline's window: --window-days N before --window-end (the run's end), or before the newest row."""
    write_features(features_frame(spark, rows=400), mlflow_store)  # one row a minute from START
    end = START + timedelta(minutes=300)
    windowed = train.main([*ARGS, f"--window-end={end.isoformat()}", "--window-days=1"])
    assert windowed["window"] == {"start": (end - timedelta(days=1)).isoformat(), "end": end.isoformat()}
    params = MlflowClient().get_run(windowed["run_id"]).data.params
    assert int(params["train_rows"]) + int(params["holdout_rows"]) == 300
    assert params["window_end"] == end.isoformat()
    newest = train.main([*ARGS, "--window-end=", "--window-days=1"])  # the newest row is START + 399 min
    assert newest["window"]["end"] == (START + timedelta(minutes=399, microseconds=1)).isoformat()
    params = MlflowClient().get_run(newest["run_id"]).data.params
    assert int(params["train_rows"]) + int(params["holdout_rows"]) == 400


@pytest.mark.parametrize("argv, message", [
    (["--window-days=0"], "not a whole number of days, 1 or more: '0'"),
    (["--window-days=1", "--window-start=2026-11-01"], "--window-days and --window-start both set"),
])
def test_train_window_flags_fail_fast(argv, message, tributary_home, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        train.main(["--profile", "local", *argv])
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_train_fails_clearly_without_a_features_table(tributary_home, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        train.main(["--profile", "local", "--epochs", "1"])
    assert stopped.value.code == 2
    assert "run spark_jobs.features first" in capsys.readouterr().err


def test_hidden_flag_parses_widths_and_refuses_nonsense() -> None:
    assert train.layer_widths("32,16") == (32, 16)
    for bad in ("", "a,b", "8,0"):
        with pytest.raises(Exception, match="positive integers"):
            train.layer_widths(bad)


def test_configure_mlflow_creates_the_experiment_once(mlflow_store) -> None:
    experiment_id = configure_mlflow(mlflow_store)
    assert configure_mlflow(mlflow_store) == experiment_id
    experiment = mlflow.get_experiment(experiment_id)
    assert experiment.name == mlflow_store.mlflow["experiment"]
    assert experiment.artifact_location == artifact_location(mlflow_store.mlflow["artifact_root"])
    assert experiment.artifact_location.startswith("file:///")
    assert mlflow.get_tracking_uri() == mlflow_store.mlflow["tracking_uri"]


def test_artifact_location_keeps_uris_and_turns_paths_into_file_uris(tmp_path) -> None:
    assert artifact_location("s3://bucket/mlflow") == "s3://bucket/mlflow"
    assert artifact_location("file:///srv/mlflow") == "file:///srv/mlflow"
    assert artifact_location(str(tmp_path / "a")) == (tmp_path / "a").as_uri()

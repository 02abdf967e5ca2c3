"""Train the fraud model on ``features_card`` and register it in MLflow as the ``@challenger``.

Steps: pin the current Delta version of ``features_card`` (recorded as ``feature_table_version``), keep the
training window (``--window-start``/``--window-end`` on ``event_time``, or ``--window-days N``: the N days before
``--window-end``, or before the newest feature row; logged as params; default: the whole table; training has its own
window, not the pipeline run's data interval that features and score work on), split it by
time (train on the earlier transactions, hold out the latest ``--holdout-fraction`` by ``event_time``), fit a
``spark_jobs.transforms.model.FraudMLP`` on the raw ``FEATURE_COLUMNS`` (class imbalance via ``pos_weight``), evaluate on the
holdout (``roc_auc``, ``pr_auc``, ``recall_at_precision``), and log to the profile's MLflow experiment: params,
metrics, both splits as dataset inputs (``training``, ``evaluation``) whose source is the feature table's Delta path
and version, the holdout's plots (``plots/``: ROC and PR curves, calibration, score distribution by class, confusion
matrix at the decision threshold, permutation feature importance; ``spark_jobs.transforms.model_report``), the
importance and confusion counts as JSON (``evaluation/``), and the model (``pt2``, with signature and input
example), registered as a new version of ``profile.mlflow["model_name"]`` whose description is a short model card
and that the alias ``challenger`` then points at. ``spark_jobs.promote`` decides whether it becomes ``@champion``.

The same ``--seed`` on the same table version gives bit-identical weights and metrics.

Scaling limit: both splits are collected to the driver as pandas (``toPandas``) and trained in one process; fine
for up to a few million rows x 21 features (~100 bytes a row). Beyond that, sample the training split or move to a
distributed trainer (e.g. TorchDistributor) over a Delta/Parquet reader.

Run by hand (after ``spark_jobs.features``)::

    uv run python -m spark_jobs.train --profile local --seed 42 --epochs 20
    spark-submit spark_jobs/train.py --profile local --hidden 64,32 --holdout-fraction 0.2
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Sequence

from spark_jobs import io, lineage
from spark_jobs.cli import emit_result, fail, job_parser, optional, parse_job_args
from spark_jobs.interval import Interval, add_interval_args, interval_from_args, positive_days
from spark_jobs.session import build_session
from spark_jobs.tracking import CHALLENGER_ALIAS, TrackingUnavailable, configure_mlflow
from spark_jobs.transforms.card_features import FEATURE_COLUMNS
from spark_jobs.transforms.model import TrainConfig, evaluate, fit, predict_proba
from spark_jobs.transforms.model_report import confusion_at, model_card, permutation_importance, report_figures
from spark_jobs.transforms.training_data import LABEL, collect_split, time_split, to_xy
from tributary.registry import get_job

if TYPE_CHECKING:
    import pandas as pd

JOB = get_job("train")  # its datasets by role (conf/jobs.yaml)
MODEL_ARTIFACT = "model"
PLOTS_DIR = "plots"  # plots/<name>.png for each of model_report.PLOTS
DEFAULT_HOLDOUT_FRACTION = 0.2
DEFAULT_TARGET_PRECISION = 0.8
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def pip_requirements() -> list[str]:
    """What the logged model needs to load (pinned; skips MLflow's slow dependency inference)."""
    import mlflow
    import numpy
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}", f"numpy=={numpy.__version__}"]


def train_and_register(
    train: "pd.DataFrame",
    holdout: "pd.DataFrame",
    config: TrainConfig,
    *,
    model_name: str,
    feature_table_version: int,
    holdout_fraction: float,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    window: Interval = Interval(),
    feature_table_uri: str | None = None,
) -> dict[str, Any]:
    """Fit, evaluate, log and register one model in the active MLflow experiment; point ``@challenger`` at it.

    ``feature_table_uri`` is where the feature table's Delta version lives (the dataset inputs' source)."""
    import mlflow
    import mlflow.pytorch
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.models import infer_signature

    x_train, y_train = to_xy(train)
    x_hold, y_hold = to_xy(holdout)
    if len(x_train) == 0 or len(x_hold) < 2:
        raise ValueError(f"time split left {len(x_train)} training and {len(x_hold)} holdout rows; need more data")
    model = fit(x_train, y_train, config)
    scores = predict_proba(model, x_hold)
    metrics = evaluate(y_hold, scores, target_precision)
    threshold = metrics["threshold_at_precision"]
    importance = permutation_importance(lambda x: predict_proba(model, x), x_hold, y_hold, FEATURE_COLUMNS,
                                        seed=config.seed)
    confusion = confusion_at(y_hold, scores, threshold)
    feature_table = JOB.input("features")
    source = DeltaDatasetSource(path=feature_table_uri, delta_table_name=None if feature_table_uri else feature_table,
                                delta_table_version=feature_table_version)
    version_tags = {
        "feature_table": feature_table,
        "feature_table_version": str(feature_table_version),
        "feature_columns": ",".join(FEATURE_COLUMNS),
        "decision_threshold": repr(metrics["threshold_at_precision"]),
        "target_precision": str(target_precision),
    }
    with mlflow.start_run(run_name=f"train-seed{config.seed}") as run:
        mlflow.log_params(
            {
                **config.as_params(),
                "holdout_fraction": holdout_fraction,
                "target_precision": target_precision,
                "feature_table_version": feature_table_version,
                "feature_columns": ",".join(FEATURE_COLUMNS),
                "train_rows": len(x_train),
                "holdout_rows": len(x_hold),
                "train_positive_rate": float(y_train.mean()),
                "holdout_start": str(holdout["event_time"].min()),
                **{f"window_{bound}": at for bound, at in window.as_dict().items() if at},
            }
        )
        mlflow.set_tags({"feature_table": feature_table, "feature_table_version": str(feature_table_version)})
        for split, context in ((train, "training"), (holdout, "evaluation")):
            dataset = mlflow.data.from_pandas(split, source=source, targets=LABEL, name=feature_table)
            # The version as a tag too: DeltaDatasetSource leaves a version 0 out of its JSON.
            mlflow.log_input(dataset, context=context, tags={"delta_table_version": str(feature_table_version)})
        for name, figure in report_figures(y_hold, scores, threshold, importance, f"seed {config.seed}").items():
            mlflow.log_figure(figure, f"{PLOTS_DIR}/{name}.png")
        mlflow.log_dict({"metric": "average precision drop when shuffled", "importance": importance},
                        "evaluation/feature_importance.json")
        mlflow.log_dict({"threshold": threshold, **confusion}, "evaluation/confusion_matrix.json")
        example = x_hold[:5]
        info = mlflow.pytorch.log_model(
            model,
            name=MODEL_ARTIFACT,
            serialization_format="pt2",  # torch.export graph: safe to load (no pickle), needs the example
            input_example=example,
            signature=infer_signature(example, predict_proba(model, example)),
            registered_model_name=model_name,
            pip_requirements=pip_requirements(),
            tags=version_tags,  # on the LoggedModel and on the registered version
        )
        mlflow.log_metrics(metrics, model_id=info.model_id)  # on the run and on the LoggedModel
    version = int(info.registered_model_version)
    card = model_card(model_name=model_name, feature_table=feature_table, feature_table_version=feature_table_version,
                      window=window.as_dict(), train_rows=len(x_train), holdout_rows=len(x_hold),
                      holdout_fraud_rate=float(y_hold.mean()), metrics=metrics, target_precision=target_precision,
                      confusion=confusion, importance=importance, hidden=config.hidden, seed=config.seed)
    client = mlflow.MlflowClient()
    client.update_model_version(model_name, str(version), description=card)
    client.set_registered_model_alias(model_name, CHALLENGER_ALIAS, str(version))
    return {
        "model_name": model_name,
        "version": version,
        "run_id": run.info.run_id,
        "model_uri": info.model_uri,
        "feature_table_version": feature_table_version,
        "window": window.as_dict(),
        "metrics": metrics,
    }


def layer_widths(text: str) -> tuple[int, ...]:
    """``--hidden`` value: comma-separated positive layer widths."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"--hidden needs comma-separated positive integers, got {text!r}")
    return widths


def newest_event_time(table) -> datetime | None:
    """The newest ``event_time`` in ``table`` (UTC), None when it is empty; read as epoch microseconds, so the
    driver's own time zone plays no part."""
    from pyspark.sql import functions as F

    micros = table.agg(F.unix_micros(F.max("event_time"))).first()[0]
    return None if micros is None else EPOCH + timedelta(microseconds=micros)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train on a pinned version of ``features_card``, register the model as ``@challenger``, emit the result."""
    features = JOB.input("features")
    parser = job_parser(__doc__)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--hidden", type=layer_widths, default=TrainConfig.hidden, help="widths, e.g. 32,16 (default)")
    parser.add_argument("--learning-rate", type=float, default=TrainConfig.learning_rate)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--holdout-fraction", type=float, default=DEFAULT_HOLDOUT_FRACTION)
    parser.add_argument("--target-precision", type=float, default=DEFAULT_TARGET_PRECISION)
    add_interval_args(parser, "feature rows to train and evaluate on", prefix="window-")
    parser.add_argument("--window-days", type=optional(positive_days), default=None,
                        help="train on the N days before --window-end (or before the newest feature row); "
                             "not with --window-start (default: no limit)")
    args, profile = parse_job_args(parser, argv, JOB)
    window = interval_from_args(parser, args, prefix="window-")
    if args.window_days is not None and window.start is not None:
        parser.error("--window-days and --window-start both set the window's start; pass one of them")
    config = TrainConfig(args.seed, args.epochs, args.hidden, args.learning_rate, args.batch_size)
    try:  # before Spark starts: an MLflow that is down fails here, with nothing read or written
        configure_mlflow(profile)
    except TrackingUnavailable as exc:
        fail(str(exc))
    spark = build_session(profile, "tributary-train")
    if not io.table_exists(spark, profile.catalog, features):
        fail(f"no {features} table at {profile.catalog.uri(features)}; run spark_jobs.features first",
             retry=False)
    version = io.table_version(spark, profile.catalog, features)
    table = io.read_table(spark, profile.catalog, features, version)
    if args.window_days is not None:
        window = window.last_days(args.window_days, None if window.end else newest_event_time(table))
    rows = window.select(table)
    fit_rows, holdout = time_split(rows, args.holdout_fraction)
    options = {"model_name": profile.mlflow["model_name"], "feature_table_version": version, "window": window,
               "feature_table_uri": profile.catalog.uri(features),
               "holdout_fraction": args.holdout_fraction, "target_precision": args.target_precision}
    try:
        result = train_and_register(collect_split(fit_rows), collect_split(holdout), config, **options)
    except ValueError as exc:
        fail(f"cannot train on {features} version {version}: {exc}", retry=False)
    lineage.emit(spark, "train", [lineage.table(profile.catalog, features, version)],
                 [lineage.model(result["model_name"], result["version"], output=True)])
    emit_result("train", result)
    return result


if __name__ == "__main__":
    main()

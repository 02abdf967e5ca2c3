"""Batch scoring: ``features_card`` -> ``predictions`` with the MLflow ``@champion`` model.

The champion's version is resolved once (fails with exit code 1 and a how-to-fix message when there is none),
the feature rows (only those with ``--start <= event_time < --end`` when an interval is given: fraud_pipeline passes
each run's data interval; all of them when ``predictions`` does not exist yet, as for features) are scored with
``spark_jobs.transforms.scoring.score_features`` (mapInArrow, model loaded once per Python worker, GPU when Spark assigns
one), and the result is MERGEd into ``predictions`` on ``transaction_id``, updating rows that exist. So re-running
leaves the row count unchanged, and re-scoring after a new promotion replaces the model version on every row.

Each transaction is scored by the path that ingested it: transactions already in ``stream_predictions`` (the stream
merged them into bronze, so they reach ``features_card``) are left to the stream and not batch-scored again. Hence
re-running the whole pipeline after the stream leaves ``predictions`` unchanged.

Run by hand (after train + promote)::

    uv run python -m spark_jobs.score --profile local
    uv run python -m spark_jobs.score --profile local --start 2026-11-01T00:00:00Z --end 2026-11-02T00:00:00Z
    spark-submit spark_jobs/score.py --profile local
"""

from __future__ import annotations

from typing import Any, Sequence

from pyspark.sql import DataFrame

from spark_jobs import io, lineage
from spark_jobs.cli import emit_result, fail, job_parser, parse_job_args
from spark_jobs.interval import Interval, add_interval_args, interval_from_args
from spark_jobs.session import build_session
from spark_jobs.tracking import TrackingUnavailable
from spark_jobs.transforms.scoring import NoChampionError, resolve_champion, score_features, scoring_devices
from tributary.registry import get_job


def not_stream_scored(features: DataFrame, stream_scored: DataFrame | None) -> DataFrame:
    """Feature rows whose ``transaction_id`` the stream has not scored (all rows when there is no stream output)."""
    if stream_scored is None:
        return features
    return features.join(stream_scored.select("transaction_id"), "transaction_id", "left_anti")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Score ``features_card`` (or one interval of it) with the champion and MERGE into ``predictions``."""
    job = get_job("score")
    features_table, streamed_table = job.input("features"), job.input("streamed")
    predictions = job.output("scores")
    parser = job_parser(__doc__)
    add_interval_args(parser, "feature rows")
    args, profile = parse_job_args(parser, argv, job)
    interval = interval_from_args(parser, args)
    try:  # before Spark starts and before any write: an MLflow that is down fails here, with nothing written
        champion = resolve_champion(profile)
    except (NoChampionError, TrackingUnavailable) as exc:
        fail(str(exc), retry=isinstance(exc, TrackingUnavailable))
    spark = build_session(profile, "tributary-score")
    catalog = profile.catalog
    if not io.table_exists(spark, catalog, features_table):
        fail(f"no {features_table} table at {catalog.uri(features_table)}; run spark_jobs.features first",
             retry=False)
    if not io.table_exists(spark, catalog, predictions):
        interval = Interval()  # the first run scores everything
    pinned, features_version = io.read_current(spark, catalog, features_table)  # the version the lineage names
    features = interval.select(pinned)
    streamed = io.read_table(spark, catalog, streamed_table) if io.table_exists(spark, catalog, streamed_table) else None
    features = not_stream_scored(features, streamed)
    scored = score_features(features, champion, profile.mlflow["tracking_uri"])
    io.merge_table(spark, scored, catalog, predictions, update_existing=True)
    devices = scoring_devices(spark)
    if devices["device"] == "cpu":
        why = ("their GPU discovery reported " + ", ".join(f"executor {e}: {a}" for e, a in devices["executor_gpus"].items())
               if any(devices["executor_gpus"].values()) else "no executor reported a GPU")
        print(f"score: tasks were handed no GPU (spark.task.resource.gpu.amount unset; {why}): scored on the CPU",
              flush=True)
    else:
        print(f"score: each task was handed {devices['task_gpu_amount']} GPU(s) of {devices['executor_gpus']}: "
              "scored on CUDA", flush=True)
    result = {
        "model_name": champion.name,
        "model_version": champion.version,
        "model_run_id": champion.run_id,
        "interval": interval.as_dict(),
        "rows_written": io.rows_written(spark, catalog, predictions),
        "predictions_rows": io.read_table(spark, catalog, predictions).count(),
        "predictions_version": io.table_version(spark, catalog, predictions),
        "device": devices["device"],
        "executor_gpus": devices["executor_gpus"],
    }
    lineage.emit(spark, "score", [lineage.table(catalog, features_table, features_version),
                                  lineage.model(champion.name, champion.version)],
                 [lineage.table(catalog, predictions, result["predictions_version"], output=True)])
    emit_result("score", result)
    return result


if __name__ == "__main__":
    main()

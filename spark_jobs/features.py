"""The ``features`` job: ``bronze_transactions`` -> ``features_card``, whole or one data interval's slice.

The features and their point-in-time rules are spark_jobs/transforms/card_features.py. With ``--start``/``--end``
(fraud_pipeline passes each run's data interval) it computes only that interval's rows, reading bronze back
``LOOKBACK_SECONDS`` before its start, and MERGEs the slice; without them, or when ``features_card`` does not
exist yet, it recomputes everything and overwrites (docs/adr/0009-incremental-intervals.md).

Run by hand (reads ``bronze_transactions``; without an interval it fully recomputes and overwrites
``features_card``; re-running on the same bronze version gives the same table)::

    uv run python -m spark_jobs.features --profile local
    uv run python -m spark_jobs.features --profile local --start 2026-11-03 --end 2026-11-04
    spark-submit spark_jobs/features.py --profile local
"""

from __future__ import annotations

from typing import Any, Sequence

from spark_jobs import io, lineage
from spark_jobs.cli import emit_result, fail, job_parser, parse_job_args
from spark_jobs.interval import add_interval_args, interval_from_args
from spark_jobs.session import build_session
from spark_jobs.transforms.card_features import FEATURE_COLUMNS, compute_card_features, features_for_interval
from tributary.registry import get_job


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Compute ``features_card`` (whole, or one interval's slice) from a pinned version of ``bronze_transactions``;
    emit and return the result."""
    job = get_job("features")
    source, target = job.input("bronze"), job.output("features")
    parser = job_parser(__doc__)
    add_interval_args(parser, "bronze rows")
    args, profile = parse_job_args(parser, argv, job)
    interval = interval_from_args(parser, args)
    spark = build_session(profile, "tributary-features")
    catalog = profile.catalog
    if not io.table_exists(spark, catalog, source):
        fail(f"no {source} table at {catalog.uri(source)}; run spark_jobs.ingest first", retry=False)
    bronze_version = io.table_version(spark, catalog, source)
    bronze = io.read_table(spark, catalog, source, version=bronze_version)
    if interval.is_everything or not io.table_exists(spark, catalog, target):
        mode = "full"
        io.overwrite_table(compute_card_features(bronze), catalog, target)
    else:
        mode = "interval"
        io.merge_table(spark, features_for_interval(bronze, interval), catalog, target, update_existing=True)
    features_version = io.table_version(spark, catalog, target)
    lineage.emit(spark, "features", [lineage.table(catalog, source, bronze_version)],
                 [lineage.table(catalog, target, features_version, output=True)])
    result = {
        "profile": profile.name,
        "mode": mode,
        "interval": interval.as_dict(),
        "bronze_version": bronze_version,
        "features_version": features_version,
        "rows_written": io.rows_written(spark, catalog, target),
        "feature_rows": io.read_table(spark, catalog, target, version=features_version).count(),
        "feature_columns": FEATURE_COLUMNS,
    }
    emit_result("features", result)
    return result


if __name__ == "__main__":
    main()

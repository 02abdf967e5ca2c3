"""Run summary: what the pipeline produced, read back from the tables and the model registry.

    python -m spark_jobs.summary --profile local --out var/run-summary.json [--started-at EPOCH]

The reconciliation figures come from the newest row of the ``ingest_audit`` table (what the last ingest run
reported); table figures are counted from the Delta tables (``predictions_unattributed``: prediction rows missing
their model version or run id, 0 when every row says which model scored it); the champion comes from MLflow.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

from spark_jobs.cli import emit_result, job_parser, parse_job_args

RECONCILIATION_KEYS = ("rows_landed", "rows_ingested", "rows_quarantined", "rows_duplicate")


def build_summary(
    profile_name: str,
    last_ingest: Mapping[str, Any],
    table_counts: Mapping[str, int],
    champion: Mapping[str, Any] | None,
    duration_s: float | None,
) -> dict[str, Any]:
    """Assemble the summary document; ``reconciled`` says whether landed = ingested + quarantined + duplicate."""
    summary: dict[str, Any] = {"profile": profile_name}
    summary.update({k: int(last_ingest.get(k, 0)) for k in RECONCILIATION_KEYS})
    summary["reconciled"] = summary["rows_landed"] == (
        summary["rows_ingested"] + summary["rows_quarantined"] + summary["rows_duplicate"]
    )
    summary["quarantine_reasons"] = dict(last_ingest.get("quarantine_reasons") or {})
    summary["bronze_rows"] = table_counts.get("bronze_transactions", 0)
    summary["quarantine_rows"] = table_counts.get("quarantine_transactions", 0)
    summary["feature_rows"] = table_counts.get("features_card", 0)
    summary["predictions_rows"] = table_counts.get("predictions", 0)
    summary["stream_rows"] = table_counts.get("stream_predictions", 0)
    summary["predictions_unattributed"] = table_counts.get("predictions_unattributed", 0)
    summary["model_name"] = champion["name"] if champion else None
    summary["champion_version"] = champion["version"] if champion else None
    summary["champion_run_id"] = champion["run_id"] if champion else None
    summary["metrics"] = dict(champion["metrics"]) if champion else {}
    summary["duration_s"] = round(duration_s, 1) if duration_s is not None else None
    return summary


def _champion(profile) -> dict[str, Any] | None:
    from mlflow.tracking import MlflowClient

    from spark_jobs.tracking import configure_mlflow
    from spark_jobs.transforms.scoring import NoChampionError, resolve_champion

    configure_mlflow(profile)
    try:
        champ = resolve_champion(profile)
    except NoChampionError:
        return None
    metrics = MlflowClient().get_run(champ.run_id).data.metrics
    return {"name": champ.name, "version": champ.version, "run_id": champ.run_id, "metrics": metrics}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = job_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON summary")
    parser.add_argument("--started-at", type=float, help="epoch seconds the run started (for duration_s)")
    args, profile = parse_job_args(parser, argv)
    from spark_jobs import io
    from spark_jobs.session import build_session

    spark = build_session(profile, "tributary-summary")
    names = ["bronze_transactions", "quarantine_transactions", "features_card", "predictions", "stream_predictions"]
    counts = {n: io.count_rows(spark, profile.catalog, n) for n in names}
    if counts["predictions"]:
        predictions = io.read_table(spark, profile.catalog, "predictions")
        counts["predictions_unattributed"] = predictions.where("model_version IS NULL OR model_run_id IS NULL").count()
    last_ingest: dict[str, Any] = {}
    if io.table_exists(spark, profile.catalog, "ingest_audit"):
        rows = io.read_table(spark, profile.catalog, "ingest_audit").orderBy("run_at", ascending=False).limit(1).collect()
        last_ingest = rows[0].asDict() if rows else {}
    duration = time.time() - args.started_at if args.started_at else None
    summary = build_summary(profile.name, last_ingest, counts, _champion(profile), duration)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    emit_result("summary", summary)
    return summary


if __name__ == "__main__":
    main()

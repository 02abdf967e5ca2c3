"""Ingest: landed JSON lines -> bronze Delta table + quarantine Delta table, reconciled and idempotent.

Run by hand::

    python -m spark_jobs.ingest --profile local                               # everything under landing_batch
    python -m spark_jobs.ingest --batch-id 2026-11-01-seed42 --as-of 2026-11-21T00:00:00Z

Each landed line ends up in exactly one place (``validation.validate_lines``, then ``bronze.plan_ingest``):

- **ingested**: valid, first of its ``transaction_id`` in the run, and not yet in bronze -> MERGEd into
  ``bronze_transactions`` on ``transaction_id``;
- **quarantined**: invalid -> MERGEd into ``quarantine_transactions`` on ``quarantine_id`` with its reason and
  source file;
- **duplicate**: a repeat of an id seen earlier in the run, or an id already in bronze -> dropped.

The job checks ``landed = ingested + quarantined + duplicates`` before writing and fails if it does not hold,
logs it, appends it to ``ingest_audit``, and prints it as the ``TRIBUTARY_RESULT`` line. Re-running the same
input inserts nothing: ``ingested = 0``, ``duplicates = landed - quarantined``, and neither Delta table gets a
new version (only the audit log grows by one row per run).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

from pyspark.sql import DataFrame

from spark_jobs.interval import utc_datetime
from spark_jobs.transforms.bronze import ReconciliationError, new_quarantine, outcome_counts, plan_ingest, reconcile
from spark_jobs.transforms.schema import INGEST_AUDIT_SCHEMA
from spark_jobs.transforms.validation import utc, validate_lines
from tributary.registry import get_job

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from tributary.config import Catalog

log = logging.getLogger(__name__)

JOB = get_job("ingest")  # its datasets by role (conf/jobs.yaml)
LANDING = JOB.input("landing")
BRONZE, QUARANTINE, AUDIT = JOB.output("bronze"), JOB.output("quarantine"), JOB.output("audit")


def _existing(spark: "SparkSession", catalog: "Catalog", name: str, key: str) -> tuple[DataFrame, int | None]:
    """The keys of ``name`` at its current version (pinned, so later writes do not change them), and that version."""
    from spark_jobs.io import read_current

    current = read_current(spark, catalog, name)
    if current is None:
        return spark.createDataFrame([], f"{key} string"), None
    table, version = current
    return table.select(key), version


def run_ingest(spark: "SparkSession", catalog: "Catalog", batch_id: str | None, as_of: datetime) -> dict[str, Any]:
    """Read the landing zone, plan, reconcile, then MERGE bronze and quarantine and append the audit row."""
    from spark_jobs import lineage
    from spark_jobs.io import append_table, merge_table, read_landing_lines, table_version

    lines = read_landing_lines(spark, catalog, LANDING, batch_id or None)
    bronze_ids, bronze_version = _existing(spark, catalog, BRONZE, "transaction_id")
    quarantine_ids, quarantine_version = _existing(spark, catalog, QUARANTINE, "quarantine_id")
    valid, quarantine = (df.persist() for df in validate_lines(lines, as_of))  # parsed once, used by every count
    written = []  # lineage: the tables this run gave a new version
    try:
        plan = plan_ingest(valid, quarantine, bronze_ids)
        to_quarantine = new_quarantine(plan.quarantine, quarantine_ids)
        counts = reconcile({r["outcome"]: r["count"] for r in outcome_counts(lines, plan, to_quarantine).collect()})
        log.info("reconciliation: landed %(rows_landed)d = ingested %(rows_ingested)d + quarantined "
                 "%(rows_quarantined)d + duplicates %(rows_duplicate)d", counts)
        if counts["rows_ingested"] or bronze_version is None:  # nothing new: no empty commit, the version stays
            merge_table(spark, plan.new, catalog, BRONZE)
            bronze_version = table_version(spark, catalog, BRONZE)
            written.append(lineage.table(catalog, BRONZE, bronze_version, output=True))
        if counts["rows_quarantined_new"] or quarantine_version is None:
            merge_table(spark, to_quarantine, catalog, QUARANTINE)
            quarantine_version = table_version(spark, catalog, QUARANTINE)
            written.append(lineage.table(catalog, QUARANTINE, quarantine_version, output=True))
        landed = [r["source_file"] for r in valid.select("source_file").union(quarantine.select("source_file"))
                  .distinct().collect()]
    finally:
        valid.unpersist()
        quarantine.unpersist()
    result = {"batch_id": batch_id or None, "as_of": utc(as_of).isoformat(), **counts,
              "bronze_version": bronze_version, "quarantine_version": quarantine_version}
    append_table(audit_frame(spark, result, datetime.now(timezone.utc)), catalog, AUDIT)
    lineage.emit(spark, "ingest", lineage.files(landed), [*written, lineage.table(catalog, AUDIT, None, output=True)])
    return result


def audit_frame(spark: "SparkSession", result: dict[str, Any], run_at: datetime) -> DataFrame:
    """One ``INGEST_AUDIT_SCHEMA`` row for an ingest ``result``."""
    row = {f.name: result.get(f.name) for f in INGEST_AUDIT_SCHEMA.fields}
    row.update(run_at=utc(run_at), as_of=datetime.fromisoformat(result["as_of"]))
    return spark.createDataFrame([row], INGEST_AUDIT_SCHEMA)


def _as_of(text: str) -> datetime:
    return utc_datetime(text) if text.strip() else datetime.now(timezone.utc)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Ingest ``landing_batch`` (or one ``--batch-id`` folder of it) into bronze and quarantine."""
    from pyspark.errors import AnalysisException

    from spark_jobs.cli import batch_id_arg, emit_result, fail, job_parser, parse_job_args
    from spark_jobs.session import build_session

    parser = job_parser(__doc__)
    parser.add_argument("--batch-id", type=batch_id_arg, default="",
                        help="landing_batch sub-folder to ingest (default: all)")
    parser.add_argument("--as-of", type=_as_of, default="", help="ISO timestamp for the future check (default: now)")
    args, profile = parse_job_args(parser, argv, JOB)
    spark = build_session(profile, "tributary-ingest")
    try:
        result = run_ingest(spark, profile.catalog, args.batch_id, args.as_of)
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" not in str(exc):
            raise
        # Retried: a batch may land late (tests/cluster lands one after the first try failed).
        fail(f"nothing landed at {profile.catalog.uri(LANDING)}/{args.batch_id}; run spark_jobs.generate first")
    except ReconciliationError as exc:
        fail(str(exc), retry=False)
    emit_result("ingest", result)
    return result


if __name__ == "__main__":
    main()

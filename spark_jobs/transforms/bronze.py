"""Which validated lines enter bronze, and the books that prove no line was lost.

Pure transforms shared by the batch ingest (``spark_jobs.ingest``) and the stream (``spark_jobs.stream``):
``plan_ingest`` routes the output of ``validation.validate_lines`` against the ids already in bronze (new rows,
quarantine, duplicates), ``outcome_counts`` counts every outcome in one pass, and ``reconcile`` checks
``landed = ingested + quarantined + duplicates``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark_jobs.transforms.schema import QUARANTINE_SCHEMA
from spark_jobs.transforms.validation import conform, deduplicate


class ReconciliationError(ValueError):
    """The landed rows do not add up to ingested + quarantined + duplicates."""


@dataclass(frozen=True)
class IngestPlan:
    """Where each landed line goes: new bronze rows, quarantine rows, dropped duplicates."""

    new: DataFrame
    quarantine: DataFrame
    duplicates: DataFrame


def plan_ingest(valid: DataFrame, quarantine: DataFrame, existing_ids: DataFrame) -> IngestPlan:
    """Route the output of ``validate_lines`` against the ids already in bronze (``existing_ids``, one column
    ``transaction_id``).

    ``new`` holds the rows to insert (``BRONZE_SCHEMA``); ``quarantine`` every invalid row (``QUARANTINE_SCHEMA``);
    ``duplicates`` the valid rows dropped as repeats within the run or as ids already in bronze.
    """
    unique, repeats = deduplicate(valid)
    new = unique.join(existing_ids, "transaction_id", "left_anti")
    present = unique.join(existing_ids, "transaction_id", "left_semi")
    return IngestPlan(new=conform(new), quarantine=quarantine, duplicates=repeats.unionByName(present))


def new_quarantine(quarantine: DataFrame, existing_quarantine_ids: DataFrame) -> DataFrame:
    """The quarantine rows whose ``quarantine_id`` is not in ``existing_quarantine_ids`` yet."""
    return conform(quarantine.join(existing_quarantine_ids, "quarantine_id", "left_anti"), QUARANTINE_SCHEMA)


def outcome_counts(lines: DataFrame, plan: IngestPlan, quarantine_new: DataFrame) -> DataFrame:
    """Row counts per outcome in one pass: ``landed``, ``ingested``, ``duplicate``, ``quarantined_new`` and
    ``quarantined:<reason>``; columns ``outcome``, ``count``."""
    labelled = [
        lines.select(F.lit("landed").alias("outcome")),
        plan.new.select(F.lit("ingested").alias("outcome")),
        plan.duplicates.select(F.lit("duplicate").alias("outcome")),
        plan.quarantine.select(F.concat(F.lit("quarantined:"), "reason").alias("outcome")),
        quarantine_new.select(F.lit("quarantined_new").alias("outcome")),
    ]
    return reduce(DataFrame.unionByName, labelled).groupBy("outcome").count()


def reconcile(outcomes: dict[str, int]) -> dict[str, Any]:
    """Reconciliation from ``outcome_counts`` rows; raises ``ReconciliationError`` unless
    landed = ingested + quarantined + duplicates."""
    reasons = {k.split(":", 1)[1]: n for k, n in sorted(outcomes.items()) if k.startswith("quarantined:")}
    counts = {
        "rows_landed": outcomes.get("landed", 0),
        "rows_ingested": outcomes.get("ingested", 0),
        "rows_quarantined": sum(reasons.values()),
        "rows_duplicate": outcomes.get("duplicate", 0),
    }
    if counts["rows_landed"] != counts["rows_ingested"] + counts["rows_quarantined"] + counts["rows_duplicate"]:
        raise ReconciliationError(
            "reconciliation failed: landed {rows_landed} != ingested {rows_ingested} + quarantined "
            "{rows_quarantined} + duplicates {rows_duplicate}".format(**counts)
        )
    return {**counts, "rows_quarantined_new": outcomes.get("quarantined_new", 0), "quarantine_reasons": reasons}

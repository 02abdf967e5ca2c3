"""Tests for spark_jobs.transforms.bronze: routing validated lines into bronze, quarantine and duplicates, and the books."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from pyspark.sql import Row
from pyspark.testing import assertDataFrameEqual

from spark_jobs.transforms import bronze
from spark_jobs.transforms.validation import validate_lines

GOOD = {"transaction_id": "t1", "card_id": "c1", "merchant_id": "m1", "merchant_category": "grocery", "amount": 12.5,
        "currency": "EUR", "event_time": "2026-11-01T12:34:56Z", "country": "DE", "lat": 52.52, "lon": 13.405,
        "channel": "pos", "is_fraud": 0}


def test_plan_ingest_splits_new_quarantine_and_duplicates(spark):
    lines = spark.createDataFrame(
        [(json.dumps({**GOOD, "transaction_id": i}), "f") for i in ("old", "new", "new")] + [("{", "f")],
        "value string, source_file string",
    )
    existing = spark.createDataFrame([("old",), ("other",)], "transaction_id string")
    plan = bronze.plan_ingest(*validate_lines(lines, datetime(2026, 11, 21, tzinfo=timezone.utc)), existing)
    assert [r["transaction_id"] for r in plan.new.collect()] == ["new"]
    assert sorted(r["transaction_id"] for r in plan.duplicates.collect()) == ["new", "old"]
    assert [r["reason"] for r in plan.quarantine.collect()] == ["malformed_json"]

    counts = bronze.outcome_counts(lines, plan, plan.quarantine)
    expected = [("landed", 4), ("ingested", 1), ("duplicate", 2), ("quarantined:malformed_json", 1),
                ("quarantined_new", 1)]
    assertDataFrameEqual(counts, [Row(outcome=o, count=n) for o, n in expected])


def test_new_quarantine_skips_known_ids(spark):
    lines = spark.createDataFrame([("{a", "f"), ("{b", "f")], "value string, source_file string")
    _, quarantine = validate_lines(lines, datetime(2026, 11, 21))
    known = quarantine.where("raw_record = '{a'").select("quarantine_id")
    assert [r["raw_record"] for r in bronze.new_quarantine(quarantine, known).collect()] == ["{b"]


def test_reconcile_checks_the_books():
    ok = bronze.reconcile({"landed": 5, "ingested": 2, "duplicate": 1, "quarantined:negative_amount": 1,
                           "quarantined:malformed_json": 1, "quarantined_new": 1})
    assert ok == {"rows_landed": 5, "rows_ingested": 2, "rows_quarantined": 2, "rows_duplicate": 1,
                  "rows_quarantined_new": 1,
                  "quarantine_reasons": {"malformed_json": 1, "negative_amount": 1}}
    with pytest.raises(bronze.ReconciliationError, match="landed 5 != ingested 2"):
        bronze.reconcile({"landed": 5, "ingested": 2, "duplicate": 1})

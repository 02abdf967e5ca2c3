"""Ingest: the generate -> ingest slice, reconciliation, idempotent re-runs (its transforms: test_bronze.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from spark_jobs import generate, ingest
from spark_jobs.io import read_table

AS_OF = "2026-11-21T00:00:00Z"
GOOD = {"transaction_id": "t1", "card_id": "c1", "merchant_id": "m1", "merchant_category": "grocery", "amount": 12.5,
        "currency": "EUR", "event_time": "2026-11-01T12:34:56Z", "country": "DE", "lat": 52.52, "lon": 13.405,
        "channel": "pos", "is_fraud": 0}


def _land(home: Path, batch: str, lines: list[str]) -> None:
    folder = home / "var" / "landing" / "batch" / batch
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-00000.jsonl").write_text("".join(line + "\n" for line in lines))


def _books(result: dict) -> tuple[int, int, int, int]:
    return result["rows_landed"], result["rows_ingested"], result["rows_quarantined"], result["rows_duplicate"]


def _counts(spark, profile) -> tuple[int, int]:
    return (read_table(spark, profile.catalog, "bronze_transactions").count(),
            read_table(spark, profile.catalog, "quarantine_transactions").count())


def test_generated_batch_reconciles_and_a_rerun_changes_nothing(spark, local_profile):
    landed = generate.main(["--rows", "600", "--seed", "5", "--dirty-fraction", "0.06", "--batch-id", "g1",
                            "--files", "2"])
    dirty = landed["dirty"]
    invalid = sum(n for kind, n in dirty.items() if kind != "duplicate")

    first = ingest.main(["--as-of", AS_OF])
    assert first["rows_landed"] == 600
    assert first["rows_ingested"] == landed["rows_clean"]
    assert first["rows_quarantined"] == first["rows_quarantined_new"] == invalid
    assert first["rows_duplicate"] == dirty["duplicate"] > 0
    assert first["rows_landed"] == first["rows_ingested"] + first["rows_quarantined"] + first["rows_duplicate"]
    reasons = first["quarantine_reasons"]
    for kind in ("malformed_json", "negative_amount", "future_timestamp"):
        assert reasons[kind] == dirty[kind]
    for kind in ("missing_field", "invalid_type"):
        assert sum(n for r, n in reasons.items() if r.startswith(kind + ":")) == dirty[kind]
    bronze = read_table(spark, local_profile.catalog, "bronze_transactions").agg(
        F.count("*").alias("rows"), F.sum("is_fraud").alias("fraud"), F.countDistinct("source_file").alias("files"))
    assert bronze.first().asDict() == {"rows": landed["rows_clean"], "fraud": landed["rows_fraud"], "files": 2}
    assert _counts(spark, local_profile) == (landed["rows_clean"], invalid)

    second = ingest.main(["--as-of", AS_OF])
    assert second["rows_ingested"] == 0 and second["rows_quarantined_new"] == 0
    assert second["rows_duplicate"] == second["rows_landed"] - second["rows_quarantined"]
    assert second["quarantine_reasons"] == reasons
    assert (second["bronze_version"], second["quarantine_version"]) == (first["bronze_version"],
                                                                        first["quarantine_version"])
    assert _counts(spark, local_profile) == (landed["rows_clean"], invalid)
    audit = read_table(spark, local_profile.catalog, "ingest_audit")
    assert sorted(r["rows_ingested"] for r in audit.collect()) == [0, landed["rows_clean"]]


def test_batches_and_ids_already_in_bronze(spark, local_profile, tributary_home):
    a, b, c = (json.dumps({**GOOD, "transaction_id": i}) for i in ("a", "b", "c"))
    _land(tributary_home, "day1", [a, b, "{oops"])
    _land(tributary_home, "day2", [b, c, c, json.dumps({**GOOD, "transaction_id": "d", "amount": -1})])

    day1 = ingest.main(["--batch-id", "day1", "--as-of", AS_OF])
    assert _books(day1) == (3, 2, 1, 0)

    day2 = ingest.main(["--batch-id", "day2", "--as-of", AS_OF])  # b is in bronze already, c is sent twice
    assert _books(day2) == (4, 1, 1, 2)
    assert day2["quarantine_reasons"] == {"negative_amount": 1}
    assert day2["bronze_version"] == day1["bronze_version"] + 1
    bronze = read_table(spark, local_profile.catalog, "bronze_transactions")
    rows = {r["transaction_id"]: r["source_file"] for r in bronze.select("transaction_id", "source_file").collect()}
    assert sorted(rows) == ["a", "b", "c"]
    assert rows["b"].endswith("day1/part-00000.jsonl")


def test_missing_landing_fails_with_a_hint(local_profile, spark, capsys):
    with pytest.raises(SystemExit) as exc:
        ingest.main(["--batch-id", "nope", "--as-of", AS_OF])
    assert exc.value.code == 1
    assert "run spark_jobs.generate first" in capsys.readouterr().err


@pytest.mark.parametrize("batch_id", ["batch 0001", "../landing", "day1/part-00000.jsonl", ".hidden"])
def test_a_batch_id_that_cannot_have_landed_is_a_usage_error(local_profile, capsys, batch_id):
    """Exit status 2 (not retried by Airflow on the spark-submit profiles), before Spark starts."""
    with pytest.raises(SystemExit) as exc:
        ingest.main(["--batch-id", batch_id, "--as-of", AS_OF])
    assert exc.value.code == 2
    assert f"{batch_id!r} is not a landing batch id" in capsys.readouterr().err


def test_bad_as_of_is_a_usage_error(local_profile):
    with pytest.raises(SystemExit) as exc:
        ingest.main(["--as-of", "yesterday"])
    assert exc.value.code == 2

"""The run summary's arithmetic: reconciliation flag and the keys `make run` promises."""

from __future__ import annotations

from spark_jobs.summary import build_summary

AUDIT = {"rows_landed": 100, "rows_ingested": 90, "rows_quarantined": 7, "rows_duplicate": 3,
         "quarantine_reasons": {"malformed_json": 7}}
COUNTS = {"bronze_transactions": 110, "features_card": 90, "predictions": 90, "stream_predictions": 20,
          "predictions_unattributed": 1}
CHAMPION = {"name": "tributary-fraud", "version": 2, "run_id": "r1", "metrics": {"pr_auc": 0.9, "roc_auc": 0.99}}


def test_summary_keys_and_reconciliation():
    s = build_summary("local", AUDIT, COUNTS, CHAMPION, 12.34)
    assert s["reconciled"] is True
    assert (s["rows_landed"], s["rows_ingested"], s["rows_quarantined"], s["rows_duplicate"]) == (100, 90, 7, 3)
    assert (s["feature_rows"], s["predictions_rows"], s["stream_rows"], s["bronze_rows"]) == (90, 90, 20, 110)
    assert (s["model_name"], s["champion_version"], s["metrics"]["pr_auc"]) == ("tributary-fraud", 2, 0.9)
    assert s["duration_s"] == 12.3 and s["quarantine_reasons"] == {"malformed_json": 7}
    assert s["predictions_unattributed"] == 1


def test_summary_flags_broken_books_and_missing_champion():
    counts = {k: v for k, v in COUNTS.items() if k != "predictions_unattributed"}  # as when nothing was predicted
    s = build_summary("local", {**AUDIT, "rows_duplicate": 4}, counts, None, None)
    assert s["reconciled"] is False
    assert s["champion_version"] is None and s["metrics"] == {}
    assert s["predictions_unattributed"] == 0

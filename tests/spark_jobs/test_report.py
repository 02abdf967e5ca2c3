"""The run report (spark_jobs/report.py) from a summary and the status document; the whole page, opened in Chromium
after a real run, is tested in tests/test_pipeline_e2e.py."""

from __future__ import annotations

import json

from spark_jobs import report

SUMMARY = {"profile": "local", "rows_landed": 100, "rows_ingested": 90, "rows_quarantined": 7, "rows_duplicate": 3,
           "reconciled": True, "quarantine_reasons": {"bad_amount": 4, "future_event_time": 3}, "duration_s": 61.0,
           "steps_s": {"land": 3.0, "fraud_pipeline": 40.0, "summary": 5.0},
           "tasks_s": {"fraud_pipeline": {"ingest": 12.0, "train": 20.5}, "fraud_stream": {}}}
STATE = {"tables": {"bronze_transactions": {"exists": True, "version": 4, "operation": "MERGE",
                                            "committed_at": "2026-12-04T05:00:00+00:00"},
                    "predictions": {"exists": False}},
         "stream": {"stream_checkpoint": {"exists": True, "last_batch": 2, "committed_at": None}},
         "model": {"name": "tributary-fraud",
                   "champion": {"version": 2, "run_id": "r2", "metrics": {"pr_auc": 0.5},
                                "promotion": {"decision": "promoted", "reason": "gate"}},
                   "challenger": {"version": 3, "run_id": "r3", "metrics": {"pr_auc": 0.25, "roc_auc": 0.75},
                                  "promotion": {}}}}


def test_stages_replace_a_dags_step_with_its_tasks_in_order():
    assert report.stages(SUMMARY) == {"land": 3.0, "fraud_pipeline.ingest": 12.0, "fraud_pipeline.train": 20.5,
                                      "summary": 5.0}


def test_the_page_holds_counts_charts_tables_models_and_stages():
    page = report.render(SUMMARY, STATE)
    assert '<span id="reconciliation"><span class="ok">reconciled</span>' in page
    assert page.count('src="data:image/png;base64,') == 2  # quarantine reasons, stages
    assert "<td>bronze_transactions</td><td class=\"n\">4</td><td>MERGE</td>" in page
    assert "<td>predictions</td><td>absent</td>" in page
    # champion and challenger side by side; a metric only the challenger has leaves the champion's cell empty
    assert "<th>metric</th><th>champion</th><th>challenger</th>" in page
    assert "<td>roc_auc</td><td></td><td class=\"n\">0.75</td>" in page
    assert "<td>fraud_pipeline.train</td><td class=\"n\">20.5</td>" in page


def test_an_unreconciled_run_and_a_missing_registry_say_so():
    page = report.render({**SUMMARY, "reconciled": False, "quarantine_reasons": {}},
                         {**STATE, "model": {"error": "no MLflow store yet"}})
    assert '<span class="bad">NOT reconciled</span>' in page and "nothing to show" in page
    assert '<p class="bad">no MLflow store yet</p>' in page


def test_main_writes_the_report_beside_the_summary(local_profile, tmp_path):
    summary = tmp_path / "run-summary.json"
    summary.write_text(json.dumps(SUMMARY))
    result = report.main(["--profile", "local", "--summary", str(summary)])
    written = tmp_path / "run-report.html"
    assert result == {"report": str(written)}
    page = written.read_text()
    assert page.startswith("<!doctype html>") and "no MLflow store yet" in page  # a fresh home: nothing trained

"""`make run`: land data, run fraud_pipeline through Airflow, land a second batch and stream it, summarise.

Steps (each one is a real component; nothing is simulated):
1. land a batch of raw transactions (``spark_jobs.generate``) into landing/batch/<batch-id>;
2. ``airflow dags test fraud_pipeline`` on the profile (SQLite metadata DB under var/airflow): ingest, features,
   train, promote, score, each a spark-submit through the launcher;
3. land a second batch, one file, into landing/stream and ``airflow dags test fraud_stream`` (availableNow: one
   micro-batch, as the local profile takes one file per micro-batch and each costs about 10 s of fixed work);
4. ``spark_jobs.summary`` writes var/run-summary.json, printed as a table, with each step's and each Airflow
   task's wall seconds; ``spark_jobs.report`` renders it, the tables and the models as var/run-report.html.

Idempotent: the generator is deterministic, ingest and scoring MERGE, the stream checkpoint skips processed files.
    python scripts/run_local.py [--rows 20000] [--profile local]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from spark_jobs.generate import GeneratorConfig  # noqa: E402
from tributary.config import load_profile  # noqa: E402
from tributary.local_env import airflow_env, task_seconds  # noqa: E402

BATCH_ID = "batch-0001"
STREAM_BATCH_ID = "stream-0001"
STREAM_FILES = 1  # the second batch lands as one file, as the first does: one micro-batch of the stream
# fraud_pipeline's run conf: this batch, featurised and scored over the days it covers (14 days of November 2026,
# not the run's data interval, the day before it, which a scheduled daily run works on), and a model trained on the
# 90 days before their end. An interval, not a full refresh: with history already in bronze the run still reads only
# these days, their look-back and the training window.
SAMPLE_START, SAMPLE_END = GeneratorConfig().window
TRAIN_DAYS = 90
PIPELINE_CONF = {"batch_id": BATCH_ID, "start": SAMPLE_START.isoformat(), "end": SAMPLE_END.isoformat(),
                 "train_days": TRAIN_DAYS}


def step(title: str, cmd: list[str], env: dict[str, str]) -> float:
    """Run one step; its wall seconds."""
    print(f"\n==> {title}\n    $ {' '.join(cmd)}", flush=True)
    started = time.time()
    done = subprocess.run(cmd, env=env, cwd=REPO_ROOT)
    if done.returncode != 0:
        sys.exit(f"error: step '{title}' failed (exit {done.returncode}); see the output above")
    seconds = time.time() - started
    print(f"    ({seconds:.0f}s)", flush=True)
    return seconds


def run(rows: int, profile_name: str, airflow_home: Path, summary_path: Path) -> dict:
    """Every step; the summary, with each step's wall seconds under ``steps_s`` (benchmarks/make_run.py, P4)."""
    started = time.time()
    profile = load_profile(profile_name)
    env = airflow_env(profile, airflow_home)
    py = sys.executable
    steps = {}
    steps["land"] = step(
        "land a batch of raw transactions",
        [py, "-m", "spark_jobs.generate", "--profile", profile.name, "--batch-id", BATCH_ID, "--rows", str(rows),
         "--seed", "42"], env)
    steps["airflow_db"] = step("prepare the Airflow metadata DB", [py, "-m", "airflow", "db", "migrate"], env)
    conf = json.dumps(PIPELINE_CONF)
    steps["fraud_pipeline"] = step(
        "run fraud_pipeline through Airflow", [py, "-m", "airflow", "dags", "test", "fraud_pipeline", "--conf", conf],
        env)
    steps["land_stream"] = step(
        "land a second batch for the stream",
        [py, "-m", "spark_jobs.generate", "--profile", profile.name, "--target", "landing_stream",
         "--batch-id", STREAM_BATCH_ID, "--rows", str(max(rows // 4, 200)), "--files", str(STREAM_FILES),
         "--seed", "42", "--start", "2026-11-15", "--days", "1"], env)
    steps["fraud_stream"] = step(
        "run fraud_stream through Airflow (availableNow)", [py, "-m", "airflow", "dags", "test", "fraud_stream"], env)
    steps["summary"] = step(
        "summarise", [py, "-m", "spark_jobs.summary", "--profile", profile.name, "--out", str(summary_path),
                      "--started-at", str(started)], env)
    summary = json.loads(summary_path.read_text())
    summary["steps_s"] = {name: round(seconds, 2) for name, seconds in steps.items()}
    summary["tasks_s"] = {dag: task_seconds(airflow_home / "airflow.db", dag)
                          for dag in ("fraud_pipeline", "fraud_stream")}
    summary_path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    step("write the run report", [py, "-m", "spark_jobs.report", "--profile", profile.name, "--summary",
                                  str(summary_path)], env)
    return summary


def summary_problems(summary: dict) -> list[str]:
    """What a finished run's summary lacks: a champion, predictions, stream rows, quarantined rows (the sample
    data always has some), balanced books, a model version and run id on every prediction."""
    problems = [f"{k} is missing or zero" for k in ("champion_version", "predictions_rows", "stream_rows",
                                                     "rows_quarantined") if not summary.get(k)]
    if not summary.get("reconciled"):
        problems.append("the counts do not reconcile (landed != ingested + quarantined + duplicate)")
    if summary.get("predictions_unattributed"):
        problems.append(f"{summary['predictions_unattributed']} prediction(s) lack their model version or run id")
    return problems


def print_summary(summary: dict) -> None:
    print("\n=== Tributary run summary ===")
    for key in ("profile", "rows_landed", "rows_ingested", "rows_quarantined", "rows_duplicate", "reconciled",
                "bronze_rows", "feature_rows", "model_name", "champion_version", "predictions_rows",
                "predictions_unattributed", "stream_rows", "duration_s"):
        print(f"  {key:<18} {summary.get(key)}")
    print("  steps_s            " + ", ".join(f"{k}={v:.0f}" for k, v in summary.get("steps_s", {}).items()))
    metrics = summary.get("metrics", {})
    print("  metrics            " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000, help="transactions in the first batch (scales the run)")
    parser.add_argument("--profile", default=None, help="profile (default $TRIBUTARY_PROFILE or local)")
    parser.add_argument("--airflow-home", type=Path, default=REPO_ROOT / "var" / "airflow")
    parser.add_argument("--summary", type=Path, default=REPO_ROOT / "var" / "run-summary.json")
    args = parser.parse_args()
    summary = run(args.rows, args.profile or load_profile().name, args.airflow_home, args.summary)
    print_summary(summary)
    print(f"\nwrote {args.summary} and {args.summary.with_name('run-report.html')}")
    problems = summary_problems(summary)
    if problems:
        sys.exit(f"error: the run finished but {'; '.join(problems)}")


if __name__ == "__main__":
    main()

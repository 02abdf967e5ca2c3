"""fraud_pipeline: ingest -> features -> train -> promote -> score, on whatever the profile names.

Wiring only: every task comes from the launcher, every transform lives in spark_jobs/.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, Param
from tributary.launcher import launch

DOC = """
### Card-fraud batch pipeline

| task | job (spark_jobs/) | writes |
|---|---|---|
| ingest | `ingest.py` | bronze_transactions, quarantine_transactions, ingest_audit |
| features | `features.py` | features_card (MERGE of the run's data interval) |
| train | `train.py` | MLflow run + model version @challenger |
| promote | `promote.py` | moves @champion when `mlflow/promotion-policy.yaml` passes |
| score | `score.py` | predictions (MERGE of the run's data interval on transaction_id) |

**Incremental:** each run's data interval is the day before it (`0 0 * * *` UTC, a data-interval timetable).
features computes only the transactions whose `event_time` lies in it (reading 30 days back for the card
profile) and score re-scores only them, both by MERGE; training keeps its own window: the whole feature table, or
with `train_days` the days before the interval's end. A first run (no table yet) builds everything. To rebuild
everything, trigger with `full_refresh`; to redo past days, backfill them: a backfill of several intervals gives the
same tables as one full run. With `train_days` set, a run's cost follows its day, the look-back and the training
window, not the history in bronze.

Every task is idempotent: ingest, features and score MERGE on `transaction_id`, so retries, re-runs and backfills
are safe.

**Manual runs** (Trigger DAG w/ config): `batch_id` ingests one landing batch (empty: everything landed);
`full_refresh` recomputes features and re-scores every transaction instead of the run's interval;
`start`/`end` replace the data interval (`make run` passes the days its sample covers); `train_days` sizes the
training window; `promote_version` promotes that model version by hand instead of applying the policy; `epochs`,
`seed` tune training.
"""

with DAG(
    dag_id="fraud_pipeline",
    description="Card-fraud batch pipeline: ingest, features, train, promote, score",
    doc_md=DOC,
    # Each run covers the day before it: data_interval_start/end are that day's bounds (the "@daily" string alone
    # gives a trigger timetable in Airflow 3, whose interval is empty).
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    tags=["tributary", "fraud", "spark", "mlflow"],
    default_args={
        "owner": "data-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "execution_timeout": timedelta(hours=2),
    },
    params={
        # Optional: "null" in its type, so the trigger form opens valid (a field whose type has no "null" is
        # required there, and an empty text field is sent as null).
        "batch_id": Param(
            None, type=["null", "string"], description="Landing batch folder to ingest; empty ingests all."
        ),
        "full_refresh": Param(
            False, type="boolean", description="Recompute all features and re-score everything, not only this "
            "run's data interval.",
        ),
        "start": Param(
            None, type=["null", "string"], format="date-time", description="Features and scores for event times "
            "from this instant instead of the run's data interval (e.g. the first day a landed batch covers).",
        ),
        "end": Param(
            None, type=["null", "string"], format="date-time", description="... up to this instant (exclusive); "
            "also where the training window ends.",
        ),
        "train_days": Param(
            None, type=["null", "integer"], minimum=1, description="Train on the feature rows of this many days "
            "before the interval's end (a rolling window); empty: on the whole table.",
        ),
        "promote_version": Param(
            None, type=["null", "integer"], minimum=1, description="Promote this model version by hand."
        ),
        "epochs": Param(8, type="integer", minimum=0, description="Training epochs."),
        "seed": Param(7, type="integer", description="Training seed (same seed, same model)."),
    },
) as dag:
    # The future check's clock: when the run was due (the trigger time of a manual run), fixed across retries.
    ingest = launch("ingest", args=["--batch-id={{ params.batch_id or '' }}", "--as-of={{ dag_run.run_after | ts }}"])
    # The run's data interval, or the start/end params; empty (everything) on a full refresh or with neither.
    start = ("{{ '' if params.full_refresh else params.start"
             " or (data_interval_start | ts if data_interval_start else '') }}")
    end = "{{ '' if params.full_refresh else params.end or (data_interval_end | ts if data_interval_end else '') }}"
    interval = [f"--start={start}", f"--end={end}"]
    features = launch("features", args=interval)
    # Training's own window: train_days before the interval's end; the whole table without it or on a full refresh.
    window = [f"--window-end={end}", "--window-days={{ '' if params.full_refresh else params.train_days or '' }}"]
    train = launch("train", args=["--epochs={{ params.epochs }}", "--seed={{ params.seed }}", *window])
    promote = launch("promote", args=["--version={{ params.promote_version or '' }}"])
    score = launch("score", args=interval)

    ingest >> features >> train >> promote >> score

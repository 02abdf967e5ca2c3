"""fraud_pipeline: ingest -> features -> train -> promote -> score, on whatever the profile names.

Wiring only: every task comes from the launcher, every transform lives in spark_jobs/.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param
from tributary.launcher import launch

DOC = """
### Card-fraud batch pipeline

| task | job (spark_jobs/) | writes |
|---|---|---|
| ingest | `ingest.py` | bronze_transactions, quarantine_transactions, ingest_audit |
| features | `features.py` | features_card |
| train | `train.py` | MLflow run + model version @challenger |
| promote | `promote.py` | moves @champion when `mlflow/promotion-policy.yaml` passes |
| score | `score.py` | predictions (MERGE on transaction_id) |

Every task is idempotent: ingest and score MERGE on `transaction_id`, features is a deterministic recompute,
so retries and re-runs are safe.

**Manual runs** (Trigger DAG w/ config): `batch_id` ingests one landing batch (empty: everything landed);
`promote_version` promotes that model version by hand instead of applying the policy; `epochs`, `seed` tune training.
"""

with DAG(
    dag_id="fraud_pipeline",
    description="Card-fraud batch pipeline: ingest, features, train, promote, score",
    doc_md=DOC,
    schedule="@daily",
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
        "promote_version": Param(
            None, type=["null", "integer"], minimum=1, description="Promote this model version by hand."
        ),
        "epochs": Param(8, type="integer", minimum=0, description="Training epochs."),
        "seed": Param(7, type="integer", description="Training seed (same seed, same model)."),
    },
) as dag:
    ingest = launch("ingest", args=["--batch-id={{ params.batch_id or '' }}", "--as-of={{ data_interval_end | ts }}"])
    features = launch("features")
    train = launch("train", args=["--epochs={{ params.epochs }}", "--seed={{ params.seed }}"])
    promote = launch("promote", args=["--version={{ params.promote_version or '' }}"])
    score = launch("score")

    ingest >> features >> train >> promote >> score

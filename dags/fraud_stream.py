"""fraud_stream: the streaming scorer. On batch-style profiles it runs `availableNow` on a schedule; on
Kubernetes the same job runs as a long-lived application, which this DAG's task creates when absent and otherwise
only checks (its one owner: tributary/streaming_operator.py).

Wiring only: the task comes from the launcher, the logic lives in spark_jobs/stream.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG
from tributary.launcher import launch

DOC = """
### Card-fraud streaming scorer

Reads newly landed transactions (`landing_stream`), applies the same validation and quarantine as ingest,
computes point-in-time features against bronze, scores with `models:/<name>@champion` and writes
`stream_predictions` exactly once (checkpoint + idempotent Delta writes). Each run processes everything that has
landed since the last one (`trigger(availableNow=True)`) and stops; `max_active_runs=1` keeps one query per
checkpoint.

On Kubernetes the query runs without end in the SparkApplication `tributary-stream`; each run of this DAG creates it
if it is absent (unpause the DAG after `helm install` to start the stream) and fails if it is failed.
"""

with DAG(
    dag_id="fraud_stream",
    description="Structured Streaming fraud scoring, availableNow on a schedule",
    doc_md=DOC,
    schedule=timedelta(minutes=15),
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    tags=["tributary", "fraud", "spark", "streaming"],
    default_args={"owner": "data-platform", "retries": 3, "retry_delay": timedelta(minutes=1)},
) as dag:
    launch("stream")

"""The spark-submit profiles' operator: the Apache Spark provider's ``SparkSubmitOperator``, except that a job that
exits with ``NO_RETRY_EXIT`` (its input or arguments are wrong; ``spark_jobs.cli.fail(retry=False)``) fails its task
at once, with the job's error in the log, instead of being retried the same way.

In client deploy mode (local, standalone) spark-submit exits with the driver's status, so the rule holds there. In
YARN cluster mode spark-submit's status is the application's, not the driver script's: such a failure is retried as
before. The Kubernetes profiles (``SparkApplication``) retry as their operator does.

Imported by ``tributary.launcher`` only when a task is built (it imports the provider, which DAG files avoid at the
top level)."""

from __future__ import annotations

from typing import Any

from airflow.exceptions import AirflowException
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowFailException

from tributary.registry import NO_RETRY_EXIT


class TributarySparkSubmitOperator(SparkSubmitOperator):
    """``SparkSubmitOperator`` that does not retry a job's refusal (exit status ``NO_RETRY_EXIT``)."""

    def execute(self, context: Any) -> None:
        try:
            return super().execute(context)
        except AirflowException as exc:
            if self.exit_status() == NO_RETRY_EXIT:
                raise AirflowFailException(
                    f"{self.task_id}: the job refused its input or arguments (exit status {NO_RETRY_EXIT}; its "
                    "'error:' line above says what to fix); not retried, a retry would fail the same way"
                ) from exc
            raise

    def exit_status(self) -> int | None:
        """The exit status of the spark-submit this task ran, or None if none ended."""
        process = getattr(self._hook, "_submit_sp", None)
        return None if process is None else process.returncode

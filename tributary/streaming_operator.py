"""``EnsureSparkApplicationOperator``: keep the one long-running streaming SparkApplication present.

On Kubernetes the streaming job is a long-running SparkApplication (``restartPolicy: Always``) that the Helm chart
creates (helm/tributary, ``templates/streaming``) from the spec ``tributary.sparkapp`` renders. A submit-and-wait
task would either run forever or, on retry, start a second query on the same checkpoint. So the ``fraud_stream``
task, built by the same launcher from the same spec, is a reconciler instead. Each run reads the application by
its fixed name:

- present and not failed: logs its state and succeeds;
- absent (deleted, or gone with a drained node, a known spark-operator gap): creates it from the spec and succeeds
  (a concurrent creator's 409 is fine: Kubernetes names are unique, so there is never a second query);
- failed (``FAILED``, ``SUBMISSION_FAILED``, ``UNKNOWN``): fails the task so the DAG's alerting fires; spark-operator
  keeps restarting it under ``restartPolicy: Always``.

It never deletes the application, also not when the task is killed: Airflow does not own its lifetime.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator
from airflow.providers.common.compat.sdk import AirflowException

FAILED_STATES = frozenset({"FAILED", "SUBMISSION_FAILED", "UNKNOWN"})
PLURAL = "sparkapplications"


class EnsureSparkApplicationOperator(SparkKubernetesOperator):
    """Create the SparkApplication in ``template_spec`` when it is absent; report it when present (see module)."""

    ui_color = "#a4c2f4"

    def execute(self, context: Any) -> str:
        from kubernetes.client.rest import ApiException

        body = dict(self.template_body["spark"])
        body["metadata"] = {**body["metadata"], "namespace": self.namespace}
        name = body["metadata"]["name"]
        group, version = body["apiVersion"].split("/")
        api = self.hook.custom_object_client
        try:
            app = api.get_namespaced_custom_object(group, version, self.namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.log.info("SparkApplication %s/%s is absent; creating it from the rendered spec", self.namespace, name)
            try:
                api.create_namespaced_custom_object(group, version, self.namespace, PLURAL, body)
            except ApiException as conflict:
                if conflict.status != 409:
                    raise
                self.log.info("SparkApplication %s/%s was created concurrently; leaving it", self.namespace, name)
            return "CREATED"
        state = ((app.get("status") or {}).get("applicationState") or {}).get("state") or "NEW"
        self.log.info("SparkApplication %s/%s is %s", self.namespace, name, state)
        if state in FAILED_STATES:
            message = ((app.get("status") or {}).get("applicationState") or {}).get("errorMessage", "")
            raise AirflowException(f"streaming SparkApplication {self.namespace}/{name} is {state}: {message}")
        return state

    def on_kill(self) -> None:
        """Leave the application running: the chart and this reconciler own it, not the task."""
        self.log.info("Task killed; the long-running SparkApplication is left in place")

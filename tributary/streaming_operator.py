"""``EnsureSparkApplicationOperator``: keep the one long-running streaming SparkApplication present.

On Kubernetes the streaming job is a long-running SparkApplication (``restartPolicy: Always``) with a fixed name,
rendered by ``tributary.sparkapp`` like every other job. A submit-and-wait task would either run forever or, on
retry, start a second query on the same checkpoint. So the ``fraud_stream`` task, built by the launcher, is its one
owner and a reconciler (ADR 0006). Each run reads the application by its fixed name:

- present and not failed: logs its state and succeeds;
- absent (the first run after ``helm install``, or deleted, or gone with a drained node, a known spark-operator gap):
  creates it from the spec and succeeds (a concurrent creator's 409 is fine: Kubernetes names are unique, so there
  is never a second query);
- failed (``FAILED``, ``SUBMISSION_FAILED``, ``UNKNOWN``): fails the task so the DAG's alerting fires; spark-operator
  keeps restarting it under ``restartPolicy: Always``.

It creates the application as a dependent of the chart's ConfigMap ``tributary-env`` in the jobs namespace (an
``ownerReference``, the profile's ``launcher.env_config_map``): the ConfigMap holds the settings the stream runs
with, and when ``helm uninstall`` deletes it, Kubernetes' garbage collector deletes the stream, and spark-operator
its pods. A missing ConfigMap fails the task with what to install. The task never deletes the application, also not
when it is killed: the release's lifetime bounds the stream's, not a task's.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator
from airflow.providers.common.compat.sdk import AirflowException

FAILED_STATES = frozenset({"FAILED", "SUBMISSION_FAILED", "UNKNOWN"})
PLURAL = "sparkapplications"


class EnsureSparkApplicationOperator(SparkKubernetesOperator):
    """Create the SparkApplication in ``template_spec`` when it is absent, owned by the ConfigMap
    ``owner_config_map``; report it when present (see the module)."""

    ui_color = "#a4c2f4"

    def __init__(self, *, owner_config_map: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.owner_config_map = owner_config_map

    def owner_reference(self) -> dict[str, Any]:
        """The ownerReference to ``owner_config_map`` in the task's namespace; fails when the ConfigMap is absent."""
        from kubernetes.client.rest import ApiException

        try:
            owner = self.hook.core_v1_client.read_namespaced_config_map(self.owner_config_map, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            raise AirflowException(
                f"ConfigMap {self.namespace}/{self.owner_config_map} is missing: the stream is created as its "
                "dependent, so that `helm uninstall` stops it. Install helm/tributary (it creates the ConfigMap), "
                "or fix the profile's launcher.env_config_map"
            ) from None
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid}

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
            body["metadata"]["ownerReferences"] = [self.owner_reference()]
            self.log.info("SparkApplication %s/%s is absent; creating it from the rendered spec, owned by "
                          "ConfigMap %s", self.namespace, name, self.owner_config_map)
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
        """Leave the application running: the release bounds its lifetime (module docstring), not the task."""
        self.log.info("Task killed; the long-running SparkApplication is left in place")

"""A recording stand-in for the Kubernetes API, enough to run SparkKubernetesOperator.execute() offline.

It plays spark-operator and the kubelet: a created SparkApplication is RUNNING at once and its driver pod
``<name>-driver`` (labelled as the operator labelled the driver) ends in ``driver_phase``. Every call is recorded as
the RBAC request it needs (apiGroup, resource, verb), so a test can hold the calls against the chart's Role.
Each application keeps the driver phase it was created with (``driver_phase`` at that moment), honours the
field selector on phases and the ``already_checked`` label the operator patches onto finished drivers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

from kubernetes.client import models as k8s
from kubernetes.client.rest import ApiException

SPARK_GROUP = "sparkoperator.k8s.io"


@dataclass
class Cluster:
    """The fake cluster's state and the requests made to it."""

    driver_phase: str = "Succeeded"
    driver_log: bytes = b"TRIBUTARY_RESULT {}\n"
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    app_state: str = "RUNNING"
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    phases: dict[str, str] = field(default_factory=dict)
    extra_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    config_maps: dict[str, str] = field(default_factory=lambda: {"tributary-env": "0c0ffee0-0000-4000-8000-000000000001"})

    def record(self, group: str, resource: str, verb: str) -> None:
        self.requests.append((group, resource, verb))

    def driver_pod(self, name: str, namespace: str) -> k8s.V1Pod:
        app_name = name.removesuffix("-driver")
        app = self.apps[app_name]
        phase = self.phases[app_name]
        terminated = phase in ("Succeeded", "Failed")
        state = k8s.V1ContainerState(
            terminated=k8s.V1ContainerStateTerminated(
                exit_code=0 if phase == "Succeeded" else 1, finished_at=datetime.now(timezone.utc)
            )
            if terminated
            else None,
            running=None if terminated else k8s.V1ContainerStateRunning(),
        )
        return k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(
                name=name,
                namespace=namespace,
                labels={
                    **app["spec"]["driver"].get("labels", {}),
                    "spark-role": "driver",
                    **self.extra_labels.get(app_name, {}),
                },
                creation_timestamp=datetime.now(timezone.utc),
            ),
            spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="spark-kubernetes-driver")]),
            status=k8s.V1PodStatus(
                phase=phase,
                conditions=[k8s.V1PodCondition(type="PodScheduled", status="True")],
                container_statuses=[
                    k8s.V1ContainerStatus(
                        name="spark-kubernetes-driver",
                        image="tributary/spark",
                        image_id="",
                        ready=not terminated,
                        restart_count=0,
                        state=state,
                    )
                ],
            ),
        )


class _LogResponse:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, amt=None, decode_content=True):
        yield self.data

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeCoreV1:
    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.api_client = SimpleNamespace(sanitize_for_serialization=lambda obj: obj.to_dict())

    def list_namespaced_pod(self, namespace, label_selector="", field_selector="", **_):
        self.cluster.record("", "pods", "list")
        pods = [self.cluster.driver_pod(f"{name}-driver", namespace) for name in self.cluster.apps]
        excluded = {
            term.split("!=", 1)[1] for term in filter(None, field_selector.split(",")) if "status.phase!=" in term
        }
        return k8s.V1PodList(items=[p for p in pods if _matches(p, label_selector) and p.status.phase not in excluded])

    def read_namespaced_pod(self, name, namespace, **_):
        self.cluster.record("", "pods", "get")
        return self.cluster.driver_pod(name, namespace)

    def read_namespaced_pod_log(self, name, namespace, **_):
        self.cluster.record("", "pods/log", "get")
        return _LogResponse(self.cluster.driver_log)

    def list_namespaced_event(self, namespace, **_):
        self.cluster.record("", "events", "list")
        return k8s.CoreV1EventList(items=[])

    def read_namespaced_config_map(self, name, namespace, **_):
        self.cluster.record("", "configmaps", "get")
        if name not in self.cluster.config_maps:
            raise ApiException(status=404, reason="NotFound")
        return k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name, namespace=namespace,
                                                          uid=self.cluster.config_maps[name]))

    def patch_namespaced_pod(self, name, namespace, body, **_):
        self.cluster.record("", "pods", "patch")
        labels = (body.get("metadata") or {}).get("labels") or {}
        self.cluster.extra_labels.setdefault(name.removesuffix("-driver"), {}).update(
            {k: v for k, v in labels.items() if k == "already_checked"}
        )


class FakeCustomObjects:
    def __init__(self, cluster: Cluster):
        self.cluster = cluster

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **_):
        self.cluster.record(group, plural, "create")
        name = body["metadata"]["name"]
        if name in self.cluster.apps:
            raise ApiException(status=409, reason="AlreadyExists")
        self.cluster.apps[name] = copy.deepcopy(body)
        self.cluster.phases[name] = self.cluster.driver_phase
        return copy.deepcopy(body)

    def get_namespaced_custom_object(self, group, version, namespace, plural, name, **_):
        self.cluster.record(group, plural, "get")
        if name not in self.cluster.apps:
            raise ApiException(status=404, reason="NotFound")
        return {**self.cluster.apps[name], "status": {"applicationState": {"state": self.cluster.app_state}}}

    def get_namespaced_custom_object_status(self, group, version, namespace, plural, name, **_):
        self.cluster.record(group, f"{plural}/status", "get")
        return {"status": {"applicationState": {"state": self.cluster.app_state}}}

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name, **_):
        self.cluster.record(group, plural, "delete")
        self.cluster.apps.pop(name, None)


def _matches(pod: k8s.V1Pod, selector: str) -> bool:
    labels = pod.metadata.labels or {}
    for term in filter(None, selector.split(",")):
        if term.startswith("!"):
            if term[1:] in labels:
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value:
                return False
    return True


def wire(operator: Any, cluster: Cluster) -> None:
    """Point ``operator`` (SparkKubernetesOperator or a subclass) at the fake cluster."""
    core, custom = FakeCoreV1(cluster), FakeCustomObjects(cluster)
    operator.__dict__["client"] = core
    operator.__dict__["custom_obj_api"] = custom
    operator.__dict__["hook"] = SimpleNamespace(
        core_v1_client=core, custom_object_client=custom, is_in_cluster=True, get_namespace=lambda: None
    )


class TaskInstance:
    """The bits of a TaskInstance the operator reads."""

    def __init__(self, dag_id: str, task_id: str, try_number: int = 1):
        self.dag_id, self.task_id, self.try_number, self.map_index = dag_id, task_id, try_number, -1
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any, **_) -> None:
        self.xcom[key] = value


def context(operator: Any, run_id: str, try_number: int = 1) -> dict[str, Any]:
    """A task context with what our templates and the operator use."""
    from airflow.sdk.execution_time import macros

    ti = TaskInstance(operator.dag.dag_id, operator.task_id, try_number)
    interval_end = datetime(2026, 11, 21, tzinfo=timezone.utc)
    run = SimpleNamespace(run_id=run_id, run_after=interval_end, data_interval_start=interval_end - timedelta(days=1),
                          data_interval_end=interval_end)
    params = {k: v.value if hasattr(v, "value") else v for k, v in operator.dag.params.items()}
    return {
        "ti": ti,
        "task_instance": ti,
        "task": operator,
        "dag": operator.dag,
        "run_id": run_id,
        "macros": macros,
        "params": params,
        "dag_run": run,
        "data_interval_start": run.data_interval_start,
        "data_interval_end": interval_end,
    }

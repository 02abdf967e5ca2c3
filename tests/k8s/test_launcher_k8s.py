"""On Kubernetes profiles the same DAG files build SparkKubernetesOperator tasks whose spec is the rendered one.

Besides the wiring, this runs the provider's operator offline against a recording fake API (tests/k8s/fake_kube.py)
to pin down the behaviour we rely on with Airflow 3 and cncf.kubernetes 10.25: the spec is submitted as rendered
(name per run and try, our namespace), the driver log reaches the task log, a failed driver fails the task, a
succeeded one succeeds it, and every API call is allowed by the chart's Role for the Airflow worker.
"""

from __future__ import annotations

import copy
import logging

import pytest
import yaml

from tests.k8s import fake_kube
from tests.k8s.conftest import PROFILES, load_docs, render_k8s

SPARK = "sparkoperator.k8s.io"


@pytest.fixture(scope="module")
def tasks_by_profile():
    return {p: render_k8s.dag_tasks(p) for p in (*PROFILES, "local")}


@pytest.mark.parametrize("profile", PROFILES)
def test_dag_tasks_are_spark_kubernetes_operators_with_the_rendered_spec(rendered, tasks_by_profile, profile):
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator

    from tributary.streaming_operator import EnsureSparkApplicationOperator

    files = sorted((rendered / profile / "sparkapplications").glob("*.yaml"))
    tasks = tasks_by_profile[profile]
    assert {f.stem for f in files} == set(tasks)  # one file per job the DAGs launch
    for path in files:
        task = tasks[path.stem]
        assert isinstance(task, SparkKubernetesOperator)
        assert task.template_spec == yaml.safe_load(path.read_text())
        assert task.namespace == "tributary-jobs"
        assert task.kubernetes_conn_id == "kubernetes_default"
    stream = tasks["stream"]
    assert isinstance(stream, EnsureSparkApplicationOperator)
    for task_id in ("ingest", "features", "train", "promote", "score"):
        task = tasks[task_id]
        assert type(task) is SparkKubernetesOperator
        assert task.get_logs and task.reattach_on_restart  # the driver log goes to the task log
        assert task.random_name_suffix is False  # the name already carries run and try
        assert task.delete_on_termination is False  # spec.timeToLiveSeconds cleans up
        assert task.on_finish_action.value == "keep_pod"  # and a finished driver is labelled already_checked


def test_dag_files_are_the_same_for_every_profile(tasks_by_profile):
    shapes = {
        profile: {tid: (t.dag_id, sorted(t.upstream_task_ids)) for tid, t in tasks.items()}
        for profile, tasks in tasks_by_profile.items()
    }
    assert all(shape == shapes["local"] for shape in shapes.values())
    assert type(tasks_by_profile["local"]["ingest"]).__name__ == "TributarySparkSubmitOperator"


def _run(operator, cluster, run_id="manual__2026-11-21T19:44:12+00:00", try_number=1):
    op = copy.deepcopy(operator)
    fake_kube.wire(op, cluster)
    ctx = fake_kube.context(op, run_id, try_number)
    op.render_template_fields(ctx)
    op.execute(ctx)
    return op


def _role_rules(rendered, profile, name):
    (role,) = [
        d for d in load_docs(rendered / profile / "chart.yaml") if d["kind"] == "Role" and d["metadata"]["name"] == name
    ]
    assert role["metadata"]["namespace"] == "tributary-jobs"
    return {
        (g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }


def test_operator_submits_the_spec_and_the_role_allows_every_call(rendered, tasks_by_profile, capsys, caplog):
    caplog.set_level(logging.INFO)
    cluster = fake_kube.Cluster(driver_log=b'2026-11-21T20:00:00Z driver says TRIBUTARY_RESULT {"job": "ingest"}\n')
    _run(tasks_by_profile["kind"]["ingest"], cluster)
    (name,) = cluster.apps
    body = cluster.apps[name]
    assert name.startswith("tributary-ingest-") and name.endswith("-1") and "{{" not in name
    assert body["metadata"]["namespace"] == "tributary-jobs"
    assert body["spec"]["arguments"][:2] == ["--profile", "kind"]
    assert "--batch-id=" in body["spec"]["arguments"][2]
    assert body["spec"]["driver"]["labels"]["try_number"] == "1"  # reattach finds this try's driver
    # The driver log reaches the task log (Airflow 3 logs through structlog to the task's stream).
    assert "driver says TRIBUTARY_RESULT" in caplog.text + capsys.readouterr().out
    allowed = _role_rules(rendered, "kind", "tributary-airflow-worker")
    assert set(cluster.requests) <= allowed, set(cluster.requests) - allowed
    assert (SPARK, "sparkapplications", "create") in cluster.requests


def test_a_retry_gets_a_new_name_and_a_failed_driver_fails_the_task(rendered, tasks_by_profile):
    from airflow.providers.common.compat.sdk import AirflowException

    cluster = fake_kube.Cluster(driver_phase="Failed")
    with pytest.raises(AirflowException, match="returned a failure"):
        _run(tasks_by_profile["kind"]["score"], cluster, try_number=1)
    cluster.driver_phase = "Succeeded"
    _run(tasks_by_profile["kind"]["score"], cluster, try_number=2)
    names = sorted(cluster.apps)
    assert len(names) == 2 and names[0][:-2] == names[1][:-2] and {n[-2:] for n in names} == {"-1", "-2"}
    allowed = _role_rules(rendered, "kind", "tributary-airflow-worker")
    # Outside the Role only: reading pod events for the failed try's log (best effort, a warning without it).
    assert set(cluster.requests) - allowed <= {("", "events", "list")}
    # Both drivers were labelled already_checked (a patch the Role allows: refused, it would raise and hide the
    # task's real error).
    assert {app: labels.get("already_checked") for app, labels in cluster.extra_labels.items()} == dict.fromkeys(names, "True")


def test_a_cleared_task_that_had_succeeded_runs_again_as_a_new_application(rendered, tasks_by_profile):
    """Clearing a finished task in the UI: the new try submits a new application instead of reattaching to the kept,
    succeeded driver of the earlier try (which the provider's reattach would find by its task labels)."""
    cluster = fake_kube.Cluster(driver_phase="Succeeded", driver_log=b'TRIBUTARY_RESULT {"job": "score"}\n')
    _run(tasks_by_profile["kind"]["score"], cluster, try_number=1)
    (first,) = cluster.apps
    assert cluster.extra_labels[first] == {"already_checked": "True"}
    creates = lambda: [r for r in cluster.requests if r == (SPARK, "sparkapplications", "create")]  # noqa: E731
    assert len(creates()) == 1
    _run(tasks_by_profile["kind"]["score"], cluster, try_number=2)
    assert len(creates()) == 2 and sorted(cluster.apps) == sorted({first, first[:-2] + "-2"})
    assert set(cluster.requests) <= _role_rules(rendered, "kind", "tributary-airflow-worker")


def test_the_worker_role_is_exactly_what_the_operator_needs(rendered):
    for profile in PROFILES:
        assert _role_rules(rendered, profile, "tributary-airflow-worker") == {
            *((SPARK, "sparkapplications", v) for v in ("create", "get", "watch", "delete")),
            (SPARK, "sparkapplications/status", "get"),
            *(("", "pods", v) for v in ("get", "list", "watch", "patch")),
            ("", "pods/log", "get"),
            ("", "configmaps", "get"),  # tributary-env only: the stream's owner
        }
        driver = _role_rules(rendered, profile, "tributary-spark-driver")
        # Its executors and their conf; at stop, Spark deletes its driver Service and owned PVCs by label.
        assert {(r, v) for _, r, v in driver if r not in ("pods", "configmaps")} == {
            ("services", "deletecollection"), ("persistentvolumeclaims", "list"),
            ("persistentvolumeclaims", "deletecollection")}


def _stream_task(tasks_by_profile, cluster):
    op = copy.deepcopy(tasks_by_profile["eks"]["stream"])
    fake_kube.wire(op, cluster)
    ctx = fake_kube.context(op, "scheduled__2026-11-21T20:00:00+00:00")
    op.render_template_fields(ctx)
    return op, ctx


def test_the_stream_task_creates_the_app_only_when_it_is_absent(rendered, tasks_by_profile):
    from airflow.providers.common.compat.sdk import AirflowException

    cluster = fake_kube.Cluster()
    op, ctx = _stream_task(tasks_by_profile, cluster)
    assert op.execute(ctx) == "CREATED"
    assert list(cluster.apps) == ["tributary-stream"]
    app = cluster.apps["tributary-stream"]
    assert app["spec"]["restartPolicy"]["type"] == "Always"
    # Its one owner: the task created it as a dependent of the chart's tributary-env, so `helm uninstall` (which
    # deletes the ConfigMap) has Kubernetes' garbage collector delete the stream.
    assert app["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "tributary-env", "uid": cluster.config_maps["tributary-env"]}
    ]
    assert "meta.helm.sh/release-name" not in app["metadata"].get("annotations", {})
    assert set(cluster.requests) <= _role_rules(rendered, "eks", "tributary-airflow-worker")
    assert op.execute(ctx) == "RUNNING"  # present: left alone, never a second application
    assert [r for r in cluster.requests if r[2] == "create"] == [(SPARK, "sparkapplications", "create")]
    cluster.app_state = "FAILED"
    with pytest.raises(AirflowException, match="tributary-stream is FAILED"):
        op.execute(ctx)
    op.on_kill()
    assert "tributary-stream" in cluster.apps  # killing the task never deletes the stream


def test_the_stream_task_fails_with_what_to_install_when_the_charts_configmap_is_missing(tasks_by_profile):
    from airflow.providers.common.compat.sdk import AirflowException

    cluster = fake_kube.Cluster(config_maps={})
    op, ctx = _stream_task(tasks_by_profile, cluster)
    with pytest.raises(AirflowException, match="ConfigMap tributary-jobs/tributary-env is missing.*Install helm/tributary"):
        op.execute(ctx)
    assert cluster.apps == {}  # no stream without an owner: it would outlive `helm uninstall`

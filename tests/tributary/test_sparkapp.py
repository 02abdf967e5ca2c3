"""The SparkApplication renderer (tributary/sparkapp.py): the scheduling facts per workload class.

Pure tests: no tools, no cluster. They render from the shipped profiles and conf/jobs.yaml, so a profile edit that
breaks a scheduling fact fails here.
"""

from __future__ import annotations

import re
import sys
import uuid
from types import SimpleNamespace

import jinja2
import pytest

from tributary.config import ConfigError, load_profile
from tributary.registry import get_job, load_jobs
from tributary.spark_conf import spark_conf
from tests import SPARK_JAVA_OPTIONS
from tests.k8s.conftest import PROFILES, REPO_ROOT
from tributary.sparkapp import K8S_RUN_SUFFIX, metrics_annotations, render_application

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def app(job: str, profile: str, args=()):
    return render_application(get_job(job), load_profile(profile), args)


def executor_pod(spec):
    return spec["spec"]["executor"]["template"]["spec"]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("job", ["ingest", "features", "train", "promote"])
def test_cpu_jobs_use_dynamic_allocation_with_shuffle_tracking(profile, job):
    spec = app(job, profile)["spec"]
    bounds = load_profile(profile).resources["dynamic_allocation"]
    assert spec["dynamicAllocation"] == {
        "enabled": True,
        "shuffleTrackingEnabled": True,
        "minExecutors": bounds["min_executors"],
        "initialExecutors": bounds["initial_executors"],
        "maxExecutors": bounds["max_executors"],
    }
    conf = spec["sparkConf"]
    assert conf["spark.dynamicAllocation.enabled"] == "true"
    assert conf["spark.dynamicAllocation.shuffleTracking.enabled"] == "true"
    assert "instances" not in spec["executor"]
    assert executor_pod(app(job, profile))["nodeSelector"] == {"tributary.dev/pool": "spark-cpu"}
    assert spec["restartPolicy"] == {"type": "Never"}


@pytest.mark.parametrize("profile", PROFILES)
def test_scoring_runs_on_the_gpu_pool(profile):
    spec = app("score", profile)
    pod = executor_pod(spec)
    assert pod["nodeSelector"] == {"tributary.dev/pool": "gpu"}
    assert any(
        t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule" and t["operator"] in ("Exists", "Equal")
        for t in pod["tolerations"]
    )
    (container,) = pod["containers"]
    assert container["name"] == "spark-kubernetes-executor"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    conf = spec["spec"]["sparkConf"]
    assert conf["spark.executor.resource.gpu.amount"] == "1"
    assert conf["spark.executor.resource.gpu.vendor"] == "nvidia.com"  # not nvidia.com/gpu
    assert conf["spark.executor.resource.gpu.discoveryScript"] == "/opt/tributary/bin/gpu-discovery.sh"
    assert conf["spark.dynamicAllocation.enabled"] == "false"
    assert "dynamicAllocation" not in spec["spec"]
    assert spec["spec"]["executor"]["instances"] == load_profile(profile).launcher["static_executors"]["gpu"]
    # The driver needs no GPU and stays off the GPU pool.
    assert spec["spec"]["driver"]["template"]["spec"]["nodeSelector"] == {"tributary.dev/pool": "spark-cpu"}


@pytest.mark.parametrize("profile", ["eks", "gke"])
def test_real_gpu_pools_hand_each_task_its_gpu(profile):
    conf = app("score", profile)["spec"]["sparkConf"]
    assert conf["spark.task.resource.gpu.amount"] == "1"  # TaskContext.resources()["gpu"] in scoring.py
    assert "spark.executorEnv.TRIBUTARY_GPU_SIMULATED" not in conf


@pytest.mark.parametrize("profile", ["kind", "minikube"])
def test_local_clusters_schedule_on_the_gpu_node_and_fall_back_to_cpu(profile):
    conf = app("score", profile)["spec"]["sparkConf"]
    assert conf["spark.executorEnv.TRIBUTARY_GPU_SIMULATED"] == "true"
    assert "spark.task.resource.gpu.amount" not in conf  # no task gets a GPU: scoring uses the CPU


@pytest.mark.parametrize("profile", PROFILES)
def test_streaming_is_long_running_with_its_checkpoint_on_object_storage(profile):
    p = load_profile(profile)
    spec = app("stream", profile)
    assert spec["metadata"]["name"] == "tributary-stream"  # one application, so one query per checkpoint
    assert spec["spec"]["restartPolicy"]["type"] == "Always"
    assert spec["spec"]["arguments"] == ["--profile", profile]
    assert p.catalog.uri("stream_checkpoint").split("://")[0] in ("s3a", "gs")
    assert p.streaming["trigger"] == "processing_time"  # runs until stopped, not availableNow
    assert spec["spec"]["sparkConf"]["spark.dynamicAllocation.enabled"] == "false"
    assert spec["spec"]["executor"]["instances"] == p.launcher["static_executors"]["streaming"]
    assert spec["spec"]["driver"]["template"]["spec"]["priorityClassName"] == "tributary-streaming"
    # The fraud_stream task owns it (ownerReference at creation, tests/k8s), not Helm: no Helm ownership metadata.
    assert "annotations" not in spec["metadata"] and "app.kubernetes.io/managed-by" not in spec["metadata"]["labels"]
    # The Kafka credentials reach the stream's driver only, from an optional Secret (a stream on files needs none).
    kafka_secret = {"secretRef": {"name": "tributary-kafka", "optional": True}}
    driver_env = spec["spec"]["driver"]["template"]["spec"]["containers"][0]["envFrom"]
    assert kafka_secret in driver_env and kafka_secret not in executor_pod(spec)["containers"][0]["envFrom"]
    batch = app("ingest", profile)["spec"]
    assert kafka_secret not in batch["driver"]["template"]["spec"]["containers"][0]["envFrom"]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("job", sorted(load_jobs()))
def test_every_app_reuses_the_session_conf_and_cleans_up(profile, job):
    p = load_profile(profile)
    spec = app(job, profile)["spec"]
    base = spark_conf(p, check_jars=False)
    kept = {k: v for k, v in base.items() if not k.startswith("spark.dynamicAllocation.")}
    assert kept.items() <= spec["sparkConf"].items()
    assert spec["sparkConf"]["spark.pyspark.python"] == "/opt/tributary/venv/bin/python"  # the image's, not ours
    assert spec["timeToLiveSeconds"] == int(p.launcher["ttl_seconds"])
    assert spec["mainApplicationFile"] == f"local:///opt/tributary/spark_jobs/{get_job(job).application.name}"
    assert spec["driver"]["serviceAccount"] == spec["executor"]["serviceAccount"] == "tributary-spark"
    assert spec["driver"]["memory"] == p.resources["driver_memory"] == spec["sparkConf"]["spark.driver.memory"]
    for role in ("driver", "executor"):
        pod = spec[role]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"configMapRef": {"name": "tributary-env"}} in container["envFrom"]
        assert spec[role]["coreLimit"]  # the job namespace's quota needs CPU limits


def _render_name(template: str, dag_id: str, run_id: str, try_number: int) -> str:
    from airflow.sdk.execution_time import macros

    ti = SimpleNamespace(dag_id=dag_id, try_number=try_number)
    return jinja2.Environment().from_string(template).render(ti=ti, run_id=run_id, macros=macros)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("job", ["features", "score", "stream"])
def test_every_driver_serves_prometheus_metrics_where_its_annotations_point(profile, job):
    spec = app(job, profile)["spec"]
    conf = spec["sparkConf"]
    annotations = spec["driver"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": "4040",
                           "prometheus.io/path": "/metrics/prometheus"}
    assert conf["spark.metrics.conf.*.sink.prometheusServlet.path"] == annotations["prometheus.io/path"]
    assert conf["spark.ui.prometheus.enabled"] == "true"  # executors' metrics at /metrics/executors/prometheus
    assert conf["spark.metrics.namespace"] == "tributary"  # names the dashboard can query across applications
    assert "annotations" not in spec["executor"]["template"]["metadata"]  # executors are scraped via the driver


def test_no_servlet_no_annotations_and_a_servlet_without_its_ui_is_refused():
    servlet = {"spark.metrics.conf.*.sink.prometheusServlet.class": "org.apache.spark.metrics.sink.PrometheusServlet"}
    assert metrics_annotations({}) == {}
    assert metrics_annotations({**servlet, "spark.ui.port": "4041"})["prometheus.io/port"] == "4041"
    with pytest.raises(ConfigError, match="spark.ui.enabled"):
        metrics_annotations({**servlet, "spark.ui.enabled": "false"})


def test_a_local_clusters_time_to_live_can_be_shortened_from_the_environment(monkeypatch):
    """tests/cluster shorten it to watch spark-operator remove a failed try's application."""
    monkeypatch.setenv("TRIBUTARY_SPARKAPP_TTL_SECONDS", "90")
    spec = render_application(get_job("ingest"), load_profile("kind"))
    assert spec["spec"]["timeToLiveSeconds"] == 90
    monkeypatch.delenv("TRIBUTARY_SPARKAPP_TTL_SECONDS")
    assert render_application(get_job("ingest"), load_profile("kind"))["spec"]["timeToLiveSeconds"] == 3600


@pytest.mark.parametrize("job", ["ingest", "score", "stream"])
def test_a_local_clusters_jvm_options_come_from_the_environment_and_are_left_out_unset(monkeypatch, job):
    """tests/cluster compile the cluster's Spark JVMs with C1 only, as the tests' host JVMs: an empty expansion sets
    nothing (the documented specs, rendered without the variable, have no such key)."""
    monkeypatch.delenv("TRIBUTARY_SPARK_JAVA_OPTIONS", raising=False)
    conf = render_application(get_job(job), load_profile("kind"))["spec"]["sparkConf"]
    assert not [key for key in conf if "JavaOptions" in key], conf
    (key, options), = SPARK_JAVA_OPTIONS.items()
    monkeypatch.setenv(key, options)
    conf = render_application(get_job(job), load_profile("kind"))["spec"]["sparkConf"]
    assert conf["spark.driver.extraJavaOptions"] == conf["spark.executor.extraJavaOptions"] == options


def test_names_are_unique_per_run_and_try_and_valid_kubernetes_names():
    name = app("ingest", "kind")["metadata"]["name"]
    assert name.endswith(K8S_RUN_SUFFIX)
    runs = ["scheduled__2026-11-01T00:00:00+00:00", "manual__2026-11-21T19:44:12.123456+00:00", "backfill__x"]
    names = {_render_name(name, "fraud_pipeline", run, t) for run in runs for t in (1, 2, 3)}
    assert len(names) == 9
    for rendered in names:
        assert DNS_LABEL.match(rendered) and len(rendered) <= 63 - len("-driver"), rendered
    again = _render_name(name, "fraud_pipeline", runs[0], 1)
    assert again in names  # deterministic: the same run and try give the same name
    assert uuid.uuid5(uuid.NAMESPACE_URL, f"fraud_pipeline/{runs[0]}").hex[:10] in again


def test_only_kubernetes_profiles_render_applications():
    """The launcher's shape and dynamic allocation's bounds are checked when the profile loads
    (conf/profiles/schema.json; tests/tributary/test_config.py); rendering checks only that the profile is a Kubernetes one."""
    with pytest.raises(ConfigError, match="launcher.kind is 'spark_submit'; SparkApplications need 'spark_kubernetes'"):
        render_application(get_job("ingest"), load_profile("local"))


def test_the_cluster_runs_fill_every_template_of_the_rendered_applications(rendered, monkeypatch):
    """scripts/cluster_platform.rendered fills a rendered application's Airflow templates as the operator would
    (`make cluster-run` submits its summary application that way): every template each job's arguments use must be
    in its context (a new one, dag_run.run_after, once failed there)."""
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import cluster_platform

    monkeypatch.setattr(cluster_platform, "RENDERED", rendered / "kind" / "sparkapplications")
    for job in load_jobs():
        spec = cluster_platform.rendered(job, f"tributary-{job}-x", batch_id="b", full_refresh=True, epochs=3, seed=42,
                                         promote_version="")
        assert not [a for a in spec["spec"]["arguments"] if "{{" in a or "{%" in a], (job, spec["spec"]["arguments"])

"""SparkApplication rendering for Kubernetes profiles: job registry + profile + template -> one spec.

``render_application(job, profile, args)`` fills ``k8s/templates/sparkapplication.yaml.j2`` and returns the
spark-operator v2 ``SparkApplication`` as a dict. It is pure (no Airflow, no Kubernetes client, no Spark) and is the
only place specs come from: the ``spark_kubernetes`` launcher builder passes its result to
``SparkKubernetesOperator(template_spec=...)`` (and the stream's ``EnsureSparkApplicationOperator``), and
``make render`` writes what the DAGs hold.

What the workload class (a job's ``workload`` in ``conf/jobs.yaml``; its keys in ``conf/workloads.yaml``) decides:

- ``cpu``: executors on the ``launcher.node_pools.cpu`` pool with dynamic allocation and shuffle tracking, bounds
  from ``resources.dynamic_allocation``; ``restartPolicy: Never`` (Airflow owns retries).
- ``gpu``: static executors (``launcher.static_executors.gpu``) on the ``gpu`` pool, tolerating its taint, each
  limited to ``resources.gpu.amount`` of ``launcher.gpu.resource``; Spark's GPU scheduling confs (amount, task amount,
  discovery script, vendor) so a task sees its device in ``TaskContext.resources()["gpu"]``. On kind and minikube
  (``launcher.gpu.simulated``) the same executor lands on the tainted "gpu" node, which advertises a fake device;
  tasks get no GPU there and scoring falls back to the CPU.
- ``streaming``: the one long-running application (``launcher.streaming_app.name``, fixed: one query per
  checkpoint), static executors, ``restartPolicy: Always``; its checkpoint is the catalog's ``stream_checkpoint``,
  which a Kubernetes profile puts on object storage. Its driver also takes its environment from the Secrets in
  ``launcher.streaming_app.secret_env`` if they exist (``tributary-kafka``: the Kafka credentials).

Spark settings are ``tributary.spark_conf.spark_conf(profile, check_jars=False)``, the same dict the jobs' own
session factory applies; only the per-workload allocation and GPU keys are added here. Where they turn on Spark's
PrometheusServlet, the driver pod carries the ``prometheus.io/scrape|port|path`` annotations that point a
Prometheus (its usual ``kubernetes-pods`` job) at it (``metrics_annotations``).

Names: batch applications carry a hash of the DAG id and run id plus the try number, as Airflow templates the
operator renders per try (``K8S_RUN_SUFFIX``): unique per run and per try, a valid DNS label, deterministic.

Usage::

    from tributary.sparkapp import render_application
    spec = render_application(get_job("score"), load_profile("kind"))
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Sequence

import jinja2
import yaml

from tributary.config import REPO_ROOT, ConfigError, Profile
from tributary.registry import Job
from tributary.spark_conf import spark_conf

TEMPLATE = REPO_ROOT / "k8s" / "templates" / "sparkapplication.yaml.j2"
API_VERSION = "sparkoperator.k8s.io/v1beta2"

# Airflow renders these per task try: 10 hex chars of a UUID5 over "<dag_id>/<run_id>", then the try number.
# Run ids hold ':' and '+' (not allowed in Kubernetes names), hence the hash; the name stays under 40 characters.
K8S_RUN_SUFFIX = (
    "{{ macros.uuid.uuid5(macros.uuid.NAMESPACE_URL, ti.dag_id ~ '/' ~ run_id).hex[:10] }}-{{ ti.try_number }}"
)
NAME_PREFIX = "tributary"

# Pod and container hardening for every driver and executor (the image's `spark` user is uid 185).
POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 185,
    "runAsGroup": 185,
    "fsGroup": 185,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

RESTART_NEVER = {"type": "Never"}
# spark-operator waits interval x submissions so far before each restart (linear, never reset while the application
# exists): a 10 s base brings a lost stream driver back in seconds the first times, and still backs off a crash loop.
RESTART_ALWAYS = {"type": "Always", "onFailureRetryInterval": 10, "onSubmissionFailureRetryInterval": 60}
RESTART_POLICIES = {"Never": RESTART_NEVER, "Always": RESTART_ALWAYS}  # conf/workloads.yaml's restart_policy

PROMETHEUS_SERVLET = "spark.metrics.conf.*.sink.prometheusServlet"


def metrics_annotations(conf: Mapping[str, str]) -> dict[str, str]:
    """The driver pod's ``prometheus.io/*`` annotations where ``conf`` serves the driver's metrics through the
    PrometheusServlet (on the UI's port), else none."""
    if conf.get(f"{PROMETHEUS_SERVLET}.class") != "org.apache.spark.metrics.sink.PrometheusServlet":
        return {}
    if conf.get("spark.ui.enabled", "true").lower() != "true":
        raise ConfigError("spark.metrics.conf.*.sink.prometheusServlet is served by the Spark UI, which "
                          "spark.ui.enabled turns off: turn the UI on or remove the servlet")
    return {"prometheus.io/scrape": "true", "prometheus.io/port": conf.get("spark.ui.port", "4040"),
            "prometheus.io/path": conf.get(f"{PROMETHEUS_SERVLET}.path", "/metrics/prometheus")}


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        variable_start_string="[[",
        variable_end_string="]]",
        block_start_string="[%",
        block_end_string="%]",
        comment_start_string="[#",
        comment_end_string="#]",
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.from_string(TEMPLATE.read_text())


def _check_launcher(profile: Profile) -> Mapping[str, Any]:
    """The ``launcher`` section of a ``spark_kubernetes`` profile. Its shape (node pools, GPU, priority classes,
    static executors, CPU requests, the stream's application) and dynamic allocation's bounds were checked when the
    profile loaded, against conf/profiles/schema.json."""
    launcher = profile.launcher
    if launcher.get("kind") != "spark_kubernetes":
        raise ConfigError(f"profile '{profile.name}' launcher.kind is '{launcher.get('kind')}'; SparkApplications "
                          "need 'spark_kubernetes'")
    return launcher


def application_name(job: Job, profile: Profile) -> str:
    """The SparkApplication name: fixed for the long-running stream, else unique per run and try (templated)."""
    if job.workload_class.long_running:
        return profile.launcher["streaming_app"]["name"]
    return f"{NAME_PREFIX}-{job.name}-{K8S_RUN_SUFFIX}"


def _workload_conf(job: Job, profile: Profile) -> dict[str, str]:
    """``spark_conf(profile)`` plus the allocation and GPU keys this workload class needs."""
    conf = spark_conf(profile, check_jars=False)  # the image holds the jars; the driver's session checks them
    workload = job.workload_class
    if not workload.dynamic_allocation:  # a fixed set of executors (launcher.static_executors)
        conf = {k: v for k, v in conf.items() if not k.startswith("spark.dynamicAllocation.")}
        conf["spark.dynamicAllocation.enabled"] = "false"
    if workload.gpu:
        gpu = profile.launcher["gpu"]
        vendor, resource = gpu["resource"].split("/", 1)
        amount = str(profile.resources["gpu"]["amount"])
        conf[f"spark.executor.resource.{resource}.amount"] = amount
        conf[f"spark.executor.resource.{resource}.discoveryScript"] = gpu["discovery_script"]
        conf[f"spark.executor.resource.{resource}.vendor"] = vendor
        if gpu["simulated"]:
            # A local cluster's "gpu" node advertises a fake device: the executor is scheduled exactly as on a GPU
            # pool, the discovery script reports a placeholder, and no task is handed a GPU, so scoring's
            # TaskContext.resources() has none and it runs on the CPU.
            conf["spark.executorEnv.TRIBUTARY_GPU_SIMULATED"] = "true"
        else:
            conf[f"spark.task.resource.{resource}.amount"] = amount  # each task owns its executor's GPU(s)
    return conf


def render_application(job: Job, profile: Profile, args: Sequence[str] = ()) -> dict[str, Any]:
    """The SparkApplication that runs ``job`` on ``profile``'s cluster, as a dict (see the module docstring)."""
    launcher = _check_launcher(profile)
    workload = job.workload_class
    gpu_job = workload.gpu
    if gpu_job and not profile.resources["gpu"]["enabled"]:
        raise ConfigError(f"job '{job.name}' is a gpu workload but profile '{profile.name}' has resources.gpu off")
    pools = launcher["node_pools"]
    labels = {
        "app.kubernetes.io/name": "tributary",
        "app.kubernetes.io/part-of": "tributary",
        "app.kubernetes.io/component": "spark-job",
        "tributary.dev/job": job.name,
        "tributary.dev/workload": job.workload,
        "tributary.dev/profile": profile.name,
    }
    env_from = [{"configMapRef": {"name": launcher["env_config_map"]}}]
    env_from += [{"secretRef": {"name": name}} for name in launcher["secret_env"]]
    driver_env_from = list(env_from)
    if workload.long_running:  # optional: a stream on files, or on Kafka without SASL, needs none of them
        driver_env_from += [{"secretRef": {"name": name, "optional": True}}
                            for name in launcher["streaming_app"]["secret_env"]]
    conf = _workload_conf(job, profile)
    context = {
        "name": application_name(job, profile),
        "labels": labels,
        "launcher": launcher,
        "resources": profile.resources,
        "main_application_file": f"local://{launcher['application_dir'].rstrip('/')}/{job.application.name}",
        "arguments": ["--profile", profile.name, *args],
        "spark_conf": conf,
        "driver_annotations": metrics_annotations(conf),
        "restart_policy": RESTART_POLICIES[workload.restart_policy],
        "dynamic_allocation": profile.resources["dynamic_allocation"] if workload.dynamic_allocation else None,
        "instances": None if workload.dynamic_allocation else launcher["static_executors"][job.workload],
        "priority_class": launcher["priority_classes"][workload.priority_class],
        "driver_pool": pools["driver"],
        "executor_pool": pools[workload.executor_pool],
        "gpu": {"resource": launcher["gpu"]["resource"], "amount": profile.resources["gpu"]["amount"]}
        if gpu_job
        else None,
        "env_from": env_from,
        "driver_env_from": driver_env_from,
        "pod_security_context": POD_SECURITY_CONTEXT,
        "container_security_context": CONTAINER_SECURITY_CONTEXT,
    }
    if workload.dynamic_allocation and not profile.resources["dynamic_allocation"]["enabled"]:
        raise ConfigError(f"profile '{profile.name}': cpu jobs on Kubernetes use dynamic allocation; enable it")
    spec = yaml.safe_load(_template().render(**context))
    if spec.get("apiVersion") != API_VERSION:  # the template is data; keep it honest
        raise ConfigError(f"{TEMPLATE}: apiVersion must be {API_VERSION}")
    return spec


def dump(spec: Mapping[str, Any]) -> str:
    """A spec as YAML, in a stable key order (what ``make render`` writes and the chart embeds)."""
    return yaml.safe_dump(dict(spec), sort_keys=True, default_flow_style=False, width=1000)

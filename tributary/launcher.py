"""The one launcher: "run job X with these args" -> the operator the active profile calls for.

DAG files call ``launch("ingest", args=[...])`` and never name a cluster manager. The profile (selected once by
``TRIBUTARY_PROFILE``) decides, through ``launcher.kind``, which builder makes the task:

- ``spark_submit`` (local, standalone, yarn): the Apache Spark provider's ``SparkSubmitOperator``
  (``tributary.spark_submit``: a job's refusal of its input fails the task without retries), with the master
  from the Airflow connection ``launcher.spark_conn_id`` and every Spark setting from
  ``tributary.spark_conf.spark_conf`` (the same dict the jobs' own session factory uses).
- ``spark_kubernetes``: ``tributary.kubernetes.build`` (SparkKubernetesOperator + SparkApplication).

``BUILDERS`` is the explicit table of both. Adding a cluster manager means adding a row to it, not editing DAGs.
Parse-time cost: a few small YAML files; no connections, no DB, no Spark.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from typing import Any, Callable, Sequence

from airflow.sdk import Asset

from tributary import kubernetes
from tributary.config import Profile, load_profile
from tributary.registry import Job, get_job
from tributary.spark_conf import spark_conf

# Unique per DAG run and per try, so a retry never collides with the attempt it replaces.
RUN_SUFFIX = "{{ ti.dag_id }}-{{ ti.run_id }}-{{ ti.try_number }}"

Builder = Callable[..., Any]


@lru_cache(maxsize=None)
def active_profile() -> Profile:
    """The profile chosen by the one switch (``TRIBUTARY_PROFILE``), loaded once per process."""
    return load_profile()


def dataset_asset(name: str) -> Asset:
    """The Airflow Asset for a logical dataset; stable across profiles."""
    return Asset(name=name, uri=f"tributary://datasets/{name}")


def defer_module(name: str) -> None:
    """Register ``name`` as a lazy module (the standard library's ``importlib.util.LazyLoader``): importing it costs
    nothing, and its code runs on the first attribute access. Nothing happens if it is already imported or absent.

    Used for the Kubernetes provider's ``kube_client``, which the Apache Spark provider's hook imports at module
    level but only uses for ``k8s://`` masters when a task runs: it pulls in the ``kubernetes`` and
    ``kubernetes_asyncio`` clients, most of a DAG file's parse time (benchmarks/README.md, P5)."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)


def _spark_submit(job: Job, task_id: str, args: Sequence[str], profile: Profile, **kwargs: Any):
    defer_module("airflow.providers.cncf.kubernetes.kube_client")
    from tributary.spark_submit import TributarySparkSubmitOperator

    return TributarySparkSubmitOperator(
        task_id=task_id,
        application=str(job.application),
        conn_id=profile.launcher["spark_conn_id"],
        deploy_mode=profile.spark["deploy_mode"],
        conf=spark_conf(profile, check_jars=False),  # checked where the job runs, by its session factory
        name=f"tributary-{job.name}-{RUN_SUFFIX}",
        application_args=["--profile", profile.name, *args],
        env_vars={"TRIBUTARY_PROFILE": profile.name},
        **kwargs,
    )


# launcher.kind -> the function that builds a job's task on it (conf/profiles/schema.json lists the same kinds).
BUILDERS: dict[str, Builder] = {"spark_submit": _spark_submit, "spark_kubernetes": kubernetes.build}


def launch(
    job_name: str,
    args: Sequence[str] = (),
    task_id: str | None = None,
    profile: Profile | None = None,
    **operator_kwargs: Any,
):
    """Build the task that runs ``job_name`` on the active profile's cluster manager.

    Inlets and outlets default to the job's datasets from ``conf/jobs.yaml``, as Assets.
    """
    profile = profile or active_profile()
    job = get_job(job_name)
    kind = profile.launcher["kind"]
    if kind not in BUILDERS:
        raise ValueError(f"profile '{profile.name}' has launcher.kind '{kind}'; registered: {sorted(BUILDERS)}")
    operator_kwargs.setdefault("inlets", [dataset_asset(d) for d in job.inputs.values()])
    operator_kwargs.setdefault("outlets", [dataset_asset(d) for d in job.outputs.values()])
    return BUILDERS[kind](job, task_id or job.name, list(args), profile, **operator_kwargs)

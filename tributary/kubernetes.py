"""The ``spark_kubernetes`` launcher builder: a job becomes a spark-operator SparkApplication.

``tributary.launcher.BUILDERS`` maps ``spark_kubernetes`` to ``build``; the DAG files are the same on every profile
and never name it.
The spec is ``tributary.sparkapp.render_application`` (template + profile + job registry), passed as
``template_spec``; ``make render`` writes the same specs, so what the DAG submits is what was validated offline.

- Batch jobs (``cpu``, ``gpu``): the cncf.kubernetes provider's ``SparkKubernetesOperator``. It creates the
  application, waits for the driver, streams the driver log into the task log (``get_logs``) and fails the task
  when the driver fails. The name already carries the run and the try, so the provider's random suffix is off.
  Finished applications stay for inspection until spark-operator's ``timeToLiveSeconds`` removes them;
  ``reattach_on_restart`` lets a restarted worker pick up a running driver instead of submitting twice, and
  ``on_finish_action="keep_pod"`` has the provider label every finished driver ``already_checked``, so that clearing a
  finished task runs it again (a new application) rather than reattaching to the kept driver of the earlier try.
- The streaming job: ``EnsureSparkApplicationOperator`` (tributary.streaming_operator), the long-running
  application's one owner: it creates it when absent, as a dependent of the chart's ConfigMap
  ``launcher.env_config_map`` (so ``helm uninstall`` stops it), and never starts a second one (one query per
  checkpoint).

Parse-time cost: the provider is imported inside the builder, only on Kubernetes profiles.
"""

from __future__ import annotations

from typing import Any, Sequence

from tributary.config import Profile
from tributary.registry import Job
from tributary.sparkapp import render_application


def operator_options(profile: Profile) -> dict[str, Any]:
    """The SparkKubernetesOperator arguments every batch job shares, from the profile's launcher section."""
    launcher = profile.launcher
    return {
        "namespace": launcher["namespace"],
        "kubernetes_conn_id": launcher["kubernetes_conn_id"],
        "get_logs": True,
        "delete_on_termination": False,
        # The driver pod stays (with its application) and is labelled already_checked once the task is done with it,
        # succeeded or failed: a cleared task then submits a new application instead of reattaching to the old one.
        "on_finish_action": "keep_pod",
        "reattach_on_restart": True,
        "startup_timeout_seconds": int(launcher["startup_timeout_seconds"]),
        "random_name_suffix": False,
        "do_xcom_push": False,
    }


def build(job: Job, task_id: str, args: Sequence[str], profile: Profile, **kwargs: Any):
    """The task that runs ``job`` as a SparkApplication: the stream's ensure-operator, or SparkKubernetesOperator."""
    spec = render_application(job, profile, args)
    if job.workload_class.long_running:
        from tributary.streaming_operator import EnsureSparkApplicationOperator

        return EnsureSparkApplicationOperator(
            task_id=task_id,
            namespace=profile.launcher["namespace"],
            kubernetes_conn_id=profile.launcher["kubernetes_conn_id"],
            template_spec=spec,
            owner_config_map=profile.launcher["env_config_map"],
            **kwargs,
        )
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator

    return SparkKubernetesOperator(task_id=task_id, template_spec=spec, **operator_options(profile), **kwargs)

"""The one SparkSession factory, driven by the profile.

It applies ``tributary.spark_conf.spark_conf(profile)``, the single source of Spark settings, which the launcher
also passes as ``--conf`` when it runs ``spark-submit``. Under spark-submit what was submitted wins (see
``build_session``).
"""

from __future__ import annotations

import os
from typing import Mapping

from tributary.config import Profile
from tributary.spark_conf import local_event_log_dir, local_lineage_file, spark_conf

def submitted_conf_keys() -> set[str]:
    """The Spark settings ``spark-submit`` gave this driver (``--conf``, spark-defaults, a SparkApplication's
    ``sparkConf``); empty when Python started Spark itself. Under spark-submit the JVM is already up, and its conf
    is in the system properties that ``SparkConf()`` loads."""
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # set by spark-submit's PythonRunner only
        return set()
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    return {key for key, _ in SparkConf().getAll()}


def build_session(profile: Profile, app_name: str, extra_conf: Mapping[str, str] | None = None):
    """Get or create the SparkSession for ``profile``.

    Under ``spark-submit``, what it was given wins over the profile's defaults: on Kubernetes the SparkApplication
    sets per-workload conf (scoring's static GPU executors with dynamic allocation off), which the profile-wide
    ``resources.dynamic_allocation`` must not switch back on. ``extra_conf`` (the job's own needs) always applies.
    """
    from pyspark.sql import SparkSession  # heavy import kept out of module import time

    conf = {**spark_conf(profile), **(extra_conf or {})}
    # Outside spark-submit, pyspark picks the worker interpreter from PYSPARK_PYTHON (else `python3` on PATH) and
    # ignores spark.pyspark.python; pin it so workers run the same environment as the driver.
    os.environ.setdefault("PYSPARK_PYTHON", conf["spark.pyspark.python"])
    if (events := local_event_log_dir(conf)) is not None:
        events.mkdir(parents=True, exist_ok=True)
    if (lineage := local_lineage_file(conf)) is not None:
        lineage.parent.mkdir(parents=True, exist_ok=True)
    submitted = submitted_conf_keys() - set(extra_conf or {})
    builder = SparkSession.builder.appName(app_name)
    if "spark.master" not in submitted:
        builder = builder.master(profile.spark_master)
    for key, value in conf.items():
        if key not in submitted:
            builder = builder.config(key, value)
    return builder.getOrCreate()

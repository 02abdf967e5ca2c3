"""The one SparkSession factory, driven by the profile.

``spark_conf(profile)`` is the single source of Spark settings. The session builder uses it when a job runs
under plain ``python``; the launcher passes the same dict as ``--conf`` when it runs ``spark-submit``. It holds:

- Delta's two confs;
- the pinned jars (``make jars``) on the driver and executor class path, so nothing is downloaded at run time;
- resources and dynamic allocation from the profile;
- the profile's own ``spark.conf``, which wins.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path
from typing import Mapping

from spark_jobs.config import ConfigError, Profile

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
REQUIRED_JAR_PREFIXES = ("delta-spark_", "delta-storage-")


def jar_classpath(profile: Profile, check: bool = True) -> str:
    """Class path for the pinned jars; fails fast when ``make jars`` has not been run.

    ``check=False`` is for specs rendered here but run elsewhere (a container image holds the jars).
    """
    jars_dir = Path(profile.spark["jars_dir"])
    if check:
        found = [Path(p).name for p in glob.glob(str(jars_dir / "*.jar"))]
        missing = [p for p in REQUIRED_JAR_PREFIXES if not any(n.startswith(p) for n in found)]
        if missing:
            raise ConfigError(
                f"Delta jars not found in {jars_dir} (missing {missing}); run `make jars` "
                "or set TRIBUTARY_JARS_DIR to a directory holding the pinned jars"
            )
    return f"{jars_dir}/*"


def spark_conf(profile: Profile, check_jars: bool = True) -> dict[str, str]:
    """Every Spark setting for ``profile``, as strings, in the order they are applied."""
    res = profile.resources
    conf: dict[str, str] = dict(DELTA_CONF)
    classpath = jar_classpath(profile, check=check_jars)
    conf["spark.driver.extraClassPath"] = classpath
    conf["spark.executor.extraClassPath"] = classpath
    conf["spark.driver.memory"] = str(res["driver_memory"])
    conf["spark.executor.memory"] = str(res["executor_memory"])
    conf["spark.executor.cores"] = str(res["executor_cores"])
    python = os.environ.get("PYSPARK_PYTHON", sys.executable)
    conf["spark.pyspark.python"] = python
    conf["spark.pyspark.driver.python"] = python
    dyn = res["dynamic_allocation"]
    if dyn["enabled"]:
        conf["spark.dynamicAllocation.enabled"] = "true"
        conf["spark.dynamicAllocation.minExecutors"] = str(dyn["min_executors"])
        conf["spark.dynamicAllocation.maxExecutors"] = str(dyn["max_executors"])
        conf["spark.dynamicAllocation.initialExecutors"] = str(dyn["initial_executors"])
    conf.update({k: str(v) for k, v in profile.spark["conf"].items()})
    return conf


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
    submitted = submitted_conf_keys() - set(extra_conf or {})
    builder = SparkSession.builder.appName(app_name)
    if "spark.master" not in submitted:
        builder = builder.master(profile.spark_master)
    for key, value in conf.items():
        if key not in submitted:
            builder = builder.config(key, value)
    return builder.getOrCreate()

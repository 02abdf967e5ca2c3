"""Every Spark setting a profile implies, as one dict: ``spark_conf(profile)``.

The jobs' session factory (spark_jobs/session.py) applies it when a job runs under plain ``python``; the launcher
passes the same dict as ``--conf`` to ``spark-submit``, and the SparkApplication renderer puts it in ``sparkConf``.
It holds:

- Delta's two confs;
- the pinned jars (``make jars``) on the driver and executor class path, so nothing is downloaded at run time;
- resources and dynamic allocation from the profile;
- the profile's own ``spark.conf``, which wins; a value that expands to nothing (``${VAR:-}`` with ``VAR`` unset)
  is not set, so a setting can be switched on from the environment (_base.yaml's JVM options).

No Spark import: the DAGs and the renderer use it where pyspark is not installed.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from tributary.config import ConfigError, Profile

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
    conf.update({k: str(v) for k, v in profile.spark["conf"].items() if str(v) != ""})
    return conf


def local_event_log_dir(conf: dict[str, str]) -> Path | None:
    """The directory on this machine an enabled event log goes to (``spark.eventLog.dir`` a ``file:`` URI or a
    plain path), or None (logging off, or a bucket). Spark does not create it: a missing one fails the SparkContext
    at start, so the session factory and the History Server's starter create it first."""
    if conf.get("spark.eventLog.enabled", "false").lower() != "true":
        return None
    where = urlparse(conf.get("spark.eventLog.dir", "file:/tmp/spark-events"))
    return Path(where.path) if where.scheme in ("", "file") else None


OPENLINEAGE_LISTENER = "io.openlineage.spark.agent.OpenLineageSparkListener"


def openlineage_listener_on(conf: Mapping[str, str]) -> bool:
    """Whether ``conf`` turns on Spark's OpenLineage listener (``spark.extraListeners``): where it is on, the jobs
    emit their own version events too (``spark_jobs.lineage``)."""
    return OPENLINEAGE_LISTENER in [name.strip() for name in conf.get("spark.extraListeners", "").split(",")]


def local_lineage_file(conf: Mapping[str, str]) -> Path | None:
    """The file on this machine Spark's OpenLineage listener appends its events to (the listener on, with a ``file``
    transport), or None. Airflow's events go to ``airflow.jsonl`` in the same directory (``local_env``); the
    session factory creates the directory, which the listener does not."""
    if not openlineage_listener_on(conf) or conf.get("spark.openlineage.transport.type") != "file":
        return None
    return Path(urlparse(conf["spark.openlineage.transport.location"]).path)

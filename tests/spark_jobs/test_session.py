"""build_session under spark-submit: what spark-submit was given wins over the profile's defaults (on Kubernetes,
the SparkApplication's per-workload conf), while a job's extra conf still applies; outside spark-submit the profile's
conf is applied; the profile's event log directory is created before Spark needs it. Runs the real spark-submit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from spark_jobs.session import submitted_conf_keys
from tributary.config import REPO_ROOT, load_profile
from tributary.spark_conf import spark_conf

from tributary.local_env import spark_home

PROBE = '''
import json, sys
sys.path.insert(0, {root!r})
from spark_jobs.session import build_session
from tributary.config import load_profile
spark = build_session(load_profile("local"), "probe", {{"spark.sql.shuffle.partitions": "7"}})
conf = spark.sparkContext.getConf()
print("PROBE " + json.dumps({{k: conf.get(k, None) for k in
      ("spark.executor.memory", "spark.sql.shuffle.partitions", "spark.driver.extraClassPath")}}))
spark.stop()
'''


def test_spark_submit_conf_wins_over_the_profile_and_extra_conf_still_applies(tmp_path: Path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE.format(root=str(REPO_ROOT)))
    events = tmp_path / "spark-events"  # not there yet: a SparkContext logging to a missing directory fails
    env = {**os.environ, "SPARK_HOME": spark_home(), "PYSPARK_PYTHON": sys.executable,
           "TRIBUTARY_SPARK_EVENTS": events.as_uri()}
    profile_conf = spark_conf(load_profile("local"))
    assert profile_conf["spark.executor.memory"] != "777m"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]",
         "--conf", "spark.executor.memory=777m", "--conf", "spark.sql.shuffle.partitions=3",
         "--driver-class-path", profile_conf["spark.driver.extraClassPath"], str(probe)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("PROBE "))[6:])
    assert seen["spark.executor.memory"] == "777m"  # submitted, kept
    assert seen["spark.sql.shuffle.partitions"] == "7"  # the job's extra conf, applied
    assert seen["spark.driver.extraClassPath"] == profile_conf["spark.driver.extraClassPath"]
    logs = list(events.iterdir())  # the local profile's event log, in the directory the session factory made
    assert [log.name.startswith("eventlog_v2_local-") for log in logs] == [True], logs


def test_outside_spark_submit_nothing_counts_as_submitted(spark):
    # pytest started Spark itself (the session fixture): the profile's conf is what applies.
    assert submitted_conf_keys() == set()

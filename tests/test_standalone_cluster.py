"""The standalone profile for real: a master and a worker on loopback (scripts/standalone_cluster.py), the features
job submitted to it with spark-submit through its normal entrypoint and the launcher's conf, dynamic allocation on.
Its output must equal the local run's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from tests import event_log
from tests.pipeline_data import load_script
from tributary.config import REPO_ROOT, load_profile
from tributary.registry import get_job
from tributary.spark_conf import spark_conf

from tributary.local_env import spark_home

standalone_cluster = load_script("standalone_cluster")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = standalone_cluster.start(tmp_path_factory.mktemp("standalone"), port=17177, web_port=18190, cores=2,
                                 memory="2g")
    yield c
    c.stop()


def spark_submit(job: str, profile_name: str, env: dict[str, str], *args: str,
                 extra_conf: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """spark-submit a registered job exactly as the spark_submit launcher does: its file, the profile's conf."""
    profile = load_profile(profile_name, env=env)
    cmd = [str(Path(sys.executable).parent / "spark-submit"), "--master", profile.spark_master]
    for key, value in {**spark_conf(profile), **(extra_conf or {})}.items():
        cmd += ["--conf", f"{key}={value}"]
    cmd += [str(get_job(job).application), "--profile", profile_name, *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_features_on_standalone_equals_local(cluster, spark, tributary_home, monkeypatch, tmp_path):
    from spark_jobs import features, io
    from tests.pipeline_data import land_and_ingest

    monkeypatch.setenv("SPARK_MASTER_URL", cluster.url)
    local = load_profile("local")
    land_and_ingest(rows=600, seed=3)

    env = dict(os.environ, SPARK_HOME=spark_home())
    events_dir = tmp_path / "events"
    events_dir.mkdir()
    done = spark_submit("features", "standalone", env, extra_conf={
        "spark.eventLog.enabled": "true", "spark.eventLog.dir": events_dir.as_uri(), "spark.eventLog.compress": "false"})
    assert done.returncode == 0, done.stderr[-4000:]
    # Both profiles resolve the same lake under TRIBUTARY_HOME; collect now, before the local run overwrites it.
    standalone_rows = io.read_table(spark, local.catalog, "features_card").collect()
    # What the application really ran with, from its event log: dynamic allocation with shuffle tracking, on the
    # cluster's master, and executors granted by the allocation manager.
    ((_, events),) = event_log.applications(events_dir).items()
    props = event_log.properties(events)
    assert props["spark.master"] == cluster.url
    assert props["spark.dynamicAllocation.enabled"] == "true"
    assert props["spark.dynamicAllocation.shuffleTracking.enabled"] == "true"
    added = [e for e in events if e["Event"] == "SparkListenerExecutorAdded"]
    assert len(added) >= 1
    # `make scale`'s shuffle reader (benchmarks/scale.py) on this real log: per stage, what its tasks wrote equals
    # what Spark's own stage totals say, largest first, and the features job's window shuffle is there.
    from benchmarks.scale import shuffles

    stages = shuffles(events_dir)
    written = "internal.metrics.shuffle.write.bytesWritten"
    totals = {e["Stage Info"]["Stage ID"]: acc["Value"] for e in events if e["Event"] == "SparkListenerStageCompleted"
              for acc in e["Stage Info"].get("Accumulables", []) if acc["Name"] == written}
    assert stages and {s["stage"]: s["bytes"] for s in stages} == {k: v for k, v in totals.items() if v}
    assert [s["bytes"] for s in stages] == sorted((s["bytes"] for s in stages), reverse=True)
    assert all(s["application"].startswith("tributary-features") and s["records"] > 0 for s in stages)
    apps = cluster.status()["completedapps"] + cluster.status()["activeapps"]
    assert any(a["name"].startswith("tributary-features") for a in apps), [a["name"] for a in apps]

    features.main(["--profile", "local"])
    local_rows = io.read_table(spark, local.catalog, "features_card").collect()
    assert len(local_rows) > 0
    assertDataFrameEqual(standalone_rows, local_rows)

"""scripts/yarn_cluster.py without starting daemons: the configuration it writes, the client environment the yarn
profile runs with, and the error without a running cluster. tests/test_pipeline_e2e.py runs the real YARN."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tributary.config import load_profile
from tributary.spark_conf import spark_conf
from tests.pipeline_data import load_script

yarn_cluster = load_script("yarn_cluster")

PORTS = {name: 40000 + i for i, name in enumerate(("rm", "scheduler", "tracker", "admin", "web", "nm", "localizer",
                                                   "nm_web", "shuffle"))}


def site(path: Path) -> dict[str, str]:
    return {p.findtext("name"): p.findtext("value") for p in ET.parse(path).getroot().iter("property")}


def test_conf_runs_spark_shuffle_and_points_spark_at_the_cluster(tmp_path):
    shuffle = tmp_path / "shuffle-jars"
    yarn_cluster.write_conf(tmp_path, PORTS, memory_mb=4096, vcores=4, shuffle=shuffle)
    yarn = site(tmp_path / "conf" / "yarn-site.xml")
    assert yarn["yarn.resourcemanager.address"] == "127.0.0.1:40000"
    assert yarn["yarn.nodemanager.aux-services"] == "spark_shuffle"
    assert yarn["yarn.nodemanager.aux-services.spark_shuffle.class"] == "dev.tributary.yarn.SparkShuffleService"
    assert yarn["yarn.nodemanager.aux-services.spark_shuffle.classpath"] == f"{shuffle}/*"
    assert yarn["spark.shuffle.service.port"] == "40008"
    assert yarn["yarn.nodemanager.resource.memory-mb"] == "4096"
    assert site(tmp_path / "conf" / "core-site.xml")["fs.defaultFS"] == "file:///"
    assert site(tmp_path / "conf" / "capacity-scheduler.xml")["yarn.scheduler.capacity.root.queues"] == "default"
    # The executors ask the shuffle service on the port the NodeManager serves it on; Spark's jars are local.
    defaults = dict(line.split(" ", 1) for line in (tmp_path / "spark-conf" / "spark-defaults.conf").read_text()
                    .splitlines())
    assert defaults["spark.shuffle.service.port"] == "40008"
    jars = Path(defaults["spark.yarn.jars"].removeprefix("local:").removesuffix("/*"))
    assert any(jars.glob("spark-yarn_*.jar")), jars
    assert defaults["spark.eventLog.dir"] == (tmp_path / "spark-events").as_uri()
    assert (tmp_path / "spark-conf" / "log4j2.properties").is_file()


def test_client_env_makes_the_yarn_profile_fit_one_small_node(tmp_path):
    yarn = yarn_cluster.Yarn(state=str(tmp_path), rm_address="127.0.0.1:1", web_url="http://127.0.0.1:2",
                             shuffle_port=3, memory_mb=4096, vcores=4)
    env = yarn.client_env(tmp_path / "home")
    assert env["HADOOP_CONF_DIR"] == str(tmp_path / "conf")
    assert env["SPARK_CONF_DIR"] == str(tmp_path / "spark-conf")
    profile = load_profile("yarn", env=env)
    assert profile.catalog.uri("bronze_transactions") == f"{tmp_path}/home/var/lake/bronze/transactions"
    conf = spark_conf(profile, check_jars=False)
    assert conf["spark.executor.memory"] == "1g" and conf["spark.executor.cores"] == "1"
    # An application master (1 GiB) and two executors of 1 GiB + overhead fit in 4 GiB.
    assert conf["spark.dynamicAllocation.maxExecutors"] == "2"
    assert conf["spark.dynamicAllocation.minExecutors"] == "0"
    assert conf["spark.shuffle.service.enabled"] == "true"
    assert conf["spark.dynamicAllocation.executorIdleTimeout"] == "10s"
    assert conf["spark.databricks.delta.snapshotPartitions"] == "2"
    # Without that environment, the profile keeps a production cluster's sizes.
    production = spark_conf(load_profile("yarn", env={"TRIBUTARY_HOME": str(tmp_path)}), check_jars=False)
    assert production["spark.executor.memory"] == "8g"
    assert production["spark.dynamicAllocation.maxExecutors"] == "50"
    assert production["spark.databricks.delta.snapshotPartitions"] == "50"


def test_run_without_a_cluster_says_how_to_start_one(tmp_path):
    with pytest.raises(SystemExit, match="make yarn-up"):
        yarn_cluster.running(tmp_path)

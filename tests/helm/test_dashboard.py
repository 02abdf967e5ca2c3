"""helm/tributary/dashboards/tributary-pipeline.json, the Grafana dashboard the chart ships (metrics.grafanaDashboard):
its shape as Grafana loads it, every query parsed by a real PromQL parser, and every Spark metric it queries served
by a real Spark driver running with the Kubernetes profiles' metrics settings, a batch job and the stream's query in
it. Its Airflow and MLflow metrics are checked against `make up`'s exporters (tests/services/test_metrics.py).

No Grafana or Prometheus runs here: Grafana's variables are replaced the way Grafana does before it sends a query,
and the driver's /metrics/prometheus is read with Prometheus's own text-format parser (prometheus_client)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.grafana import PLATFORM, SPARK, charted, exposed, load, metric_names, parse, queries
from tributary.config import REPO_ROOT, load_profile
from tributary.registry import load_jobs
from tributary.spark_conf import spark_conf

METRICS_KEYS = ("spark.metrics.", "spark.ui.prometheus.", "spark.sql.streaming.metricsEnabled")


def test_the_dashboard_has_the_shape_grafana_loads():
    dashboard = load()
    assert dashboard["uid"] == "tributary-pipeline" and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    # The job picker offers exactly the registry's Spark jobs: a job renamed in conf/jobs.yaml fails here.
    assert [o["value"] for o in variables["job"]["options"][1:]] == list(load_jobs())
    assert variables["job"]["allValue"] == "|".join(load_jobs())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), ids
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {(grid["y"] + dy, grid["x"] + dx) for dy in range(grid["h"]) for dx in range(grid["w"])}
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        if panel["type"] == "row":
            continue
        assert panel["type"] == "timeseries" and panel["description"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        # Every query is scoped to a namespace: the jobs' (Spark drivers) or the platform's (Airflow, MLflow).
        assert all(SPARK in target["expr"] or PLATFORM in target["expr"] for target in panel["targets"]), panel["title"]


def test_every_query_parses_as_promql_and_a_broken_one_does_not():
    parsed = {(title, expr): parse(expr) for title, expr in queries(load())}
    assert len(parsed) >= 10 and all(metric_names(tree) for tree in parsed.values())
    with pytest.raises(ValueError, match="unclosed left parenthesis"):
        parse('sum by (pod) (rate(metrics_tributary_driver_appStatus_jobs_failedJobs_Count[$__rate_interval])')
    with pytest.raises(ValueError, match="unknown function"):
        parse("rat(metrics_tributary_driver_appStatus_jobs_failedJobs_Count[1m])")  # no such function


PROBE = '''
import sys, time, urllib.request
sys.path.insert(0, {root!r})
from pyspark.sql import functions as F
from spark_jobs.session import build_session
from spark_jobs.stream import QUERY_NAME
from tributary.config import load_profile
spark = build_session(load_profile("local"), "tributary-probe", {conf!r})
spark.range(20000).groupBy((F.col("id") % 7).alias("k")).count().collect()  # a job with a shuffle: stages, tasks
query = (spark.readStream.format("rate").option("rowsPerSecond", 50).load()
         .withWatermark("timestamp", "10 seconds").groupBy(F.window("timestamp", "5 seconds")).count()
         .writeStream.queryName(QUERY_NAME).outputMode("update").format("noop").trigger(processingTime="1 second")
         .start())
deadline = time.monotonic() + 120
while time.monotonic() < deadline and (query.lastProgress or {{}}).get("batchId", -1) < 2:
    time.sleep(1)
with urllib.request.urlopen("http://127.0.0.1:{port}/metrics/prometheus", timeout=30) as resp:
    open({out!r}, "wb").write(resp.read())
query.stop()
spark.stop()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> set[str]:
    """The metric names a Spark driver serves at /metrics/prometheus with the kind profile's metrics settings (the
    ones every Kubernetes profile shares), after a shuffle job and a few batches of a stateful stream named as
    fraud_stream's query is: Spark registers a source's metrics only once it runs."""
    tmp = tmp_path_factory.mktemp("metrics")
    port = _free_port()
    conf = {k: v for k, v in spark_conf(load_profile("kind"), check_jars=False).items() if k.startswith(METRICS_KEYS)}
    assert conf["spark.metrics.conf.*.sink.prometheusServlet.path"] == "/metrics/prometheus"
    conf |= {"spark.ui.enabled": "true", "spark.ui.port": str(port), "spark.eventLog.enabled": "false"}
    probe, out = tmp / "probe.py", tmp / "metrics.txt"
    probe.write_text(PROBE.format(root=str(REPO_ROOT), conf=conf, port=port, out=str(out)))
    proc = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return exposed(out.read_text())


def test_every_spark_metric_the_dashboard_queries_is_served_by_a_spark_driver(served):
    wanted = charted(SPARK)
    assert len(wanted) >= 10, wanted
    missing = {name: title for name, title in wanted.items() if name not in served}
    assert not missing, f"queried by the dashboard, not served by the driver: {missing}"
    # The probe is not vacuous: the stream's rates and the job counters are among what it read.
    assert {"metrics_tributary_driver_appStatus_jobs_succeededJobs_Count",
            "metrics_tributary_driver_spark_streaming_tributary_stream_scoring_inputRate_total_Value"} <= served

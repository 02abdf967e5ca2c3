"""The live cluster of k8s/cluster/cluster.py, with the images pushed and the chart installed, for tests/cluster.

One cluster for the whole package, in order (the files are numbered): the cluster itself, the chart, one fraud_pipeline
run through Airflow on the host with its faults (tests/cluster/pipeline_run.py, the fixture ``pipeline``), which
first has the fraud_stream task create the stream, that stream under driver faults, and last the uninstall. If a
cluster is already running (a developer's `make cluster-up`), it is used and left running; otherwise the package
starts it and always stops it, by PID, also when a test fails. `make test` builds the binaries and the images first,
in the background half that runs this package (TEST_BACKGROUND_PREREQS, scripts/test.sh). The cluster's Spark JVMs
compile with C1 only, as the tests' others (tests.SPARK_JAVA_OPTIONS).

Figures for the closing notes (durations, time to Ready, each application's run time, peak memory) are collected
into var/cluster-test-report.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tributary.config import REPO_ROOT
from tests.cluster.live import REPORT, Live, run
from tests import SPARK_JAVA_OPTIONS
from tests.cluster.pipeline_run import PipelineRun, run_pipeline

CLUSTER_PY = REPO_ROOT / "k8s" / "cluster" / "cluster.py"
IMAGES_SH = REPO_ROOT / "k8s" / "cluster" / "images.sh"
INSTALL_SH = REPO_ROOT / "k8s" / "install.sh"


def _cluster(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(CLUSTER_PY), *args], timeout=timeout)


@pytest.fixture(scope="package")
def cluster():
    if os.geteuid() != 0:
        pytest.fail("tests/cluster need root: the local cluster runs kubelets and containerd (sudo make test)")
    already = _cluster("status").returncode == 0
    t0 = time.monotonic()
    if not already:
        up = _cluster("up")
        if up.returncode != 0:
            _cluster("down")
            pytest.fail(f"cluster.py up failed:\n{up.stderr[-4000:]}")
    live = Live(report={"cluster_up_s": round(time.monotonic() - t0, 1), "reused_running_cluster": already})
    if not already:
        up_json = REPO_ROOT / "var" / "cluster" / "up.json"
        live.report["cluster_timings_s"] = json.loads(up_json.read_text())["timings_s"]
    try:
        yield live
    finally:
        live.report["peak_memory_used_mib"] = live.peak_memory_mib
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(live.report, indent=2, default=str))
        if not already:
            down = _cluster("down")
            assert down.returncode == 0, down.stderr[-4000:]


@pytest.fixture(scope="package")
def platform(cluster: Live) -> Live:
    """The images in the cluster's registry and on the worker nodes, and helm/tributary installed (kind values)."""
    t0 = time.monotonic()
    push = run(["bash", str(IMAGES_SH), "push"], timeout=1800)
    assert push.returncode == 0, f"images.sh push failed (run `make images` first):\n{push.stderr[-3000:]}"
    cluster.report["images_push_s"] = round(time.monotonic() - t0, 1)
    render = run([sys.executable, str(REPO_ROOT / "scripts" / "render_k8s.py"), "--profile", "kind",
                  "--no-sync-docs"], timeout=600, env=SPARK_JAVA_OPTIONS)
    assert render.returncode == 0, render.stderr[-3000:]
    t0 = time.monotonic()
    install = cluster.install()
    assert install.returncode == 0, f"install.sh failed:\n{install.stdout[-2000:]}\n{install.stderr[-4000:]}"
    cluster.report["chart_install_to_ready_s"] = round(time.monotonic() - t0, 1)
    cluster.sample_memory()
    return cluster


@pytest.fixture(scope="package")
def pipeline(platform: Live, tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """fraud_stream's task (it creates the stream) and one fraud_pipeline run through Airflow's REST API with the
    faults of pipeline_run.py; the run promotes the champion the stream waits for."""
    return run_pipeline(platform, tmp_path_factory.mktemp("airflow"))

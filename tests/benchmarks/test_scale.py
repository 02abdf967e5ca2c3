"""``make scale``'s instruments on real processes: the per-kind memory sampler and the command's own checks. Its
shuffle reader runs on a real event log in tests/test_standalone_cluster.py. The scale run itself (a million rows,
many minutes) is run by hand; its result is committed under benchmarks/results/scale/."""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks.scale import KINDS, ProcessMemory, kind_of
from tributary.config import REPO_ROOT

HOLD = "import sys, time; block = b'x' * ({mib} << 20); print('ready', flush=True); time.sleep(30)"


def test_each_process_is_counted_under_its_kind():
    assert kind_of(["/usr/lib/jvm/java-17/bin/java", "-cp", "x", "org.apache.spark.deploy.SparkSubmit"]) == KINDS[0]
    assert kind_of(["python3", "/work/spark_jobs/features.py", "--profile", "local"]) == KINDS[1]
    assert kind_of(["python3", "-m", "pyspark.daemon"]) == KINDS[2]
    assert kind_of(["/venv/bin/spark-submit", "/work/spark_jobs/features.py"]) == KINDS[3]  # the launcher script
    assert kind_of(["python", "-m", "airflow", "dags", "test", "fraud_pipeline"]) == KINDS[3]


def test_the_sampler_sums_the_resident_memory_of_every_process_under_its_root_by_kind():
    # A shell with two children: one that looks like Spark's Python worker daemon (its argv names it) holding 200 MiB,
    # one ordinary process holding 100 MiB; the sampler's root is the shell, so only they count.
    script = (f"{sys.executable} -c \"{HOLD.format(mib=200)}\" pyspark.daemon & "
              f"{sys.executable} -c \"{HOLD.format(mib=100)}\" & wait")
    shell = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert [shell.stdout.readline().strip() for _ in range(2)] == ["ready", "ready"]
        memory = ProcessMemory(root=shell.pid, interval=0.2)
        memory.start()
        time.sleep(1)
        peaks = memory.stop()
    finally:
        subprocess.run(["pkill", "-P", str(shell.pid)], check=False)
        shell.kill()
        shell.wait()
    assert peaks["samples"] >= 2
    at_once = peaks["sum_at_one_moment_mib"]
    assert 200 <= at_once["Python workers"] < 300, peaks
    assert 100 <= at_once["Airflow and the rest"] < 200, peaks  # the 100 MiB child and the shell
    assert at_once["spark JVMs"] == at_once["job drivers (Python)"] == 0, peaks
    assert peaks["all_processes_mib"] >= 300 and peaks["largest_process_mib"]["Python workers"] >= 200, peaks


def test_the_command_refuses_too_few_rows():
    done = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--rows", "100"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--rows must be at least 3000" in done.stderr

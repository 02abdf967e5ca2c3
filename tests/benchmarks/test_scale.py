"""``make scale``'s instruments on real processes: the per-kind memory sampler, where its environment makes Spark
write event logs, and the command's own checks. Its shuffle reader runs on a real event log of a standalone cluster
in tests/test_standalone_cluster.py too. The scale run itself (a million rows, many minutes) is run by hand; its
result is committed under benchmarks/results/scale/."""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks.make_run import home_env
from benchmarks.scale import KINDS, ProcessMemory, events_dir, kind_of, run_env, shuffles
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


SHUFFLE_JOB = """
from spark_jobs.session import build_session
from tributary.config import load_profile
spark = build_session(load_profile("local"), "scale-env-probe")
spark.range(1000).selectExpr("id % 7 AS k").groupBy("k").count().collect()
spark.stop()
"""


def test_make_scale_environment_leaves_each_applications_shuffles_where_it_reads_them(tmp_path):
    # A Spark application started the way make run's jobs get their conf (the local profile through the session
    # factory), in make scale's environment: its event log lands uncompressed where the shuffle reader looks, even
    # though the profile sets spark.eventLog.dir itself (a profile's conf wins over spark-defaults.conf).
    env = home_env(tmp_path, run_env(tmp_path))
    done = subprocess.run([sys.executable, "-c", SHUFFLE_JOB], env=env, cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    stages = shuffles(events_dir(tmp_path))
    assert stages and {s["application"] for s in stages} == {"scale-env-probe"}, stages
    assert stages[0]["bytes"] > 0 and stages[0]["records"] >= 7, stages

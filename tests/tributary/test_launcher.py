"""The launcher turns "run job X" into the profile's operator, with the jobs' own Spark conf."""

from __future__ import annotations

import sys

import pytest

from tributary.config import REPO_ROOT, ConfigError, load_profile
from tributary.registry import load_jobs
from tributary.spark_conf import spark_conf

from tributary import launcher
from tributary.local_env import airflow_env, spark_connection


@pytest.mark.parametrize("profile_name", ["local", "standalone", "yarn"])
def test_spark_submit_profiles_build_spark_submit_operators(profile_name):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    profile = load_profile(profile_name)
    op = launcher.launch("features", args=["--x=1"], profile=profile)
    assert isinstance(op, SparkSubmitOperator)
    assert op.application == str(REPO_ROOT / "spark_jobs" / "features.py")
    assert op.application_args == ["--profile", profile_name, "--x=1"]
    assert op.conf == spark_conf(profile, check_jars=False)
    assert op._conn_id == profile.launcher["spark_conn_id"]
    assert {a.name for a in op.outlets} == {"features_card"}


def test_names_are_unique_per_run_and_try():
    op = launcher.launch("ingest", profile=load_profile("local"))
    assert "{{ ti.run_id }}" in op.name and "{{ ti.try_number }}" in op.name


def test_every_registered_job_has_an_entrypoint_file():
    for job in load_jobs().values():
        assert job.application.is_file(), job


def test_workload_classes_come_from_one_table_and_a_typo_fails_at_load(tmp_path):
    jobs = load_jobs()
    assert [n for n, j in jobs.items() if j.workload_class.gpu] == ["score"]
    assert [n for n, j in jobs.items() if j.workload_class.long_running] == ["stream"]
    conf = REPO_ROOT / "conf"
    (tmp_path / "jobs.yaml").write_text((conf / "jobs.yaml").read_text())
    typo = (conf / "workloads.yaml").read_text().replace("restart_policy: Always", "restart_polcy: Always")
    (tmp_path / "workloads.yaml").write_text(typo)
    expected = r"'streaming' needs exactly .* missing \['restart_policy'\], unknown \['restart_polcy'\]"
    with pytest.raises(ConfigError, match=expected):
        load_jobs(tmp_path)
    not_a_flag = (conf / "workloads.yaml").read_text().replace("gpu: true", "gpu: yes please")
    (tmp_path / "workloads.yaml").write_text(not_a_flag)
    with pytest.raises(ConfigError, match="are true or false"):
        load_jobs(tmp_path)
    (tmp_path / "workloads.yaml").write_text((conf / "workloads.yaml").read_text())
    (tmp_path / "jobs.yaml").write_text((conf / "jobs.yaml").read_text().replace("workload: gpu", "workload: tpu"))
    with pytest.raises(ConfigError, match=r"job 'score' workload must be one of \['cpu', 'gpu', 'streaming'\]"):
        load_jobs(tmp_path)


def test_unknown_job_and_launcher_kind_fail_clearly():
    with pytest.raises(Exception, match="unknown job 'ingset'"):
        launcher.launch("ingset", profile=load_profile("local"))
    profile = load_profile("local")
    bad = type(profile)(name=profile.name, raw={**profile.raw, "launcher": {"kind": "nope"}}, catalog=profile.catalog)
    with pytest.raises(ValueError, match="launcher.kind 'nope'"):
        launcher.launch("ingest", profile=bad)


def test_connection_comes_from_the_profile(tmp_path):
    profile = load_profile("standalone", env={"SPARK_MASTER_URL": "spark://127.0.0.1:7999"})
    assert spark_connection(profile)["host"] == "spark://127.0.0.1:7999"
    env = airflow_env(profile, tmp_path / "af", base={"PATH": "/usr/bin"})
    assert "spark://127.0.0.1:7999" in env["AIRFLOW_CONN_TRIBUTARY_SPARK"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("/af/airflow.db")


def test_parsing_the_dags_on_spark_submit_profiles_imports_no_kubernetes_client(tmp_path):
    """The Apache Spark provider's hook imports the Kubernetes clients at module level; the launcher defers them, so
    a fresh process parsing both DAGs (as the DAG processor's child does) loads neither client, nor Spark, torch or
    MLflow, and the deferred module still loads in full when a k8s:// task touches it."""
    import json
    import os
    import subprocess

    code = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(sys.argv[1], load_op_links=False)
heavy = [m for m in ("kubernetes", "kubernetes_asyncio", "pyspark", "torch", "mlflow") if m in sys.modules]
from airflow.providers.cncf.kubernetes import kube_client
loaded = callable(kube_client.get_kube_client) and "kubernetes" in sys.modules
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": list(bag.import_errors), "heavy": heavy, "loaded": loaded}))
"""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "TRIBUTARY_PROFILE": "local", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", code, str(REPO_ROOT / "dags")], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"dags": ["fraud_pipeline", "fraud_stream"], "errors": [], "heavy": [], "loaded": True}


def test_defer_module_leaves_imported_and_absent_modules_alone():
    import json as already_imported

    launcher.defer_module("json")
    assert sys.modules["json"] is already_imported
    launcher.defer_module("tributary_no_such_module")
    assert "tributary_no_such_module" not in sys.modules


@pytest.mark.parametrize(("status", "retried"), [(2, False), (1, True)])
def test_a_job_that_refuses_its_input_fails_its_task_without_retries(tmp_path, monkeypatch, status, retried):
    """A real spark-submit (local profile) of a driver that exits as ``spark_jobs.cli.fail`` does: exit status
    ``NO_RETRY_EXIT`` fails the task at once (AirflowFailException), any other failure stays retryable."""
    import json

    from airflow.exceptions import AirflowException
    from airflow.sdk.exceptions import AirflowFailException

    from tributary.registry import NO_RETRY_EXIT
    from tributary.spark_submit import TributarySparkSubmitOperator

    profile = load_profile("local")
    conn_id = profile.launcher["spark_conn_id"]
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(spark_connection(profile)))
    driver = tmp_path / "driver.py"
    driver.write_text(f"import sys\nprint('error: landing batch x is missing', file=sys.stderr)\nsys.exit({status})\n")
    op = TributarySparkSubmitOperator(task_id="ingest", application=str(driver), conn_id=conn_id,
                                      conf={"spark.ui.enabled": "false"})
    with pytest.raises(AirflowException) as raised:
        op.execute({})
    assert op.exit_status() == status
    assert isinstance(raised.value, AirflowFailException) is (not retried), raised.value
    if not retried:
        assert status == NO_RETRY_EXIT and "not retried" in str(raised.value)

"""The launcher turns "run job X" into the profile's operator, with the jobs' own Spark conf."""

from __future__ import annotations

import sys

import pytest

from spark_jobs.config import REPO_ROOT, load_profile
from spark_jobs.registry import load_jobs
from spark_jobs.session import spark_conf

sys.path.insert(0, str(REPO_ROOT / "dags"))
from tributary import launcher  # noqa: E402
from tributary.local_env import airflow_env, spark_connection  # noqa: E402


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

"""Environment for running Airflow itself on one machine (``make run``, ``make up``, the end-to-end tests).

The Spark connection the launcher names (``launcher.spark_conn_id``) is derived from the profile, so the Spark
master is written in one place: the profile. On a real deployment the connection comes from Airflow's
connections / secrets backend instead.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

from tributary.config import REPO_ROOT, Profile
from tributary.spark_conf import local_lineage_file


def spark_home() -> str:
    """The Spark distribution inside pip's pyspark (bin/spark-submit, jars/)."""
    import importlib.util

    return str(Path(importlib.util.find_spec("pyspark").origin).parent)


def spark_connection(profile: Profile) -> dict:
    """The Airflow ``spark`` connection for a spark-submit profile, as Airflow's JSON connection format."""
    return {
        "conn_type": "spark",
        "host": profile.spark_master,
        "extra": {"deploy-mode": profile.spark["deploy_mode"], "spark-binary": "spark-submit"},
    }


def kubernetes_connection(profile: Profile, kubeconfig: Path) -> dict:
    """The Airflow ``kubernetes`` connection of a Kubernetes profile, for an Airflow outside the cluster (a managed
    Airflow, or this host driving the local cluster): the kubeconfig's identity, the profile's job namespace."""
    return {"conn_type": "kubernetes",
            "extra": {"kube_config_path": str(kubeconfig), "namespace": profile.launcher["namespace"]}}


def airflow_env(profile: Profile, airflow_home: Path, base: dict[str, str] | None = None,
                kubeconfig: Path | None = None) -> dict[str, str]:
    """A process environment that runs Airflow 3 standalone-style on SQLite for ``profile``.

    On a Kubernetes profile, ``kubeconfig`` makes it drive that cluster from outside (the connection the profile's
    ``launcher.kubernetes_conn_id`` names); without it, Airflow is expected to run in the cluster.
    """
    env = dict(os.environ if base is None else base)
    airflow_home.mkdir(parents=True, exist_ok=True)
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "TRIBUTARY_PROFILE": profile.name,
            # log4j2.properties: Spark at WARN; a cluster's own (yarn_cluster.py's spark-defaults.conf) wins.
            "SPARK_CONF_DIR": env.get("SPARK_CONF_DIR") or str(REPO_ROOT / "conf" / "spark"),
            "SPARK_HOME": spark_home(),  # pip's pyspark; spark-submit otherwise guesses from python3 on PATH
            "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",  # spark-submit from the project env
        }
    )
    env.update(openlineage_env(profile))
    conn_id = profile.launcher.get("spark_conn_id")
    if conn_id:
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(spark_connection(profile))
    k8s_conn_id = profile.launcher.get("kubernetes_conn_id")
    if k8s_conn_id and kubeconfig is not None:
        env[f"AIRFLOW_CONN_{k8s_conn_id.upper()}"] = json.dumps(kubernetes_connection(profile, kubeconfig))
    return env


def openlineage_env(profile: Profile) -> dict[str, str]:
    """Airflow's OpenLineage provider, where the profile writes lineage to a file here (``spark.openlineage.*``):
    every task's events to ``airflow.jsonl`` beside Spark's, in the same namespace, and each spark-submit handed its
    task's run as the Spark application's parent. Nothing otherwise (the provider stays off without a transport)."""
    spark_file = local_lineage_file(profile.spark["conf"])
    if spark_file is None:
        return {}
    spark_file.parent.mkdir(parents=True, exist_ok=True)
    transport = {"type": "file", "log_file_path": str(spark_file.parent / "airflow.jsonl"), "append": True}
    return {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": profile.spark["conf"].get("spark.openlineage.namespace", "default"),
        "AIRFLOW__OPENLINEAGE__SPARK_INJECT_PARENT_JOB_INFO": "True",
    }


def task_seconds(airflow_db: Path, dag_id: str = "fraud_pipeline") -> dict[str, float]:
    """Each successful task's duration in ``dag_id``'s newest run, in start order, from the SQLite metadata DB of a
    local Airflow (`airflow dags test`), opened read-only; empty when the DB or the run is not there."""
    if not airflow_db.is_file():
        return {}
    with sqlite3.connect(f"file:{airflow_db}?mode=ro", uri=True) as db:
        newest = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                            (dag_id,)).fetchone()
        if newest is None:
            return {}
        rows = db.execute("SELECT task_id, duration FROM task_instance WHERE dag_id = ? AND run_id = ? "
                          "AND state = 'success' ORDER BY start_date", (dag_id, newest[0])).fetchall()
    return {task: float(duration) for task, duration in rows}

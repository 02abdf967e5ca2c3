"""Tributary's platform package: what the DAGs, the scripts and the jobs share, with no Spark import.

- ``config``: the profiles (conf/profiles/, one base, overlays, one JSON Schema) and the dataset catalog;
- ``registry``: the jobs of conf/jobs.yaml (entrypoint, declared inputs and outputs) and the workload classes of
  conf/workloads.yaml;
- ``spark_conf``: every Spark setting a profile implies, one dict for the session factory, spark-submit and the
  SparkApplication;
- ``sparkapp``: the SparkApplication renderer (k8s/templates/sparkapplication.yaml.j2);
- ``launcher``, ``kubernetes``, ``streaming_operator``: the Airflow operator for a job on the profile's cluster
  manager, from an explicit table of builders;
- ``local_env``: the environment ``make run`` and the tests give Airflow and spark-submit.

The Airflow image ships this package and dags/, not spark_jobs/; tests/dags/test_dag_integrity.py parses the DAGs
with pyspark, torch, Delta, MLflow and spark_jobs blocked, and tests/tributary/test_layout.py checks that no module
here imports them.
"""

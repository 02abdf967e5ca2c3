# syntax=docker/dockerfile:1.7
# Tributary's images, one Dockerfile, three targets (`make images` builds them; docs/kubernetes.md):
#
#   spark    the runtime of every SparkApplication: the jobs (spark_jobs/), conf/, the Python dependencies pinned
#            by uv.lock (pyspark's Spark 4.2, delta-spark, torch, mlflow), the JVM jars of the single pinned list
#            conf/jars/pom.xml fetched by the same script as `make jars`, a JRE, the GPU discovery script and the
#            Kubernetes entrypoint; runs as the non-root user spark (uid 185).
#   airflow  the official Airflow image with the DAGs, the launcher, the profiles and the cncf.kubernetes and
#            apache.spark providers at the versions pyproject.toml pins; runs as the image's airflow user.
#   mlflow   the MLflow tracking server (hash-locked docker/mlflow/requirements.txt); non-root.
#
# No secrets are copied or baked (.dockerignore keeps conf/local.env, var/ and the environments out); every base
# image and package is pinned. hadolint (make k8s-tools) and checkov lint this file in `make test`.

# --- The pinned JVM jars: the same list and script as the local `make jars` -------------------------------------
FROM maven:3.9.11-eclipse-temurin-17 AS jars
WORKDIR /src
COPY conf/jars/ conf/jars/
COPY scripts/fetch_jars.sh scripts/fetch_jars.sh
RUN scripts/fetch_jars.sh /opt/tributary/jars

# --- The Python environment of the jobs, from uv.lock ------------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS spark-venv
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_PROJECT_ENVIRONMENT=/opt/tributary/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /opt/tributary/src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python3.11

# --- spark: the SparkApplication runtime -------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS spark
ARG DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        default-jre-headless=2:1.17-74 \
        openjdk-17-jre-headless=17.0.21.1+2-1~deb12u1 \
        procps=2:4.0.2-3 \
        tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 185 spark \
    && useradd --system --uid 185 --gid 185 --home-dir /opt/tributary --shell /usr/sbin/nologin spark
ENV JAVA_HOME=/usr/lib/jvm/default-java \
    SPARK_HOME=/opt/tributary/venv/lib/python3.11/site-packages/pyspark \
    PATH=/opt/tributary/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/opt/tributary \
    PYSPARK_PYTHON=/opt/tributary/venv/bin/python \
    TRIBUTARY_HOME=/opt/tributary \
    TRIBUTARY_JARS_DIR=/opt/tributary/jars \
    HOME=/tmp
COPY --from=spark-venv /opt/tributary/venv /opt/tributary/venv
COPY --from=jars /opt/tributary/jars /opt/tributary/jars
COPY conf/ /opt/tributary/conf/
COPY mlflow/ /opt/tributary/mlflow/
COPY spark_jobs/ /opt/tributary/spark_jobs/
COPY --chmod=0755 docker/spark/entrypoint.sh docker/spark/gpu-discovery.sh docker/spark/create-buckets.py docker/spark/land-sample.py /opt/tributary/bin/
WORKDIR /opt/tributary
USER 185:185
HEALTHCHECK NONE
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "/opt/tributary/bin/entrypoint.sh"]

# --- airflow: scheduler, API server, DAG processor and KubernetesExecutor workers --------------------------------
FROM apache/airflow:3.3.2-python3.11 AS airflow
# The providers at the project's pins (pyproject.toml); apache-airflow is named too so pip keeps the image's Airflow.
RUN pip install --no-cache-dir \
        "apache-airflow==3.3.2" \
        "apache-airflow-providers-cncf-kubernetes==10.25.0" \
        "apache-airflow-providers-apache-spark==6.3.4"
ENV PYTHONPATH=/opt/tributary \
    TRIBUTARY_HOME=/opt/tributary \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/tributary/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
COPY --chown=50000:0 conf/ /opt/tributary/conf/
COPY --chown=50000:0 k8s/templates/ /opt/tributary/k8s/templates/
COPY --chown=50000:0 spark_jobs/ /opt/tributary/spark_jobs/
COPY --chown=50000:0 dags/ /opt/tributary/dags/
USER 50000
HEALTHCHECK NONE

# --- mlflow: the tracking server ---------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS mlflow
COPY docker/mlflow/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --shell /usr/sbin/nologin mlflow
COPY --chmod=0755 docker/mlflow/mlflow-server.sh /usr/local/bin/mlflow-server
USER 10001:10001
EXPOSE 5000
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/mlflow-server"]

# syntax=docker/dockerfile:1.7
# Tributary's images, one Dockerfile, three targets (`make images` builds them; docs/kubernetes.md):
#
#   spark    the runtime of every SparkApplication: the jobs (spark_jobs/), the platform package they read their
#            profile with (tributary/), conf/, the Python dependencies of the `jobs` group of uv.lock (pyspark's
#            Spark 4.2, delta-spark, torch, mlflow), the JVM jars of the single pinned list conf/jars/pom.xml fetched
#            by the same script as `make jars`, a JRE, the GPU discovery script and the Kubernetes entrypoint; runs as
#            the non-root user spark (uid 185).
#   airflow  Airflow 3 with the cncf.kubernetes and apache.spark providers, from the `airflow` group of uv.lock (no
#            Spark, no PyTorch), the DAGs (dags/), the platform package (tributary/: launcher, profiles, registry,
#            renderer) and conf/, not the job code; runs as uid 50000, gid 0, like the official image the Apache
#            Airflow chart expects (AIRFLOW_HOME /opt/airflow, `airflow` on PATH).
#   mlflow   the MLflow tracking server (hash-locked docker/mlflow/requirements.txt); non-root.
#
# The bases are build arguments with public, pinned defaults. Where Docker Hub and ghcr.io cannot be reached (CI
# here), k8s/cluster/images.sh builds equivalent bases from Debian's packages (mmdebstrap) and passes them in:
#   PYTHON_BASE  a Debian bookworm with python3.11 on PATH (default: the official python slim image)
#   MAVEN_BASE   Maven with a JDK 17 (default: the official maven image)
#   UV_IMAGE     an image holding the pinned uv at /uv (default: astral's)
# No secrets are copied or baked (.dockerignore keeps conf/local.env, var/ and the environments out); every base
# image and package is pinned. hadolint (make k8s-tools) and checkov lint this file in `make test`.
# checkov:skip=CKV_DOCKER_7:the bases are build arguments whose defaults are pinned versions (tests/k8s checks them)
ARG PYTHON_BASE=python:3.11.14-slim-bookworm
ARG MAVEN_BASE=maven:3.9.11-eclipse-temurin-17
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# --- The pinned JVM jars: the same list and script as the local `make jars` -------------------------------------
FROM ${MAVEN_BASE} AS jars
WORKDIR /src
COPY conf/jars/ conf/jars/
COPY jvm/pom.xml jvm/pom.xml
COPY jvm/src/ jvm/src/
COPY scripts/fetch_jars.sh scripts/fetch_jars.sh
RUN scripts/fetch_jars.sh /opt/tributary/jars

# --- spark: the SparkApplication runtime -------------------------------------------------------------------------
FROM ${PYTHON_BASE} AS spark
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
# The jobs' environment: the `jobs` group of uv.lock as `make requirements` exports it (hash-locked, pinned), built
# in place (one copy of its gigabytes in the image and in the build cache); uv itself is only mounted for the step.
# Only that export is copied for it, so a lock change that leaves the jobs' packages alone (a new Airflow or test
# dependency) or an edit elsewhere never rebuilds it. Build-time only, never baked: SSL_CERT_FILE, behind a
# TLS-intercepting proxy its CA bundle; UV_CACHE_DIR, a mounted uv cache (k8s/cluster/images.sh passes both).
ARG SSL_CERT_FILE
ARG UV_CACHE_DIR
COPY docker/spark/requirements.txt /tmp/requirements.txt
RUN --mount=type=bind,from=uv,source=/uv,target=/usr/local/bin/uv \
    UV_PYTHON_DOWNLOADS=never uv venv --python python3.11 /opt/tributary/venv \
    && UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy uv pip install --python /opt/tributary/venv/bin/python \
        --require-hashes --no-deps -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY --from=jars /opt/tributary/jars /opt/tributary/jars
COPY conf/ /opt/tributary/conf/
COPY mlflow/ /opt/tributary/mlflow/
COPY tributary/ /opt/tributary/tributary/
COPY spark_jobs/ /opt/tributary/spark_jobs/
COPY --chmod=0755 docker/spark/entrypoint.sh docker/spark/gpu-discovery.sh docker/spark/land-sample.py /opt/tributary/bin/
WORKDIR /opt/tributary
USER 185:185
HEALTHCHECK NONE
ENTRYPOINT ["/usr/bin/tini", "-s", "--", "/opt/tributary/bin/entrypoint.sh"]

# --- airflow: scheduler, API server, DAG processor and KubernetesExecutor workers --------------------------------
FROM ${PYTHON_BASE} AS airflow
RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home --shell /bin/bash airflow
ENV AIRFLOW_HOME=/opt/airflow \
    PATH=/opt/airflow/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/opt/tributary \
    TRIBUTARY_HOME=/opt/tributary \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/tributary/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
# The `airflow` group of uv.lock as `make requirements` exports it, like the spark image's environment.
ARG SSL_CERT_FILE
ARG UV_CACHE_DIR
COPY docker/airflow/requirements.txt /tmp/requirements.txt
RUN --mount=type=bind,from=uv,source=/uv,target=/usr/local/bin/uv \
    UV_PYTHON_DOWNLOADS=never uv venv --python python3.11 /opt/airflow/venv \
    && UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy uv pip install --python /opt/airflow/venv/bin/python \
        --require-hashes --no-deps -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY --chown=50000:0 conf/ /opt/tributary/conf/
COPY --chown=50000:0 k8s/templates/ /opt/tributary/k8s/templates/
COPY --chown=50000:0 tributary/ /opt/tributary/tributary/
COPY --chown=50000:0 dags/ /opt/tributary/dags/
WORKDIR /opt/airflow
USER 50000:0
HEALTHCHECK NONE

# --- mlflow: the tracking server ---------------------------------------------------------------------------------
FROM ${PYTHON_BASE} AS mlflow
ARG SSL_CERT_FILE
ARG UV_CACHE_DIR
COPY docker/mlflow/requirements.txt /tmp/requirements.txt
RUN --mount=type=bind,from=uv,source=/uv,target=/usr/local/bin/uv \
    UV_PYTHON_DOWNLOADS=never uv venv --python python3.11 /opt/mlflow \
    && UV_LINK_MODE=copy uv pip install --python /opt/mlflow/bin/python --require-hashes --no-deps \
        -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --shell /usr/sbin/nologin mlflow
ENV PATH=/opt/mlflow/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --chmod=0755 docker/mlflow/mlflow-server.sh /usr/local/bin/mlflow-server
COPY --chmod=0755 docker/mlflow/create-buckets.py /usr/local/bin/create-buckets.py
USER 10001:10001
EXPOSE 5000
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/mlflow-server"]

#!/usr/bin/env bash
# Entrypoint of the Tributary Spark image (Dockerfile target `spark`).
#
# Spark's Kubernetes backend starts the driver container with `driver <spark-submit args>` and executors with
# `executor`; both are handled here the way Spark's own Kubernetes images do, with pyspark's Spark (SPARK_HOME in
# the image's virtualenv) and the pinned jars on the class path. Anything else is executed as given, e.g.
# `docker run tributary/spark:0.1.0 python -m spark_jobs.generate --help`.
set -euo pipefail

# Hadoop's login needs a passwd entry for the uid the pod runs as (platforms may pick an arbitrary uid).
if ! getent passwd "$(id -u)" >/dev/null 2>&1 && [ -w /etc/passwd ]; then
    echo "spark:x:$(id -u):$(id -g):spark:${HOME:-/tmp}:/usr/sbin/nologin" >>/etc/passwd
fi

SPARK_CLASSPATH="${SPARK_CLASSPATH:+${SPARK_CLASSPATH}:}${SPARK_HOME}/jars/*"
if [ -n "${SPARK_EXTRA_CLASSPATH:-}" ]; then
    SPARK_CLASSPATH="${SPARK_CLASSPATH}:${SPARK_EXTRA_CLASSPATH}"
fi

case "${1:-}" in
driver)
    shift
    exec "${SPARK_HOME}/bin/spark-submit" \
        --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS}" \
        --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS}" \
        --deploy-mode client "$@"
    ;;
executor)
    shift
    # Spark hands the executor's JVM options over as SPARK_JAVA_OPT_<n>, in order.
    java_opts=()
    while IFS= read -r opt; do java_opts+=("$opt"); done < <(
        env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/^[^=]*=//'
    )
    exec "${JAVA_HOME}/bin/java" "${java_opts[@]}" \
        -Xms"${SPARK_EXECUTOR_MEMORY}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
        -cp "${SPARK_CLASSPATH}" \
        org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
        --driver-url "${SPARK_DRIVER_URL}" \
        --executor-id "${SPARK_EXECUTOR_ID}" \
        --cores "${SPARK_EXECUTOR_CORES}" \
        --app-id "${SPARK_APPLICATION_ID}" \
        --hostname "${SPARK_EXECUTOR_POD_IP}" \
        --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID}" \
        --podName "${SPARK_EXECUTOR_POD_NAME}"
    ;;
*)
    exec "$@"
    ;;
esac

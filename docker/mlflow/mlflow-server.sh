#!/bin/sh
# Start the MLflow tracking server of the Tributary chart (Dockerfile target `mlflow`).
# PostgreSQL backend store (also the basic-auth user store, tables of their own), artifacts proxied to object
# storage, basic-auth on. Everything comes from the environment the chart sets from Kubernetes Secrets:
#   MLFLOW_BACKEND_STORE_URI, MLFLOW_AUTH_ADMIN_USERNAME, MLFLOW_AUTH_ADMIN_PASSWORD, MLFLOW_FLASK_SERVER_SECRET_KEY,
#   MLFLOW_ARTIFACTS_DESTINATION,
#   MLFLOW_PORT, MLFLOW_WORKERS (and MLFLOW_S3_ENDPOINT_URL + AWS_* for the S3 store).
set -eu
: "${MLFLOW_BACKEND_STORE_URI:?set from the database Secret}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set from the MLflow auth Secret}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set from the MLflow auth Secret (key flask-secret-key): it signs CSRF tokens}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set by the chart}"
umask 077
config_dir="${TMPDIR:-/tmp}/mlflow-auth"
mkdir -p "${config_dir}"
# The auth config holds the database URI (a secret): written at start into the pod's private tmpfs, never baked.
cat >"${config_dir}/basic_auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = ${MLFLOW_BACKEND_STORE_URI}
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
export MLFLOW_AUTH_CONFIG_PATH="${config_dir}/basic_auth.ini"
# Prometheus's /metrics (prometheus-flask-exporter in multiprocess mode, one file per worker here): emptied at each
# start, as a restarted container keeps the pod's /tmp and old workers' files would add to the new counts. Behind
# basic-auth like every route but /health: the chart's PodMonitor scrapes with the admin's credentials.
metrics_dir="${TMPDIR:-/tmp}/mlflow-metrics"
rm -rf "${metrics_dir}"
mkdir -p "${metrics_dir}"
exec mlflow server \
    --app-name basic-auth \
    --host 0.0.0.0 \
    --port "${MLFLOW_PORT:-5000}" \
    --workers "${MLFLOW_WORKERS:-2}" \
    --backend-store-uri "${MLFLOW_BACKEND_STORE_URI}" \
    --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION}" \
    --serve-artifacts \
    --expose-prometheus "${metrics_dir}"

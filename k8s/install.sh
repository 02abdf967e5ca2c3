#!/usr/bin/env bash
# Install Tributary into the current kube context, in order, and trigger the pipeline. Shared by kind-up.sh and
# minikube.sh once their cluster exists and the images are loaded. Usage: k8s/install.sh <kind|minikube>
#
#   1. the simulated GPU: the node labelled tributary.dev/pool=gpu advertises one nvidia.com/gpu
#   2. namespaces tributary and tributary-jobs, and the Secrets (random passwords, never in the repo)
#   3. the spark-operator CRDs from the pinned Go module (CRDs before anything that uses them)
#   4. the chart's dependencies (`helm dependency build`: the Airflow and spark-operator charts), then the chart
#   5. a sample batch landed in MinIO, fraud_pipeline triggered on it
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROFILE=${1:?usage: k8s/install.sh <kind|minikube>}
# shellcheck source=versions.env
. "$ROOT/k8s/versions.env"
HELM="$ROOT/.tools/bin/helm"
IMAGE_TAG=${IMAGE_TAG:-0.1.0}
IMAGE_PREFIX=${IMAGE_PREFIX:-tributary}
BATCH_ID=${BATCH_ID:-${PROFILE}-demo}
log() { echo "install[$PROFILE]: $*" >&2; }
command -v kubectl >/dev/null || { log "error: kubectl is required"; exit 1; }
[ -x "$HELM" ] || { log "error: helm missing; run make k8s-tools"; exit 1; }

log "1/5 simulated GPU on the gpu node"
gpu_node=$(kubectl get nodes -l tributary.dev/pool=gpu -o jsonpath='{.items[0].metadata.name}')
kubectl patch node "$gpu_node" --subresource=status --type=json \
    -p '[{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": "1"}]' >/dev/null

log "2/5 namespaces and secrets"
for ns in tributary tributary-jobs; do
    kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
done
kubectl label namespace tributary-jobs --overwrite \
    pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest >/dev/null
secret() { # secret <namespace> <name> key=value...; keeps an existing Secret (passwords stay stable on re-runs)
    local ns=$1 name=$2
    shift 2
    kubectl -n "$ns" get secret "$name" >/dev/null 2>&1 && return
    kubectl -n "$ns" create secret generic "$name" "${@/#/--from-literal=}" >/dev/null
}
get() { kubectl -n "$1" get secret "$2" -o jsonpath="{.data.$3}" | base64 -d; }
rand() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }
secret tributary tributary-db username=tributary "password=$(rand)"
db_password=$(get tributary tributary-db password)
db_url="tributary:${db_password}@tributary-postgresql.tributary.svc.cluster.local:5432"
kubectl -n tributary patch secret tributary-db --type=merge -p "{\"stringData\": {
    \"connection\": \"postgresql+psycopg2://${db_url}/airflow\",
    \"airflow-connection\": \"postgresql+psycopg2://${db_url}/airflow\",
    \"mlflow-connection\": \"postgresql://${db_url}/mlflow\"}}" >/dev/null
secret tributary tributary-object-store AWS_ACCESS_KEY_ID=tributary "AWS_SECRET_ACCESS_KEY=$(rand)"
secret tributary-jobs tributary-object-store AWS_ACCESS_KEY_ID=tributary \
    "AWS_SECRET_ACCESS_KEY=$(get tributary tributary-object-store AWS_SECRET_ACCESS_KEY)"
secret tributary tributary-mlflow-auth username=admin "password=$(rand)"
secret tributary-jobs tributary-mlflow-client MLFLOW_TRACKING_USERNAME=admin \
    "MLFLOW_TRACKING_PASSWORD=$(get tributary tributary-mlflow-auth password)"

log "3/5 spark-operator CRDs (pinned module v$SPARK_OPERATOR_VERSION)"
operator_dir=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["Dir"])' "$ROOT/.tools/spark-operator.json")
kubectl apply --server-side --force-conflicts -f "$operator_dir/charts/spark-operator-chart/crds/" >/dev/null

log "4/5 chart dependencies and the chart"
"$HELM" dependency build "$ROOT/helm/tributary" >/dev/null
"$HELM" upgrade --install tributary "$ROOT/helm/tributary" --namespace tributary \
    -f "$ROOT/helm/tributary/values-$PROFILE.yaml" \
    --set namespaces.createJobs=false \
    --set "images.spark.repository=$IMAGE_PREFIX/spark,images.spark.tag=$IMAGE_TAG" \
    --set "images.mlflow.repository=$IMAGE_PREFIX/mlflow,images.mlflow.tag=$IMAGE_TAG" \
    --set "airflow.images.airflow.repository=$IMAGE_PREFIX/airflow,airflow.images.airflow.tag=$IMAGE_TAG" \
    --set "airflow.defaultAirflowRepository=$IMAGE_PREFIX/airflow,airflow.defaultAirflowTag=$IMAGE_TAG" \
    --wait --timeout 20m

log "5/5 land a sample batch and trigger fraud_pipeline"
overrides=$(cat <<JSON
{"spec": {"restartPolicy": "Never", "nodeSelector": {"tributary.dev/pool": "spark-cpu"},
  "securityContext": {"runAsNonRoot": true, "runAsUser": 185, "seccompProfile": {"type": "RuntimeDefault"}},
  "containers": [{"name": "land", "image": "$IMAGE_PREFIX/spark:$IMAGE_TAG",
    "command": ["python", "/opt/tributary/bin/land-sample.py", "--rows", "5000", "--batch-id", "$BATCH_ID"],
    "env": [{"name": "S3_ENDPOINT", "value": "http://tributary-minio.tributary.svc.cluster.local:9000"}],
    "envFrom": [{"configMapRef": {"name": "tributary-env"}}, {"secretRef": {"name": "tributary-object-store"}}],
    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}
JSON
)
kubectl -n tributary-jobs delete pod tributary-land-sample --ignore-not-found >/dev/null
kubectl -n tributary-jobs run tributary-land-sample --image="$IMAGE_PREFIX/spark:$IMAGE_TAG" --restart=Never \
    --overrides="$overrides" --attach --rm
kubectl -n tributary exec deploy/tributary-airflow-scheduler -- \
    airflow dags trigger fraud_pipeline --conf "{\"batch_id\": \"$BATCH_ID\"}"
log "done: kubectl -n tributary-jobs get sparkapplications -w   (UI: see helm status tributary -n tributary)"

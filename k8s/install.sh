#!/usr/bin/env bash
# Install Tributary into the current kube context, in order, and trigger the pipeline. Shared by kind-up.sh and
# minikube.sh once their cluster exists and the images are loaded, and by the local cluster (make cluster-install).
# Usage: k8s/install.sh <kind|minikube> [--local-cluster]
#
#   --local-cluster  the cluster of k8s/cluster/cluster.py: the chart staged by `make render` (the pinned
#                    spark-operator chart from its Go module; the Apache Airflow chart cannot be fetched there, and
#                    Airflow runs on the host instead, driving the cluster through a kubeconfig), the service images
#                    of k8s/cluster/values-images.yaml, and no step 5 (the tests land data and run the jobs).
#
#   1. the simulated GPU: the node labelled tributary.dev/pool=gpu advertises one nvidia.com/gpu
#   2. namespaces tributary and tributary-jobs, and the Secrets (random passwords, never in the repo)
#   3. the spark-operator CRDs from the pinned Go module (CRDs before anything that uses them)
#   4. the chart's dependencies (`helm dependency build`: the Airflow and spark-operator charts), then the chart
#   5. a sample batch landed in the S3 store, fraud_pipeline triggered on it
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROFILE=${1:?usage: k8s/install.sh <kind|minikube> [--local-cluster]}
LOCAL_CLUSTER=false
[ "${2:-}" = --local-cluster ] && LOCAL_CLUSTER=true
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
secret() { # secret <namespace> <name> key=value...: creates it, or adds the keys it lacks; values already there
    local ns=$1 name=$2 kv key present   # are kept, so passwords stay stable on re-runs
    shift 2
    if ! kubectl -n "$ns" get secret "$name" >/dev/null 2>&1; then
        kubectl -n "$ns" create secret generic "$name" "${@/#/--from-literal=}" >/dev/null
        return
    fi
    present=$(kubectl -n "$ns" get secret "$name" -o json | python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin).get("data", {})))')
    for kv in "$@"; do
        key=${kv%%=*}
        [[ " $present " == *" $key "* ]] && continue
        kubectl -n "$ns" patch secret "$name" --type=merge \
            -p "$(python3 -c 'import json, sys; print(json.dumps({"stringData": {sys.argv[1]: sys.argv[2]}}))' "$key" "${kv#*=}")" >/dev/null
    done
}
get() { kubectl -n "$1" get secret "$2" -o jsonpath="{.data.$3}" | base64 -d; }
rand() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }
secret tributary tributary-db username=tributary "password=$(rand)"
db_password=$(get tributary tributary-db password)
db_url="tributary:${db_password}@tributary-postgresql.tributary.svc.cluster.local:5432"
kubectl -n tributary patch secret tributary-db --type=merge -p "{\"stringData\": {
    \"connection\": \"postgresql+psycopg2://${db_url}/airflow\",
    \"airflow-connection\": \"postgresql+psycopg2://${db_url}/airflow\",
    \"mlflow-connection\": \"postgresql+psycopg2://${db_url}/mlflow\"}}" >/dev/null
secret tributary tributary-object-store AWS_ACCESS_KEY_ID=tributary "AWS_SECRET_ACCESS_KEY=$(rand)"
secret tributary-jobs tributary-object-store AWS_ACCESS_KEY_ID=tributary \
    "AWS_SECRET_ACCESS_KEY=$(get tributary tributary-object-store AWS_SECRET_ACCESS_KEY)"
secret tributary tributary-mlflow-auth username=admin "password=$(rand)" "flask-secret-key=$(rand)$(rand)"
secret tributary-jobs tributary-mlflow-client MLFLOW_TRACKING_USERNAME=admin \
    "MLFLOW_TRACKING_PASSWORD=$(get tributary tributary-mlflow-auth password)"

log "3/5 spark-operator CRDs (pinned module v$SPARK_OPERATOR_VERSION)"
operator_dir=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["Dir"])' "$ROOT/.tools/spark-operator.json")
kubectl apply --server-side --force-conflicts -f "$operator_dir/charts/spark-operator-chart/crds/" >/dev/null
# The API server serves a new CRD's kind only once it is Established; helm maps the chart's SparkApplication then.
# (`kubectl wait --for=condition` errors out instead of waiting while a new CRD has no conditions yet.)
for crd in sparkapplications.sparkoperator.k8s.io scheduledsparkapplications.sparkoperator.k8s.io; do
    for _ in $(seq 1 120); do
        established=$(kubectl get crd "$crd" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null || true)
        [ "$established" = True ] && break
        sleep 1
    done
    [ "$established" = True ] || { log "error: CRD $crd not Established after 120s"; exit 1; }
done

log "4/5 chart dependencies and the chart"
chart_args=(-f "$ROOT/helm/tributary/values-$PROFILE.yaml" --set namespaces.createJobs=false
    --set "images.spark.repository=$IMAGE_PREFIX/spark,images.spark.tag=$IMAGE_TAG"
    --set "images.mlflow.repository=$IMAGE_PREFIX/mlflow,images.mlflow.tag=$IMAGE_TAG")
if $LOCAL_CLUSTER; then
    chart="$ROOT/build/chart/tributary"
    [ -f "$chart/Chart.yaml" ] || { log "error: no staged chart in $chart; run make render PROFILE=$PROFILE"; exit 1; }
    chart_args+=(-f "$ROOT/k8s/cluster/values-images.yaml" --set airflow.enabled=false)
else
    chart="$ROOT/helm/tributary"
    "$HELM" dependency build "$chart" >/dev/null
    chart_args+=(--set "airflow.images.airflow.repository=$IMAGE_PREFIX/airflow,airflow.images.airflow.tag=$IMAGE_TAG"
        --set "airflow.defaultAirflowRepository=$IMAGE_PREFIX/airflow,airflow.defaultAirflowTag=$IMAGE_TAG")
fi
"$HELM" upgrade --install tributary "$chart" --namespace tributary "${chart_args[@]}" \
    --wait --timeout "${HELM_TIMEOUT:-20m}"
if $LOCAL_CLUSTER; then
    log "done: the chart is installed; Airflow runs on the host (docs/kubernetes.md)"
    exit 0
fi

log "5/5 land a sample batch and trigger fraud_pipeline"
overrides=$(cat <<JSON
{"spec": {"restartPolicy": "Never", "nodeSelector": {"tributary.dev/pool": "spark-cpu"},
  "securityContext": {"runAsNonRoot": true, "runAsUser": 185, "seccompProfile": {"type": "RuntimeDefault"}},
  "containers": [{"name": "land", "image": "$IMAGE_PREFIX/spark:$IMAGE_TAG",
    "command": ["python", "/opt/tributary/bin/land-sample.py", "--rows", "5000", "--batch-id", "$BATCH_ID"],
    "env": [{"name": "S3_ENDPOINT", "value": "http://tributary-s3.tributary.svc.cluster.local:9000"}],
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

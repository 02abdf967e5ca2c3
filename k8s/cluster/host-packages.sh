#!/usr/bin/env bash
# Install the Debian packages the local cluster and the image builds need (idempotent; root; Debian/Ubuntu).
#
#   containerd, runc, containernetworking-plugins   the container runtime of each node and the CNI bridge
#   iptables, conntrack, iproute2                   kube-proxy's Service rules and the nodes' network
#   buildah, mmdebstrap                             `make images`: Debian-built base images, Dockerfile builds
#   openssl                                         the cluster's certificates
#
# Debian's versions are used as they come (bookworm: containerd 1.6, runc 1.1, CNI plugins 1.1, buildah 1.28);
# the script prints them. Usage: k8s/cluster/host-packages.sh
set -euo pipefail
PACKAGES=(containerd runc containernetworking-plugins iptables conntrack iproute2 buildah mmdebstrap openssl
    ca-certificates uidmap)
log() { echo "host-packages: $*" >&2; }
[ "$(uname -s)" = Linux ] || { log "error: the local cluster needs Linux"; exit 1; }
[ "$(id -u)" -eq 0 ] || { log "error: run as root (sudo): it installs Debian packages"; exit 1; }
command -v apt-get >/dev/null || { log "error: apt-get not found: install these with your package manager: ${PACKAGES[*]}"; exit 1; }
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts containerd with systemd where there is one; the cluster runs its own, one per node.
dpkg-query -W -f='${Package} ${Version}\n' "${PACKAGES[@]}" | sed 's/^/host-packages: /' >&2

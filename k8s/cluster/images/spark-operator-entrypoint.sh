#!/bin/bash
# The controller runs spark-submit, which (Hadoop's login) needs a passwd entry for the pod's uid.
set -euo pipefail
if ! getent passwd "$(id -u)" >/dev/null 2>&1 && [ -w /etc/passwd ]; then
    echo "spark:x:$(id -u):$(id -g):spark:${HOME:-/tmp}:/usr/sbin/nologin" >>/etc/passwd
fi
exec /usr/bin/spark-operator "$@"

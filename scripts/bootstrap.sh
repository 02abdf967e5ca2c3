#!/usr/bin/env bash
# Check prerequisites and install the pinned uv into .venv-uv. Idempotent. Prints what to install when
# something is missing, and exits non-zero.
set -euo pipefail
UV_VERSION=0.13.9
here=$(cd "$(dirname "$0")/.." && pwd)
missing=()
py=$(command -v python3.11 || command -v python3 || true)
if [ -z "$py" ] || ! "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
  missing+=("Python 3.11 (python3.11 on PATH; e.g. apt-get install python3.11 python3.11-venv, or pyenv install 3.11)")
fi
if ! command -v java >/dev/null || ! java -version 2>&1 | grep -qE 'version "(1[7-9]|2[0-9])'; then
  missing+=("Java 17 or newer (e.g. apt-get install openjdk-17-jdk-headless); Spark 4 needs it")
fi
command -v mvn >/dev/null || missing+=("Maven (e.g. apt-get install maven); it fetches the pinned Spark jars")
if [ ${#missing[@]} -gt 0 ]; then
  echo "Tributary needs these prerequisites:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
if [ ! -x "$here/.venv-uv/bin/uv" ] || [ "$("$here/.venv-uv/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  "$py" -m venv "$here/.venv-uv"
  "$here/.venv-uv/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
fi

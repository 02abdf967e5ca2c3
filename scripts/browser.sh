#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests/browser.py; idempotent; root; Debian/Ubuntu). Playwright
# (uv.lock, the dev group) drives it: it cannot download its own browser here, so the tests point it at this binary
# (TRIBUTARY_CHROMIUM overrides the path). Prints the version. Usage: scripts/browser.sh
set -euo pipefail
PACKAGES=(chromium fonts-dejavu-core)
log() { echo "browser: $*" >&2; }
chromium=${TRIBUTARY_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    [ "$(id -u)" -eq 0 ] || {
        log "error: $chromium is missing; as root run: apt-get install -y ${PACKAGES[*]}"; exit 1; }
    command -v apt-get >/dev/null || {
        log "error: apt-get not found: install Chromium and set TRIBUTARY_CHROMIUM to its binary"; exit 1; }
    log "installing ${PACKAGES[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi
log "$("$chromium" --headless --no-sandbox --version 2>/dev/null || echo "$chromium: no version")"

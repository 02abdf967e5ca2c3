#!/usr/bin/env bash
# Copy the pinned JVM jars (conf/jars/pom.xml, the single list) from Maven Central into a directory.
# Used by `make jars` (into var/jars) and by the Dockerfile. Idempotent: a stamp records the pom's hash.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=$(realpath -m "${1:-$here/var/jars}")  # absolute: Maven resolves relative paths against the POM
command -v mvn >/dev/null || { echo "error: Maven (mvn) is required to fetch the Spark jars; install it (e.g. apt-get install maven)" >&2; exit 1; }
stamp="$dest/.pom.sha256"
want=$(sha256sum "$here/conf/jars/pom.xml" | cut -d' ' -f1)
expected=$(grep -c '<dependency>' "$here/conf/jars/pom.xml")
have=0
[ -d "$dest" ] && have=$(find "$dest" -maxdepth 1 -name '*.jar' | wc -l)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ "$have" -eq "$expected" ]; then exit 0; fi
rm -rf "$dest" && mkdir -p "$dest"
mvn -q -B -s "$here/conf/jars/settings.xml" -f "$here/conf/jars/pom.xml" \
    dependency:copy-dependencies -DoutputDirectory="$dest"
have=$(find "$dest" -maxdepth 1 -name '*.jar' | wc -l)
[ "$have" -eq "$expected" ] || { echo "error: expected $expected jars in $dest, found $have" >&2; exit 1; }
echo "$want" > "$stamp"
echo "jars: $(ls "$dest"/*.jar | wc -l) pinned jars in $dest"

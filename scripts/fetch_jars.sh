#!/usr/bin/env bash
# Put Spark's JVM jars into a directory: the pinned jars of conf/jars/pom.xml (the single list) from Maven Central,
# plus the project's own jar built from jvm/ (a Delta LogStore, docs/adr/0007-object-store.md).
# Used by `make jars` (into var/jars) and by the Dockerfile. Idempotent: a stamp records the inputs' hash.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=$(realpath -m "${1:-$here/var/jars}")  # absolute: Maven resolves relative paths against the POM
command -v mvn >/dev/null || { echo "error: Maven (mvn) is required to fetch the Spark jars; install it (e.g. apt-get install maven)" >&2; exit 1; }
stamp="$dest/.pom.sha256"
want=$(cat "$here/conf/jars/pom.xml" "$here/jvm/pom.xml" $(find "$here/jvm/src" -type f | sort) | sha256sum | cut -d' ' -f1)
expected=$(( $(grep -c '<dependency>' "$here/conf/jars/pom.xml") + 1 ))
have=0
[ -d "$dest" ] && have=$(find "$dest" -maxdepth 1 -name '*.jar' | wc -l)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ "$have" -eq "$expected" ]; then exit 0; fi
rm -rf "$dest" && mkdir -p "$dest"
mvn -q -B -s "$here/conf/jars/settings.xml" -f "$here/conf/jars/pom.xml" \
    dependency:copy-dependencies -DoutputDirectory="$dest"
# The project's jar, built in a scratch copy so a read-only source tree (the image build) works too.
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
cp -r "$here/jvm/pom.xml" "$here/jvm/src" "$build/"
mvn -q -B -s "$here/conf/jars/settings.xml" -f "$build/pom.xml" package -DskipTests
cp "$build"/target/tributary-*.jar "$dest/"
have=$(find "$dest" -maxdepth 1 -name '*.jar' | wc -l)
[ "$have" -eq "$expected" ] || { echo "error: expected $expected jars in $dest, found $have" >&2; exit 1; }
echo "$want" > "$stamp"
echo "jars: $(ls "$dest"/*.jar | wc -l) jars in $dest (the pinned list and the project's own)"

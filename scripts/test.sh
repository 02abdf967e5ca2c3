#!/usr/bin/env bash
# `make test`: every test, in two pytest processes side by side. tests/cluster (the live cluster: one package
# fixture, mostly waiting on pods, Spark applications and Airflow), then the Kafka stream tests, run in the
# background while the rest (local Spark, Delta, Airflow, MLflow, PyTorch, `make up`'s servers, the offline
# K8s/Terraform checks: CPU-bound) runs in the foreground; the two together keep the machine's 2 cores busy and take
# about as long as each other (the Kafka tests, 5 minutes, follow tests/cluster to even them out). Both get
# the same pytest arguments; the exit status is the worse of the two. Each writes JUnit XML to var/test-results/; the
# background output follows the rest's once that ends. The background half first builds what only it needs
# (TEST_BACKGROUND_PREREQS, make targets: the images), so on a cold machine the rest's tests run beside that build
# instead of after it; a failed build fails that half before its tests, with the build's output in its log.
#
#   scripts/test.sh [pytest args...]     (the Makefile passes PYTEST_ARGS)
#   TRIBUTARY_TEST_SPLIT=0 scripts/test.sh ...   one pytest over everything (testpaths), in sequence
#
# One test or one folder: `.venv-uv/bin/uv run --frozen pytest tests/spark_jobs/test_stream.py`.
set -uo pipefail
cd "$(dirname "$0")/.."
# Every JVM the tests start on this host (Spark drivers, the tests' own session, Kafka, YARN, the standalone cluster)
# compiles with C1 only: the tests' JVMs are short-lived and their data tiny, so C2's compilations cost CPU that
# never pays back; a small Delta job takes about 40% less CPU. Only the tests: `make run`, `make bench` and the
# images keep the JVM's defaults.
export JAVA_TOOL_OPTIONS="-XX:TieredStopAtLevel=1${JAVA_TOOL_OPTIONS:+ $JAVA_TOOL_OPTIONS}"
# --durations: each half ends with its slowest tests, so a run shows where its time went.
PYTEST=(.venv-uv/bin/uv run --frozen pytest --durations=15)
RESULTS=var/test-results
mkdir -p "$RESULTS"

# The background half's make targets (the Makefile passes TEST_BACKGROUND_PREREQS; run alone: none). A SIGTERM while
# they build stops make.
read -r -a BACKGROUND_PREREQS <<<"${TEST_BACKGROUND_PREREQS:-}"
background_prereqs() {
    [ "${#BACKGROUND_PREREQS[@]}" -eq 0 ] && return 0
    local started=$SECONDS pid
    make --no-print-directory "${BACKGROUND_PREREQS[@]}" &
    pid=$!
    trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 143' TERM
    if ! wait "$pid"; then
        echo "test.sh: make ${BACKGROUND_PREREQS[*]} failed (above); the tests that need it did not run" >&2
        return 1
    fi
    trap - TERM
    echo "test.sh: make ${BACKGROUND_PREREQS[*]} took $((SECONDS - started)) s" >&2
}

if [ "${TRIBUTARY_TEST_SPLIT:-1}" = 0 ]; then
    background_prereqs || exit 2
    exec "${PYTEST[@]}" --junitxml="$RESULTS/all.xml" "$@"
fi

log() { echo "test.sh: $*" >&2; }
cluster_log="$RESULTS/cluster.log"
# pytest ends on SIGTERM like on Ctrl-C (tests/conftest.py): its fixtures' finalizers stop the cluster by PID. A
# background job of this script ignores SIGINT (no job control), so the trap sends it SIGTERM.
BACKGROUND=(tests/cluster tests/spark_jobs/test_stream_kafka.py)
# The background half: its prerequisites, then pytest in place of this subshell (so $cluster_pid is pytest's uv).
background() {
    background_prereqs || exit 2
    exec "${PYTEST[@]}" "${BACKGROUND[@]}" --junitxml="$RESULTS/cluster.xml" "$@"
}
background "$@" >"$cluster_log" 2>&1 &
cluster_pid=$!
trap 'kill -TERM "$cluster_pid" 2>/dev/null; wait "$cluster_pid"; exit 130' INT TERM
log "${BACKGROUND[*]} run in the background (pid $cluster_pid, output in $cluster_log); the rest runs here"

"${PYTEST[@]}" "${BACKGROUND[@]/#/--ignore=}" --junitxml="$RESULTS/rest.xml" "$@"
rest=$?
log "the rest ended with exit status $rest; the background half (${BACKGROUND[*]}) so far, then as it goes:"
echo "================================ ${BACKGROUND[*]} ($cluster_log) ================================"
tail -n +1 --pid="$cluster_pid" -f "$cluster_log"
wait "$cluster_pid"
cluster=$?
trap - INT TERM
log "exit status: ${BACKGROUND[*]} $cluster, the rest $rest"
# 5 is pytest's "no tests collected": with a -k that selects nothing in one half, the other half decides.
[ "$rest" -eq 5 ] && [ "$cluster" -eq 5 ] && exit 5
[ "$rest" -eq 5 ] && rest=0
[ "$cluster" -eq 5 ] && cluster=0
if [ "$rest" -ne 0 ] || [ "$cluster" -ne 0 ]; then
    exit $((rest > cluster ? rest : cluster))
fi

#!/usr/bin/env bash
# `make test`: every test, in two pytest processes side by side. tests/cluster (the live cluster: one package
# fixture, mostly waiting on pods, Spark applications and Airflow), then tests/services (`make up`'s servers: a
# scheduler-driven pipeline run on PostgreSQL), run in the background while the rest (local Spark, Delta, Airflow,
# MLflow, PyTorch, the offline K8s/Terraform checks: CPU-bound) runs in the foreground; the two together keep the
# machine's 2 cores busy and take about as long as each other. Both get the same pytest arguments; the exit status
# is the worse of the two. Each writes JUnit XML to var/test-results/; the background output follows the rest's
# once that ends.
#
#   scripts/test.sh [pytest args...]     (the Makefile passes PYTEST_ARGS)
#   TRIBUTARY_TEST_SPLIT=0 scripts/test.sh ...   one pytest over everything (testpaths), in sequence
#
# One test or one folder: `.venv-uv/bin/uv run --frozen pytest tests/spark_jobs/test_stream.py`.
set -uo pipefail
cd "$(dirname "$0")/.."
# --durations: each half ends with its slowest tests, so a run shows where its time went.
PYTEST=(.venv-uv/bin/uv run --frozen pytest --durations=15)
RESULTS=var/test-results
mkdir -p "$RESULTS"

if [ "${TRIBUTARY_TEST_SPLIT:-1}" = 0 ]; then
    exec "${PYTEST[@]}" --junitxml="$RESULTS/all.xml" "$@"
fi

log() { echo "test.sh: $*" >&2; }
cluster_log="$RESULTS/cluster.log"
# pytest ends on SIGTERM like on Ctrl-C (tests/conftest.py): its fixtures' finalizers stop the cluster by PID. A
# background job of this script ignores SIGINT (no job control), so the trap sends it SIGTERM.
BACKGROUND=(tests/cluster tests/services)
"${PYTEST[@]}" "${BACKGROUND[@]}" --junitxml="$RESULTS/cluster.xml" "$@" >"$cluster_log" 2>&1 &
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

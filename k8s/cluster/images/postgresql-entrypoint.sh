#!/bin/bash
# First start: initdb with POSTGRES_USER/POSTGRES_PASSWORD (scram-sha-256), create POSTGRES_DB, run the *.sql of
# /docker-entrypoint-initdb.d; then (every start) exec postgres listening on all addresses.
set -euo pipefail
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (from the database Secret)}"
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
if [ "${1:-postgres}" != postgres ]; then exec "$@"; fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=scram-sha-256 --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    export PGPASSWORD=$POSTGRES_PASSWORD
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start >/dev/null
    psql=(psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -U "$POSTGRES_USER" --no-psqlrc -q)
    if [ "$POSTGRES_DB" != postgres ]; then "${psql[@]}" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\""; fi
    for f in /docker-entrypoint-initdb.d/*.sql; do
        [ -e "$f" ] && { echo "initdb: $f"; "${psql[@]}" -d "$POSTGRES_DB" -f "$f"; }
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    unset PGPASSWORD
fi
exec postgres -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql

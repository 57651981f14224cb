#!/usr/bin/env bash
# Install (from Debian's packages) and start a throwaway local PostgreSQL server for the storage
# tests, idempotently, and print the database URL as a shell export on stdout:
#
#     eval "$(bash scripts/postgres_setup.sh)"      # sets GOVCHAT_TEST_POSTGRES_URL
#     bash scripts/postgres_setup.sh --stop         # stops the server (data dir is kept)
#
# Settings (environment): GOVCHAT_PG_DIR (data dir, default /tmp/govchat-pg), GOVCHAT_PG_PORT
# (default 54329). The server listens on 127.0.0.1 and a socket in the data dir's parent, with
# trust authentication for the `govchat` role: for tests on this machine only, never production.
# Progress goes to stderr; stdout carries only the export line.
set -euo pipefail

PG_DIR="${GOVCHAT_PG_DIR:-/tmp/govchat-pg}"
PG_PORT="${GOVCHAT_PG_PORT:-54329}"
PG_USER=govchat
PG_DB=govchat
SOCKET_DIR="$(dirname "$PG_DIR")"
log() { echo "postgres_setup: $*" >&2; }

find_bin() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

BIN="$(find_bin || true)"
if [ -z "$BIN" ]; then
    if [ "$(id -u)" != 0 ]; then
        log "PostgreSQL is not installed and this is not root: apt-get install -y postgresql"
        exit 1
    fi
    log "installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    BIN="$(find_bin)"
fi

# initdb and the server refuse to run as root: run them as the `postgres` system user.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    else
        "$@"
    fi
}

if [ "${1:-}" = "--stop" ]; then
    as_pg "$BIN/pg_ctl" -D "$PG_DIR" -m fast stop >&2 || true
    exit 0
fi

if [ ! -s "$PG_DIR/PG_VERSION" ]; then
    log "creating a cluster in $PG_DIR"
    mkdir -p "$PG_DIR"
    [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
    chmod 700 "$PG_DIR"
    as_pg "$BIN/initdb" -D "$PG_DIR" -U "$PG_USER" -A trust -E UTF8 --locale=C.UTF-8 >&2
fi

if ! as_pg "$BIN/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
    log "starting the server on 127.0.0.1:$PG_PORT"
    as_pg "$BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-p $PG_PORT -k $SOCKET_DIR -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" \
        start >&2
fi

for _ in $(seq 1 30); do
    if "$BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" -q; then break; fi
    sleep 1
done
"$BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" >&2

if ! "$BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    "$BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$PG_DB"
fi

echo "export GOVCHAT_TEST_POSTGRES_URL=postgresql+psycopg://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB"

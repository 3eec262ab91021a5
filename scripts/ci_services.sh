#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis servers on loopback for the tests.
#
#   source scripts/ci_services.sh         start both (installing them with apt when missing) and export
#                                         TRYON_TEST_POSTGRES_URL and TRYON_TEST_REDIS_URL
#   bash scripts/ci_services.sh           the same, printing the `export` lines instead (eval them)
#   bash scripts/ci_services.sh stop      stop both
#
# Tests that need a server skip with a reason when its variable is unset. State (data, logs, pid
# files) lives in ${TRYON_CI_SERVICES_DIR:-/tmp/tryon-ci-services}; ports ${TRYON_CI_PG_PORT:-55432}
# and ${TRYON_CI_REDIS_PORT:-56379}, bound to 127.0.0.1 only. Nothing is persisted (fsync off, no
# Redis snapshots): these servers exist for tests.

_tryon_ci_services() (
    set -euo pipefail
    local action="${1:-start}"
    local dir="${TRYON_CI_SERVICES_DIR:-/tmp/tryon-ci-services}"
    local pg_port="${TRYON_CI_PG_PORT:-55432}"
    local redis_port="${TRYON_CI_REDIS_PORT:-56379}"
    local pg_data="$dir/pg-data" pg_run="$dir/pg-run"

    log() { echo "ci_services: $*" >&2; }

    apt_install() {
        log "installing $* with apt"
        if [[ $(id -u) -ne 0 ]]; then
            log "not root: install $* yourself (apt-get install -y $*)"
            return 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
    }

    pg_bindir() {
        local found
        found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
        if [[ -z "$found" || ! -x "$found/initdb" ]]; then
            apt_install postgresql
            found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
        fi
        echo "$found"
    }

    # PostgreSQL refuses to run as root: run its tools as the `postgres` user then.
    as_pg() {
        if [[ $(id -u) -eq 0 ]]; then
            runuser -u postgres -- "$@"
        else
            "$@"
        fi
    }

    case "$action" in
    start)
        mkdir -p "$dir"
        # --- PostgreSQL ---
        local bin
        bin=$(pg_bindir)
        mkdir -p "$pg_run"
        [[ $(id -u) -eq 0 ]] && chown postgres: "$pg_run"
        if [[ ! -f "$pg_data/PG_VERSION" ]]; then
            mkdir -p "$pg_data"
            [[ $(id -u) -eq 0 ]] && chown postgres: "$pg_data"
            as_pg "$bin/initdb" -D "$pg_data" -U tryon -A trust --encoding UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
                || { cat "$dir/initdb.log" >&2; exit 1; }
        fi
        if ! as_pg "$bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; then
            as_pg "$bin/pg_ctl" -D "$pg_data" -l "$pg_run/postgres.log" -w -t 60 start \
                -o "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories=$pg_run -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
                >&2 || { cat "$pg_run/postgres.log" >&2; exit 1; }
        fi
        if ! as_pg "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U tryon -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = 'tryon_test'" | grep -q 1; then
            as_pg "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U tryon tryon_test
        fi
        log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port"
        # --- Redis ---
        command -v redis-server >/dev/null || apt_install redis-server
        if ! redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1; then
            redis-server --bind 127.0.0.1 --port "$redis_port" --daemonize yes --dir "$dir" \
                --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save "" --appendonly no >&2
            local i
            for i in $(seq 50); do
                redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1 && break
                sleep 0.1
            done
            redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null || { cat "$dir/redis.log" >&2; exit 1; }
        fi
        log "Redis $(redis-server --version | awk '{print $3}' | sed 's/^v=//') on 127.0.0.1:$redis_port"
        echo "export TRYON_TEST_POSTGRES_URL=postgresql://tryon@127.0.0.1:$pg_port/tryon_test"
        echo "export TRYON_TEST_REDIS_URL=redis://127.0.0.1:$redis_port/0"
        ;;
    stop)
        if [[ -f "$pg_data/PG_VERSION" ]]; then
            as_pg "$(pg_bindir)/pg_ctl" -D "$pg_data" -m fast stop >&2 || true
        fi
        redis-cli -h 127.0.0.1 -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
        log "stopped"
        ;;
    *)
        echo "usage: scripts/ci_services.sh [start|stop]" >&2
        exit 2
        ;;
    esac
)

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced: start and export into the caller's shell.
    if _tryon_ci_services_out="$(_tryon_ci_services "${1:-start}")"; then
        eval "$_tryon_ci_services_out"
    else
        echo "ci_services: could not start the test services (tests that need them will skip)" >&2
    fi
    unset _tryon_ci_services_out
else
    _tryon_ci_services "$@"
fi

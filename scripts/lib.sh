# Shared by scripts/run and scripts/test: install the environment and start local services if needed.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_python_env() {
    # uv installs the locked dependencies (uv.lock) into .venv with the machine's Python 3.11.
    if ! python3 -m uv --version >/dev/null 2>&1; then
        log "Installing uv (the package manager) with pip"
        python3 -m pip install --quiet --disable-pip-version-check uv \
            || python3 -m pip install --quiet --user --disable-pip-version-check uv
    fi
    log "Installing Python dependencies from uv.lock"
    python3 -m uv sync --frozen --quiet "$@"
    export PATH="$ROOT/.venv/bin:$PATH"
    export VIRTUAL_ENV="$ROOT/.venv"
}

redis_answers() {
    "$ROOT/.venv/bin/python" - "$1" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1, socket_timeout=1).ping()
PY
}

ensure_redis() {
    local url="${REDIS_URL:-redis://127.0.0.1:6379/0}"
    if redis_answers "$url"; then return 0; fi
    local hostport host port
    hostport="$(printf '%s' "$url" | sed -E 's#^redis://([^@/]*@)?([^/]+).*#\2#')"
    host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$hostport" ] && port=6379
    if [ "$host" != "127.0.0.1" ] && [ "$host" != "localhost" ]; then
        echo "Redis does not answer at $url. Start it there, or unset REDIS_URL to use a local one." >&2
        exit 1
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        cat >&2 <<MSG
Redis does not answer at $url and redis-server is not installed.
Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis),
or point REDIS_URL at a running Redis, then run this command again.
MSG
        exit 1
    fi
    log "Starting a local Redis on 127.0.0.1:$port"
    STARTED_REDIS_PIDFILE="/tmp/mailsched-redis-$port.pid"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --dir /tmp --logfile "/tmp/mailsched-redis-$port.log" --pidfile "$STARTED_REDIS_PIDFILE"
    for _ in $(seq 1 50); do redis_answers "$url" && return 0; sleep 0.1; done
    echo "Redis did not come up on port $port; see /tmp/mailsched-redis-$port.log" >&2
    exit 1
}

stop_started_redis() {
    # Only a Redis that ensure_redis started in this shell, by the pid it wrote.
    if [ -n "${STARTED_REDIS_PIDFILE:-}" ] && [ -s "$STARTED_REDIS_PIDFILE" ]; then
        log "Stopping the local Redis this command started"
        kill "$(cat "$STARTED_REDIS_PIDFILE")" 2>/dev/null || true
        rm -f "$STARTED_REDIS_PIDFILE"
    fi
}

ensure_postgres() {
    # Only for a local DATABASE_URL; a remote one is the operator's to run.
    if "$ROOT/.venv/bin/python" - <<'PY' >/dev/null 2>&1
import os, psycopg
psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=2).close()
PY
    then return 0; fi
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        log "Starting the local PostgreSQL cluster"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
        for _ in $(seq 1 50); do
            pg_isready -q -h 127.0.0.1 -p 5432 && return 0
            sleep 0.2
        done
    fi
    echo "PostgreSQL does not answer at $DATABASE_URL. Start it, or set DATABASE_URL to one that runs." >&2
    exit 1
}

ensure_chromium() {
    # The browser tests drive Debian's Chromium (never a downloaded one). Without it they fail, not skip.
    if [ -x /usr/bin/chromium ]; then return 0; fi
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        log "Installing Chromium for the browser tests (apt-get install chromium)"
        apt-get install -y --no-install-recommends chromium >/dev/null \
            || { apt-get update -qq && apt-get install -y --no-install-recommends chromium >/dev/null; }
        return 0
    fi
    echo "/usr/bin/chromium is missing: the browser tests will fail. Install it: sudo apt-get install chromium" >&2
}

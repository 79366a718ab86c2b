#!/usr/bin/env sh
# Start a Taskpost HTTP remote worker. Reads .env (current folder, else the repository root;
# cp configs/http-worker.env.example .env), checks that the coordinator answers /health and takes
# the key for an agent (exit 2 with one line saying why not), then runs
# scripts/start_http_remote_worker.py with every argument passed through:
#   ./scripts/start-http-worker.sh --worker-type gpu --max-concurrent 2
# To start without the check (the agent then waits for the coordinator), run the Python script.
set -eu

SCRIPT_DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
REPO_ROOT=$(dirname -- "$SCRIPT_DIR")

ENV_FILE=""
if [ -f ".env" ]; then
    ENV_FILE="./.env"
elif [ -f "$REPO_ROOT/.env" ]; then
    ENV_FILE="$REPO_ROOT/.env"
fi
if [ -n "$ENV_FILE" ]; then
    echo "Loading settings from $ENV_FILE"
    set -a
    # shellcheck disable=SC1090
    . "$ENV_FILE"
    set +a
fi

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1; then
            PYTHON="$candidate"
            break
        fi
    done
fi
if [ -z "$PYTHON" ]; then
    echo "error: Python 3.11+ not found (set PYTHON=/path/to/python)" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "error: $PYTHON is $("$PYTHON" -V 2>&1); Taskpost needs Python 3.11+" >&2
    exit 1
fi

if [ -z "${TASKPOST_SERVER_URL:-}" ] || { [ -z "${TASKPOST_API_KEY:-}" ] && [ -z "${TASKPOST_API_KEY_FILE:-}" ]; }; then
    case " $* " in
        *" --server-url"*) ;;
        *) echo "warning: TASKPOST_SERVER_URL is not set (cp configs/http-worker.env.example .env)" >&2 ;;
    esac
fi

"$PYTHON" "$SCRIPT_DIR/start_http_remote_worker.py" --check "$@" || exit $?

# exec: the agent gets SIGTERM itself, and drains its running tasks before it exits.
exec "$PYTHON" "$SCRIPT_DIR/start_http_remote_worker.py" "$@"

#!/usr/bin/env bash
# `make serve`: the serving API in development with the campaign path beside it, over one MO_HOME:
#   - the provider sandbox (`mo channels sandbox start`), its receipts posted to this API's /v1/webhooks;
#   - one campaign dispatcher (`mo campaigns dispatch`) and one channel worker (`mo channels worker`);
#   - the API itself (uvicorn), in the foreground of this script.
# All run until Ctrl-C, until this script gets SIGTERM (`make serve-stop`), or until the API exits; then every
# one of them is stopped. Logs of the workers and the sandbox: MO_HOME/logs (the sandbox's own log stays
# under MO_HOME where `mo channels sandbox` keeps it).
#
# Environment: MO_HOME, SERVING_PORT (8000), MO (the platform's `mo`), SERVING_PYTHON (the serving venv's
# python), MO_PII_KEY. Called by the Makefile; tests call it directly.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
: "${MO_HOME:?set MO_HOME}"
port="${SERVING_PORT:-8000}"
mo="${MO:-$repo/.venv/bin/mo}"
serving_python="${SERVING_PYTHON:-$here/.venv/bin/python}"
logs="$MO_HOME/logs"
run_dir="$MO_HOME/serving"
mkdir -p "$logs" "$run_dir"

# Receipts from the sandbox come back to this API; the workers and the sandbox read it from here.
export MO_CHANNEL_WEBHOOK_URL="${MO_CHANNEL_WEBHOOK_URL:-http://127.0.0.1:$port/v1/webhooks}"
# Tracked links the dispatcher signs point at this API's /v1/t/{token}.
export MO_CHANNEL_LINK_BASE_URL="${MO_CHANNEL_LINK_BASE_URL:-http://127.0.0.1:$port}"

pids=()
api_pid=""
stopping=0

stop_all() {
    [ "$stopping" = 1 ] && return
    stopping=1
    trap '' INT TERM
    # SIGTERM: the dispatcher and the worker finish the round or batch in hand, uvicorn drains its requests.
    for pid in "${pids[@]}" $api_pid; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${pids[@]}" $api_pid; do
        wait "$pid" 2>/dev/null
    done
    "$mo" channels sandbox stop >/dev/null 2>&1
    rm -f "$run_dir/serve.pid" "$run_dir/workers.pid"
    if [ -f "$run_dir/api.pid" ] && [ "$(cat "$run_dir/api.pid")" = "$api_pid" ]; then
        rm -f "$run_dir/api.pid"
    fi
    echo "serve: API, dispatcher, channel worker and provider sandbox stopped"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo $$ >"$run_dir/serve.pid"

if [ -z "${MO_KAFKA_BOOTSTRAP:-}" ]; then
    # The embedded broker the dispatcher produces to and the worker consumes from (left running, as by make demo).
    "$mo" broker start >>"$logs/broker.log" 2>&1 || { echo "serve: broker did not start; see $logs/broker.log" >&2; exit 1; }
fi
"$mo" channels sandbox start >>"$logs/sandbox.log" 2>&1 || {
    echo "serve: provider sandbox did not start; see $logs/sandbox.log" >&2
    exit 1
}

# The workers ignore Ctrl-C's SIGINT when started in the background of a script: stop_all sends them SIGTERM.
"$mo" campaigns dispatch --interval "${MO_DISPATCH_INTERVAL:-5}" >>"$logs/campaign-dispatcher.log" 2>&1 &
pids+=($!)
"$mo" channels worker >>"$logs/channel-worker.log" 2>&1 &
pids+=($!)
printf '%s\n' "${pids[@]}" >"$run_dir/workers.pid"

cd "$here" || exit 1
PYTHONPATH="$repo:$here" "$serving_python" -m uvicorn app.main:app --host 127.0.0.1 --port "$port" &
api_pid=$!
echo "$api_pid" >"$run_dir/api.pid"
echo "serve: API pid $api_pid, dispatcher pid ${pids[0]}, channel worker pid ${pids[1]} (logs: $logs)"

# Until the API exits (or a signal arrives: the traps above end the script, and EXIT stops everything).
wait "$api_pid"
exit $?

#!/usr/bin/env bash
# Bring up the operator's view: a local Prefect server and UI on 127.0.0.1 (SQLite),
# the process work pool, every deployment of prefect.yaml, and a worker.
#
#   ./scripts/operator-view.sh            # runs until Ctrl-C, then stops everything
#   ./scripts/operator-view.sh --detach   # leaves it running; stop with --stop
#   ./scripts/operator-view.sh --stop
#
# PREFECT_PORT (default 4200) chooses the port; the project's own settings (DATABASE_URL,
# DNSL_*) are passed to the worker and so to every flow run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

PORT="${PREFECT_PORT:-4200}"
STATE="${OPERATOR_VIEW_STATE:-$PWD/var/operator-view}"
mkdir -p "$STATE"
export PREFECT_HOME="$STATE/prefect"
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"
export PREFECT_UI_API_URL="$PREFECT_API_URL"
export DNSL_PROJECT_DIR="$PWD"

# Each background process leads its own process group (setsid): the worker runs its
# real worker in a child process, and stopping must reach that child too. The worker
# goes first, while the server can still answer it. Prefect's worker passes the first
# signal on to its child as a graceful stop, which can take long; a second signal makes
# it kill the child at once. Whatever is still there after that is killed.
wait_gone() {  # wait_gone PGID TENTHS: true once the group has exited
  for _ in $(seq "$2"); do
    kill -0 -- "-$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

stop() {
  for name in worker server; do
    pidfile="$STATE/$name.pid"
    [ -f "$pidfile" ] || continue
    pgid="$(cat "$pidfile")"
    kill -TERM -- "-$pgid" 2>/dev/null || true
    if ! wait_gone "$pgid" 20; then
      kill -INT -- "-$pgid" 2>/dev/null || true
      wait_gone "$pgid" 30 || kill -KILL -- "-$pgid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

if [ "${1:-}" = "--stop" ]; then
  stop
  echo "stopped"
  exit 0
fi

dns-lifecycle db upgrade

echo "starting the Prefect server on http://127.0.0.1:$PORT (log: $STATE/server.log)"
setsid prefect server start --host 127.0.0.1 --port "$PORT" >"$STATE/server.log" 2>&1 &
echo $! >"$STATE/server.pid"
for _ in $(seq 120); do
  if python -c "import urllib.request,sys; urllib.request.urlopen('$PREFECT_API_URL/health', timeout=2)" 2>/dev/null; then
    break
  fi
  sleep 1
done
python -c "import urllib.request; urllib.request.urlopen('$PREFECT_API_URL/health', timeout=5)" \
  || { echo "the Prefect server did not start; see $STATE/server.log" >&2; stop; exit 1; }

prefect --no-prompt work-pool create dns-lifecycle --type process --overwrite >/dev/null
# The worker here runs every flow from this checkout: deploy with prefect.yaml's local
# pull step instead of the production one (which clones the repository).
python - "$STATE/prefect.local.yaml" <<'PY'
import sys

import yaml

with open("prefect.yaml") as f:
    config = yaml.safe_load(f)
config["pull"] = config["definitions"]["pull_steps"]["local"]
with open(sys.argv[1], "w") as f:
    yaml.safe_dump(config, f, sort_keys=False)
PY
prefect --no-prompt deploy --all --prefect-file "$STATE/prefect.local.yaml" >"$STATE/deploy.log" 2>&1 \
  || { cat "$STATE/deploy.log" >&2; stop; exit 1; }
echo "deployed every deployment of prefect.yaml (log: $STATE/deploy.log)"
python -m dns_lifecycle.admin.alerts 2>&1 | tee -a "$STATE/deploy.log" \
  || { stop; exit 1; }

setsid prefect worker start --pool dns-lifecycle >"$STATE/worker.log" 2>&1 &
echo $! >"$STATE/worker.pid"

cat <<MSG

Operator's view is up:
  UI           http://127.0.0.1:$PORT
  deployments  http://127.0.0.1:$PORT/deployments
  run one      prefect deployment run daily-lifecycle/daily --param as_of=2026-12-01T02:00:00+08:00
  (with PREFECT_API_URL=$PREFECT_API_URL in your shell)
MSG

if [ "${1:-}" = "--detach" ]; then
  exit 0
fi
trap 'stop; echo; echo stopped' INT TERM EXIT
wait

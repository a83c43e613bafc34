#!/usr/bin/env bash
# Set up from a fresh clone and run the daily lifecycle once on the embedded defaults
# (SQLite under var/, emails and SMS written to var/outbox/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

# Setting up talks on stderr: stdout is the run's summary alone (`--json` gives JSON).
dns-lifecycle db upgrade >&2
if [ ! -s var/.demo-seeded ]; then
  dns-lifecycle seed --instances "${DEMO_INSTANCES:-2000}" --seed 1 >&2
  date -u +%FT%TZ > var/.demo-seeded
fi
dns-lifecycle run "$@"

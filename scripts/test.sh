#!/usr/bin/env bash
# Run the whole test suite. With TEST_DATABASE_URL set (CI sets it to the local
# PostgreSQL), every database test also runs on PostgreSQL and a failed connection fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
# Prefect's state for the tests lives in a throwaway folder, never in var/.
PREFECT_HOME="$(mktemp -d)"
export PREFECT_HOME
trap 'rm -rf "$PREFECT_HOME"' EXIT
python -m pytest "$@"

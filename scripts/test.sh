#!/usr/bin/env bash
# Run the whole test suite (arguments go to pytest). With TEST_DATABASE_URL set (CI sets
# it to the local PostgreSQL), every database test also runs on PostgreSQL and a failed
# connection fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
# Prefect's state for the tests lives in a throwaway folder, never in var/.
PREFECT_HOME="$(mktemp -d)"
export PREFECT_HOME
trap 'rm -rf "$PREFECT_HOME"' EXIT
# Two workers (pytest-xdist) by default, each running whole files: most of the suite
# waits on servers and subprocesses, so two processes overlap those waits even on two
# cores. Files are handed out in collection order, where the longest come first
# (tests/conftest.py), not by xdist's count of tests per file. DNSL_TEST_WORKERS=0 runs
# in this process (as does `-n 0` among the arguments, which come later and win).
python -m pytest -n "${DNSL_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"

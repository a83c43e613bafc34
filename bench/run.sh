#!/usr/bin/env bash
# The fleet-scale benchmark, by hand only (see bench/README.md). Arguments go to
# bench/fleet.py, e.g. `bench/run.sh --instances 100000 --skip double`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -e '.[dev]'
fi
# psutil only adds the Prefect API process's memory to the table.
.venv/bin/python -c 'import psutil' 2>/dev/null || .venv/bin/pip install -q -r bench/requirements.txt || true
exec .venv/bin/python bench/fleet.py "$@"

# Sourced by the other scripts: create .venv and install the project into it when
# missing or when pyproject.toml changed since the last install.
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-from
if [ ! -f "$stamp" ] || ! cmp -s pyproject.toml "$stamp"; then
  echo "installing dependencies into .venv (log: .venv/install.log)" >&2
  if ! { .venv/bin/python -m pip install --upgrade pip \
         && .venv/bin/python -m pip install -e '.[dev]'; } >.venv/install.log 2>&1; then
    tail -30 .venv/install.log >&2
    echo "installing dependencies failed; the whole log is .venv/install.log" >&2
    exit 1
  fi
  cp pyproject.toml "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1

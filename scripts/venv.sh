# Sourced by the other scripts: create .venv and install the project into it when
# missing or when pyproject.toml changed since the last install.
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-from
if [ ! -f "$stamp" ] || ! cmp -s pyproject.toml "$stamp"; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  cp pyproject.toml "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1

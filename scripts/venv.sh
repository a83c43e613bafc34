# Sourced by the other scripts, or by hand from any folder (`source scripts/venv.sh`):
# create the checkout's .venv and install the project into it when missing or when
# pyproject.toml changed since the last install, then put it on the PATH. It works on
# the checkout it lives in, whatever the current folder, and changes no folder. A
# failure returns 1 to the caller (an interactive shell stays open); run as a script,
# it exits 1.
_dnsl_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"

_dnsl_venv() {
  local root="$1" python="${PYTHON:-python3}" stamp log
  if [ ! -x "$root/.venv/bin/python" ]; then
    if ! "$python" -m venv "$root/.venv"; then
      echo "creating $root/.venv with $python failed (PYTHON chooses the interpreter)" >&2
      return 1
    fi
  fi
  stamp="$root/.venv/.installed-from"
  log="$root/.venv/install.log"
  if [ ! -f "$stamp" ] || ! cmp -s "$root/pyproject.toml" "$stamp"; then
    echo "installing dependencies into $root/.venv (log: $log)" >&2
    # Tested as a success, so that a log that cannot be written counts as a failure too.
    if "$root/.venv/bin/python" -m pip install --upgrade pip >"$log" 2>&1 \
       && "$root/.venv/bin/python" -m pip install -e "$root[dev]" >>"$log" 2>&1 \
       && cp "$root/pyproject.toml" "$stamp"; then
      :
    else
      tail -30 "$log" >&2 2>/dev/null
      echo "installing dependencies failed; the whole log is $log" >&2
      return 1
    fi
  fi
  export PATH="$root/.venv/bin:$PATH"
  export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
}

if _dnsl_venv "$_dnsl_root"; then
  unset -f _dnsl_venv
  unset _dnsl_root
else
  unset -f _dnsl_venv
  unset _dnsl_root
  # `return` outside a sourced file is an error: then this file was run, and exits.
  if (return 0 2>/dev/null); then return 1; else exit 1; fi
fi

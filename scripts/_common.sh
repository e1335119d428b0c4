# Sourced by scripts/setup and scripts/test (not run on its own).
# pick_python sets PY: $PYTHON if set, else ./.venv/bin/python if scripts/setup made one,
# else python3 from PATH. It must be Python >= 3.11.

pick_python() {
  if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
  elif [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
  else
    PY=$(command -v python3 || command -v python || true)
  fi
  if [ -z "$PY" ]; then
    echo "$0: no python3 on PATH (set PYTHON=/path/to/python3.11)" >&2
    exit 1
  fi
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "$0: $PY is $("$PY" -V 2>&1); Python >= 3.11 is needed (set PYTHON=...)" >&2
    exit 1
  fi
  PY=$("$PY" -c 'import sys; print(sys.executable)') # skips pyenv shims on later calls
}

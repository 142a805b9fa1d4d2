#!/usr/bin/env bash
# Start the app (or `./run-local.sh test`: the project's tests) against an embedded PostgreSQL; see local/run.py.
# Uses $PYTHON, else the first of python3.13, python3.12, python3.11, python3 that runs and is 3.11 or newer
# (as on Databricks Apps).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  for candidate in ${PYTHON:-python3.13 python3.12 python3.11 python3}; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON_FOUND="$candidate"
      break
    fi
  done
  if [ -z "${PYTHON_FOUND:-}" ]; then
    echo "error: Python 3.11 or newer is needed; tried: ${PYTHON:-python3.13 python3.12 python3.11 python3}." >&2
    echo "Install one, or set PYTHON=/path/to/python3.11 (or newer)." >&2
    exit 1
  fi
  echo "Creating .venv with $("$PYTHON_FOUND" -c 'import sys; print(sys.executable)') ..."
  "$PYTHON_FOUND" -m venv .venv
fi
# pip runs only when the requirements changed since the last install (a copy of them is kept in .venv).
if ! cat requirements-dev.txt app/requirements.txt | cmp -s - .venv/.installed-requirements; then
  echo "Installing requirements-dev.txt into .venv (the first time: about a minute) ..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  cat requirements-dev.txt app/requirements.txt >.venv/.installed-requirements
fi
exec .venv/bin/python local/run.py "$@"

#!/usr/bin/env bash
# Start the app (or `./run-local.sh test`: the project's tests) against an embedded PostgreSQL; see local/run.py.
# Uses $PYTHON, else the newest python3.1x on PATH; Python 3.11 or newer is needed (as on Databricks Apps).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  PYTHON="${PYTHON:-$(command -v python3.13 || command -v python3.12 || command -v python3.11 || command -v python3 || true)}"
  if [ -z "$PYTHON" ] || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: Python 3.11 or newer is needed (found: ${PYTHON:-no python3}); install it, or set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
exec .venv/bin/python local/run.py "$@"

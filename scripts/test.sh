#!/usr/bin/env bash
# Runs the template's whole test suite on a fresh machine: creates .venv, installs
# requirements-dev.txt, builds the Databricks CLI and its fake workspace, then pytest (extra arguments are
# passed to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# The real Databricks CLI (newest served release and the bundle's floor) and its fake workspace, built once
# from the Go module proxy and cached (scripts/databricks-cli.sh): a cold machine spends minutes here.
bash scripts/databricks-cli.sh >/dev/null
set +e
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"

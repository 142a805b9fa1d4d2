#!/usr/bin/env bash
# Start the app locally against an embedded PostgreSQL (see local/run.py). Arguments go to local/run.py.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
exec .venv/bin/python local/run.py "$@"

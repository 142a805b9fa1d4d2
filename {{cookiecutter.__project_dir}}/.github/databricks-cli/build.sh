#!/usr/bin/env bash
# Builds the Databricks CLI that go.mod pins and puts it on PATH (the deploy workflow's first steps).
#
# Built rather than downloaded: databricks/setup-cli fetches the release zip and unzips it with no checksum
# (setup_release.sh), while `go build -mod=readonly` checks the CLI's module and every module it needs against
# go.sum here and the Go checksum database (sum.golang.org), and refuses any mismatch. GOTOOLCHAIN (set by the
# workflow) makes the go command fetch that exact Go as the module golang.org/toolchain, checked the same way
# (go.dev/doc/toolchain#download).
#
# The version is stamped in with -ldflags, as the CLI's release build does (internal/build/info.go): a plain
# `go build` reports "<next>-dev", for which the bundle's `databricks_cli_version` check is skipped with a
# warning (bundle/config/mutator/verify_cli_version.go). `go install github.com/databricks/cli@v...` is not
# used: it ignores this go.mod and go.sum, which Dependabot keeps current and reviewers read.
#
# To move the CLI: go get -tool github.com/databricks/cli@vX.Y.Z && go mod tidy (here), or Dependabot's pull
# request. Every job builds it anew, caching nothing it deploys with: about 160 MB of modules and the toolchain to
# download, then about 2.5 minutes of compiling (docs/deploying-from-github.md, "The Databricks CLI in CI").
set -euo pipefail
cd "$(dirname "$0")"
version=$(sed -nE 's/^require github\.com\/databricks\/cli (v[0-9.]+)( .*)?$/\1/p' go.mod)
[ -n "$version" ] || { echo "build.sh: no github.com/databricks/cli version in go.mod" >&2; exit 1; }
bin="${RUNNER_TEMP:?}/databricks-cli"
started=$(date +%s)
GOFLAGS=-mod=readonly go build -trimpath \
  -ldflags "-X github.com/databricks/cli/internal/build.buildVersion=${version#v}" \
  -o "$bin/databricks" github.com/databricks/cli
echo "built the Databricks CLI $version in $(($(date +%s) - started)) s"
echo "$bin" >> "${GITHUB_PATH:?}"
"$bin/databricks" version

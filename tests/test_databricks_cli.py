"""The real Databricks CLI and its fake workspace, as the bundle and workflow tests use them."""

import json
import re
from pathlib import Path

import pytest

from tests.support.databricks_cli import SERVICE_PRINCIPAL, USER_NAME, Cli, cli_binaries

# module dir (newest, floor) -> the CLI version its go.mod pins
PINNED = {
    path.parent.name: re.search(r"github.com/databricks/cli (v[\d.]+)", path.read_text()).group(1)
    for path in (Path(__file__).parent / "databricks_cli").glob("*/go.mod")
}


def test_both_pinned_versions_are_built():
    """The newest release (tests/databricks_cli/newest/go.mod) and the bundle's floor, each reporting its version."""
    assert PINNED["floor"] == "v1.11.0"
    assert sorted(cli_binaries()) == sorted(v.lstrip("v") for v in PINNED.values())


@pytest.mark.parametrize("identity, name", [("user", USER_NAME), ("service_principal", SERVICE_PRINCIPAL)])
def test_token_prefix_picks_the_identity(fake_workspace, tmp_path, identity, name):
    for binary in cli_binaries().values():
        cli = Cli(fake_workspace, tmp_path / "home", identity=identity, binary=binary)
        me = json.loads(cli.run("current-user", "me", "-o", "json", cwd=tmp_path).stdout)
        assert me["userName"] == name


def test_a_request_without_handler_fails_the_step(fake_workspace, tmp_path):
    cli = Cli(fake_workspace, tmp_path / "home")
    with pytest.raises(AssertionError, match="no handler for"):
        cli.run("api", "get", "/api/2.0/lakebase-app/nothing-here", cwd=tmp_path, check=False)


def test_request_log_keeps_each_workspace_apart(fake_workspace, tmp_path):
    alice = Cli(fake_workspace, tmp_path / "a")
    bob = Cli(fake_workspace, tmp_path / "b")
    alice.run("current-user", "me", cwd=tmp_path)
    seen = fake_workspace.requests(workspace=alice.workspace)
    assert any(r["path"] == "/api/2.0/preview/scim/v2/Me" and r["identity"] == "user" for r in seen)
    assert fake_workspace.requests(workspace=bob.workspace) == []

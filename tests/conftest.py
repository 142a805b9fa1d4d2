"""Fixtures shared by the test files: the harness's (PostgreSQL, workspace stub) and a deployment of one app."""

import pytest

pytest_plugins = ["tests.harness.fixtures"]


@pytest.fixture
def deployment(request, pg_server, workspace_stub):
    """A fresh service principal (role) and a database of its own; the Lakebase flavour comes from the test's
    `combo` or `answers` parameter (autoscaling without one)."""
    callspec = getattr(request.node, "callspec", None)
    answers = callspec.params.get("combo") or callspec.params.get("answers") or {} if callspec else {}
    client = workspace_stub.new_client(lakebase=answers.get("lakebase", "autoscaling"))
    dbname = pg_server.create_database_for(client.role)
    yield client, dbname
    pg_server.drop_database(dbname)


@pytest.fixture(scope="session")
def fake_workspace():
    """Databricks' own fake workspace (libs/testserver), one per test session (per xdist worker); each test keeps
    to a workspace of its own through its token's suffix (tests/support/databricks_cli.py)."""
    from tests.support.databricks_cli import FakeWorkspace

    with FakeWorkspace.start() as server:
        yield server

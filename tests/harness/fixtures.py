"""Pytest fixtures for the Lakebase test harness.

Use from a conftest.py with ``pytest_plugins = ["tests.harness.fixtures"]`` (or ``from tests.harness.fixtures
import *``). Under pytest-xdist every worker starts its own PostgreSQL server (session scope is per worker).
"""

from __future__ import annotations

import pytest

from .env import clean_databricks_env
from .postgres import PostgresServer
from .workspace_stub import Client, WorkspaceStub

__all__ = [
    "clean_databricks_env",
    "pg_server",
    "sdk_env",
    "sp_client",
    "workspace_stub",
]


@pytest.fixture(scope="session")
def pg_server():
    """One Lakebase-like PostgreSQL per test session (per xdist worker)."""
    with PostgresServer() as pg:
        yield pg


@pytest.fixture
def workspace_stub(pg_server):
    """A fresh workspace stub per test, backed by the session's PostgreSQL (restarted if a test stopped it)."""
    if not pg_server.external and not pg_server.running:
        pg_server.start_server()
    with WorkspaceStub(pg_server) as ws:
        yield ws


@pytest.fixture
def sp_client(workspace_stub) -> Client:
    """A registered service principal (random UUID client id = PG role name)."""
    return workspace_stub.new_client()


@pytest.fixture
def sdk_env(monkeypatch, workspace_stub, sp_client) -> Client:
    """DATABRICKS_* and PG* set as the Apps runtime would, for ``sp_client``; nothing else leaks in."""
    clean_databricks_env(monkeypatch)
    for k, v in workspace_stub.env_for_app(sp_client).items():
        monkeypatch.setenv(k, v)
    return sp_client

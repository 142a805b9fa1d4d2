"""Test harness: a Lakebase-like PostgreSQL server and a Databricks workspace stub for the real SDK."""

from .postgres import PostgresServer, find_pg_bindir
from .workspace_stub import Client, WorkspaceStub

__all__ = ["Client", "PostgresServer", "WorkspaceStub", "find_pg_bindir"]

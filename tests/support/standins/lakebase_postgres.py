"""The PostgreSQL behind the fake workspace's Lakebase objects, which libs/testserver does not have.

The testserver keeps Lakebase projects, branches, roles and databases as API objects only; nothing listens at an
endpoint's host. Here every endpoint is the test harness's one PostgreSQL (tests/harness/postgres.py), as
tests/harness/workspace_stub.py does for apps:
  - a role the API creates (bundle `postgres_roles`) is a NOLOGIN role with BYPASSRLS, granted to the identity
    that created it (tests/support/deployer.py makes the same owner for the other tests; whether Lakebase grants
    the creator membership is not in its docs: a first deploy shows it);
  - a database the API creates is a database owned by its declared role;
  - the app's service principal and each deploying identity are LOGIN roles named as Lakebase names them (the
    application id, or the user's e-mail: Lakebase docs, "Postgres roles");
  - POST /api/2.0/postgres/credentials (and Provisioned's /api/2.0/database/credentials) gives the caller a token
    that is its role's password for an hour (the tokens' lifetime: Lakebase docs, "Authentication");
  - a branch created from another (`spec.source_branch`) starts with a copy of its databases (Lakebase docs,
    "Branches": copy-on-write of the parent's data): here CREATE DATABASE ... TEMPLATE, under a name of its own
    since the harness has one server for all branches; the copy is dropped with the branch.
So that staging and prod, two projects on Lakebase, do not meet in the one server, the tests give them
different database names.
"""

from __future__ import annotations

import re
import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import errors, sql


class LakebasePostgres:
    def __init__(self, pg_server: Any) -> None:
        self.pg = pg_server
        self.lock = threading.Lock()
        self.databases: dict[str, dict[str, str]] = {}  # branch name -> database id -> physical database
        self.copies: dict[str, dict[str, str]] = {}  # branch name -> database id -> physical copy (inherited)
        self.made: list[str] = []  # physical databases to drop at the end
        self.roles: list[str] = []

    @property
    def host(self) -> str:
        return self.pg.host

    def _admin(self, statement: sql.Composable, dbname: str = "postgres") -> None:
        self.pg.query(statement, dbname=dbname)

    def login_role(self, name: str) -> None:
        try:
            self._admin(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
            self.roles.append(name)
        except errors.DuplicateObject:
            pass

    def role_created(self, creator: str, role: str) -> None:
        with self.lock:
            self.login_role(creator)
            try:
                self._admin(sql.SQL("CREATE ROLE {} NOLOGIN BYPASSRLS").format(sql.Identifier(role)))
                self.roles.append(role)
            except errors.DuplicateObject:
                pass
            self._admin(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(creator)))

    def database_created(self, creator: str, branch: str, database_id: str, name: str, owner: str | None) -> None:
        with self.lock:
            self.login_role(creator)
            self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            self.made.append(name)
            if owner:
                self._admin(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(owner))
                )
            self._admin(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
            self._admin(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(name), sql.Identifier(creator))
            )
            self.databases.setdefault(branch, {})[database_id] = name

    def branch_created(self, branch: str, source: str | None) -> None:
        """A branch starts with copies of its source branch's databases."""
        with self.lock:
            for database_id, name in (self.databases.get(source or "") or {}).items():
                copy = re.sub(r"[^a-z0-9_]", "_", f"{name}_{branch.rsplit('/', 1)[-1]}")[:63]
                self._admin(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY file_copy").format(
                        sql.Identifier(copy), sql.Identifier(name)
                    )
                )
                self.made.append(copy)
                # CREATE DATABASE gives the copy to its creator and the default ACL: keep the source's
                with self.pg.connect_superuser("postgres") as conn:
                    owner = conn.execute(
                        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [name]
                    ).fetchone()[0]
                    conn.execute(
                        sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(copy), sql.Identifier(owner))
                    )
                    conn.execute(
                        "UPDATE pg_database SET datacl = (SELECT datacl FROM pg_database WHERE datname = %s)"
                        " WHERE datname = %s",
                        [name, copy],
                    )
                self.copies.setdefault(branch, {})[database_id] = copy

    def branch_deleted(self, branch: str) -> None:
        with self.lock:
            for name in {**self.databases.pop(branch, {}), **self.copies.pop(branch, {})}.values():
                self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def inherited(self, branch: str) -> dict[str, str]:
        return dict(self.copies.get(branch) or {})

    def credential(self, role: str) -> dict[str, str]:
        token = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(hours=1)
        with self.lock:
            self.login_role(role)
            self.pg.set_password(role, token, expires)
        return {"token": token, "expire_time": expires.isoformat().replace("+00:00", "Z")}

    def close(self) -> None:
        for name in reversed(self.made):
            self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        self.made.clear()

"""The deploying identity of a test deployment: it migrates before the app's code starts, as on Databricks.

Like the bundle's Lakebase objects (databricks.yml: a plain ``postgres_roles.owner`` that owns the deployment's
database): an owner role that nobody logs in as (NOLOGIN, BYPASSRLS) owns the database, and a deployer, a login
role that is a member of it, runs ``python -m database.migrate upgrade --app-role <the app's role>`` from app/.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg import sql

from tests.support.appenv import app_python, password_role_env
from tests.support.waiting import HANG_GUARD


@dataclass(frozen=True)
class Deployer:
    role: str
    owner: str
    env: dict[str, str]  # PG* for the deployer's own login (PGPASSWORD), DB_OWNER_ROLE


_PREPARED: dict[tuple[str, str], Deployer] = {}


def prepare(pg_server: Any, dbname: str, *, database_owner: bool = True) -> Deployer:
    """The owner role and the deployer of ``dbname`` (once per database); the owner owns the database unless
    ``database_owner`` is False (a database made by someone else, as with an existing Lakebase database)."""
    key = (str(pg_server.port), dbname)
    if key in _PREPARED:
        return _PREPARED[key]
    owner, role, password = f"{dbname}_owner", f"{dbname}_deployer", secrets.token_urlsafe(24)
    with pg_server.connect_superuser() as admin:
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN BYPASSRLS").format(sql.Identifier(owner)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), sql.Identifier(role)))
        admin.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(dbname), sql.Identifier(role))
        )
        if database_owner:
            admin.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(dbname), sql.Identifier(owner))
            )
    pg_server._roles.extend([role, owner])  # dropped with the server's other roles (external server)
    pg_server.set_password(role, password, datetime.now(UTC) + timedelta(hours=2))
    env = {
        **pg_server.env_for_app(role, appname="deployer"),
        "PGDATABASE": dbname,
        "PGPASSWORD": password,
        "DB_OWNER_ROLE": owner,
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
    }
    _PREPARED[key] = Deployer(role, owner, env)
    return _PREPARED[key]


def of(env: dict[str, str]) -> Deployer | None:
    """The deployer prepared for the database an app's environment points at, if any."""
    return _PREPARED.get((env.get("PGPORT", ""), env.get("PGDATABASE", "")))


def run(app: Path, deployer: Deployer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m database.migrate <args>`` in ``app`` as the deployer."""
    return subprocess.run(
        [str(app_python()), "-m", "database.migrate", *args],
        cwd=app,
        env={**deployer.env, **env},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )


def upgrade(app: Path, deployer: Deployer, app_role: str) -> subprocess.CompletedProcess[str]:
    """The deploy step: every pending migration, and the app's role granted; fails the test if it fails."""
    done = run(app, deployer, "upgrade", "--app-role", app_role)
    assert done.returncode == 0, f"database.migrate upgrade failed:\n{done.stdout}{done.stderr}"
    return done


def migrated(pg_server: Any, home: Path, app: Path) -> tuple[str, dict[str, str], Deployer]:
    """A new app role with a database of its own that the deployer has migrated for it (the owner role owns it
    all): the role, the app's environment (PGPASSWORD, as locally) and the deployer."""
    role, env = password_role_env(pg_server, home)
    found = prepare(pg_server, env["PGDATABASE"])
    with pg_server.connect_superuser() as admin:  # as a new database has it, until the migration revokes it
        admin.execute(f'GRANT CONNECT ON DATABASE "{env["PGDATABASE"]}" TO PUBLIC')
    upgrade(app, found, role)
    return role, env, found

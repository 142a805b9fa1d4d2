"""The app's role is granted the schema by the deployer's migration, never owns it, and says what is missing:
an app whose role was not granted answers with the command that grants it; a schema someone else created first
is handed to the owner role only by the statement the deployer is told to run, and nothing is half-made before."""

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support import deployer
from tests.support.appenv import password_role_env
from tests.support.in_app import run_with_database
from tests.support.template import render


@pytest.mark.parametrize("driver", ["psycopg3", "psycopg2", "asyncpg", "sqlalchemy"])
def test_foreign_schema_and_missing_grants_say_what_fixes_them(tmp_path: Path, pg_server: Any, driver: str) -> None:
    app = render(tmp_path, framework="fastapi", driver=driver, create_database=False) / "app"
    role, env = password_role_env(pg_server, tmp_path)
    found = deployer.prepare(pg_server, env["PGDATABASE"])
    with pg_server.connect_superuser(env["PGDATABASE"]) as admin:
        admin.execute("CREATE SCHEMA app_data")  # created by a human first, as often happens

    refused = deployer.run(app, found, "upgrade", "--app-role", role)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "belong to postgres, not to the owner role" in refused.stderr, refused.stderr
    fix = re.search(r'as postgres: (ALTER SCHEMA app_data OWNER TO "[^"]+");', refused.stderr)
    assert fix and found.owner in fix.group(1), refused.stderr
    with pg_server.connect_superuser(env["PGDATABASE"]) as admin:
        assert admin.execute("SELECT to_regclass('app_data.items')").fetchone()[0] is None  # nothing half-made
        admin.execute(fix.group(1))

    # Migrated, but no role granted: the app says which command grants it.
    assert deployer.run(app, found, "upgrade").returncode == 0
    opened = run_with_database(app, env, "pass", driver == "asyncpg")
    assert opened.returncode != 0 and "NotMigrated" in opened.stderr, opened.stderr
    assert f'role "{role}" may not read schema app_data' in opened.stderr, opened.stderr
    assert f"database.migrate upgrade --app-role {role}" in opened.stderr, opened.stderr

    deployer.upgrade(app, found, role)
    assert run_with_database(app, env, "pass", driver == "asyncpg").returncode == 0
    with pg_server.connect_superuser(env["PGDATABASE"]) as admin:
        owners = admin.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'app_data'").fetchall()
        assert owners == [(found.owner,)]
        assert admin.execute("SELECT has_schema_privilege(%s, 'app_data', 'CREATE')", [role]).fetchone() == (False,)

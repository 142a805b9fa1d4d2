"""When someone else owns the app's schema, the app stops with the GRANT that fixes it, and the GRANT does."""

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.appenv import app_python, password_role_env
from tests.support.template import render

OPEN = {
    False: "from database import open_database; open_database().close()",
    True: "import asyncio\nfrom database import open_database\n"
    "async def main():\n    await (await open_database()).close()\nasyncio.run(main())",
}


@pytest.mark.parametrize("driver", ["psycopg3", "psycopg2", "asyncpg", "sqlalchemy"])
def test_foreign_schema_fails_with_the_grant_that_fixes_it(tmp_path: Path, pg_server: Any, driver: str) -> None:
    root = render(tmp_path, framework="fastapi", driver=driver, create_database=False)
    role, env = password_role_env(pg_server, tmp_path)
    with pg_server.connect_superuser(env["PGDATABASE"]) as admin:
        admin.execute("CREATE SCHEMA app_data")  # created by a human first, as often happens

    def start_app() -> subprocess.CompletedProcess[str]:
        code = OPEN[driver == "asyncpg"]
        return subprocess.run(
            [str(app_python()), "-c", code], cwd=root / "app", env=env, capture_output=True, text=True
        )

    refused = start_app()
    assert refused.returncode != 0
    grant = re.search(r"(GRANT USAGE, CREATE ON SCHEMA app_data TO \"[^\"]+\");", refused.stderr)
    assert grant and role in grant.group(1), refused.stderr
    with pg_server.connect_superuser(env["PGDATABASE"]) as admin:
        assert admin.execute("SELECT to_regclass('app_data.items')").fetchone()[0] is None  # nothing half-made
        admin.execute(grant.group(1))
    started = start_app()
    assert started.returncode == 0, started.stderr
    with pg_server.connect_superuser(env["PGDATABASE"]) as admin:
        owner = admin.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'app_data' AND tablename = 'items'")
        assert owner.fetchone()[0] == role

"""The cached virtual environment the rendered apps run in during tests."""

import fcntl
import hashlib
import os
import secrets
import subprocess
import sys
import uuid
import venv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent
REQUIREMENTS = TESTS / "app-requirements.txt"  # locked with hashes (scripts/lock_requirements.py)


def cache_dir() -> Path:
    return Path(os.environ.get("LAKEBASE_APP_CACHE", Path.home() / ".cache" / "lakebase-app"))


def app_python() -> Path:
    """Create (once, under a file lock so parallel workers wait) and return the env's python."""
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + sys.version.encode()).hexdigest()[:12]
    env_dir = cache_dir() / f"appenv-{key}"
    python = env_dir / "bin" / "python"
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(env_dir.parent / f"appenv-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (env_dir / ".complete").exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--require-hashes",
                    "-r",
                    str(REQUIREMENTS),
                ],
                check=True,
            )
            (env_dir / ".complete").write_text("ok\n")
    return python


def password_role_env(pg_server: Any, home: Path) -> tuple[str, dict[str, str]]:
    """A new login role with a password and a database of its own (CONNECT, CREATE), as for local development.

    Returns the role and the environment a rendered app needs to reach it with PGPASSWORD.
    """
    role = f"dev_{uuid.uuid4().hex[:12]}"
    password = secrets.token_urlsafe(24)
    pg_server.create_service_principal_role(role)
    pg_server.set_password(role, password, datetime.now(UTC) + timedelta(hours=1))
    env = {**pg_server.env_for_app(role), "PGDATABASE": pg_server.create_database_for(role), "PGPASSWORD": password}
    env.update(PATH="/usr/bin:/bin", HOME=str(home))
    return role, env

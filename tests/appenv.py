"""The cached virtual environment the rendered apps run in during tests."""

import fcntl
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "app-requirements.txt"


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
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
                check=True,
            )
            (env_dir / ".complete").write_text("ok\n")
    return python

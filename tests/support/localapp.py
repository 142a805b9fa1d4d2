"""Start a rendered project the way `./run-local.sh` does (local/run.py, embedded PostgreSQL), for tests."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.appenv import app_python
from tests.support.ports import free_port
from tests.support.waiting import HANG_GUARD, until_serving


@dataclass
class LocalApp:
    url: str
    startup_seconds: float
    log: Path
    postgres_home: Path

    def _postgres_line(self) -> re.Match:
        """run.py's "PostgreSQL: socket directory <dir>, port <port> (data in <home>)" line."""
        found = re.search(r"PostgreSQL: socket directory (\S+), port (\d+) \(data in (\S+)\)", self.log.read_text())
        assert found, f"no PostgreSQL line in local/run.py's log:\n{self.log.read_text()[-3000:]}"
        return found

    @property
    def postgres_port(self) -> int:
        return int(self._postgres_line()[2])

    def postgres_login(self, user: str = "app", dbname: str = "databricks_postgres") -> dict[str, str]:
        """psycopg.connect() keywords for the embedded server, as the developer (the password from its file)."""
        sockets, port, home = self._postgres_line().groups()
        password = (Path(home) / "passwords" / user).read_text().strip()
        return {"host": sockets, "port": port, "user": user, "password": password, "dbname": dbname}


@contextmanager
def running_local_app(root: Path, workdir: Path) -> Iterator[LocalApp]:
    """Run local/run.py; yield once the first page answers 200; stop it and check PostgreSQL stopped too."""
    port = free_port()
    python = app_python()
    # As root, run.py keeps PostgreSQL in $TMPDIR for 'nobody': a directory 'nobody' can reach.
    pg_tmp = Path(tempfile.mkdtemp(prefix="lakebase-local-"))
    pg_tmp.chmod(0o755)
    env = {"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(pg_tmp)}
    log_path = workdir / f"run-{port}.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        run = subprocess.Popen(
            [str(python), "local/run.py", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            until_serving(url + "/", run, lambda: log_path.read_text(errors="replace"))
            try:
                yield LocalApp(url, time.monotonic() - started, log_path, pg_tmp)
            except AssertionError as failed:  # what the app said meanwhile belongs to the failure
                raise AssertionError(
                    f"{failed}\n--- local/run.py's log ---\n{log_path.read_text()[-4000:]}"
                ) from failed
        finally:
            run.send_signal(signal.SIGTERM)
            try:
                run.wait(timeout=HANG_GUARD)  # run.py stops the app, then PostgreSQL
            finally:
                if run.poll() is None:
                    os.killpg(run.pid, signal.SIGKILL)
    left_running = list(pg_tmp.rglob("postmaster.pid")) + list(root.glob(".local-postgres/data/postmaster.pid"))
    shutil.rmtree(pg_tmp, ignore_errors=True)
    assert not left_running, "the embedded PostgreSQL was left running"

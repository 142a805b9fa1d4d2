"""Start a rendered project the way `./run-local.sh` does (local/run.py, embedded PostgreSQL), for tests."""

import json
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

from tests.harness.ports import free_port
from tests.support.appenv import app_python
from tests.support.waiting import HANG_GUARD, until_serving


@dataclass
class LocalApp:
    url: str
    startup_seconds: float
    log: Path
    postgres_home: Path
    database: str  # the app's local database: the project's database_name answer

    def _postgres_line(self) -> re.Match:
        """run.py's "PostgreSQL: socket directory <dir>, port <port> (data in <home>)" line."""
        found = re.search(r"PostgreSQL: socket directory (\S+), port (\d+) \(data in (\S+)\)", self.log.read_text())
        assert found, f"no PostgreSQL line in local/run.py's log:\n{self.log.read_text()[-3000:]}"
        return found

    @property
    def key(self) -> str:
        """This run's key, from the address run.py prints for the developer (app/identity.py)."""
        return re.search(r"/\?local_run_key=(\S+)", self.log.read_text())[1]

    @property
    def sign_in_url(self) -> str:
        return f"{self.url}/?local_run_key={self.key}"

    @property
    def cookie(self) -> dict[str, str]:
        """The Cookie header a browser sends once it opened sign_in_url."""
        return {"Cookie": f"local_run_{self.url.rsplit(':', 1)[1]}={self.key}"}

    @property
    def postgres_port(self) -> int:
        return int(self._postgres_line()[2])

    def postgres_login(self, user: str = "app", dbname: str | None = None) -> dict[str, str]:
        """psycopg.connect() keywords for the embedded server, as the developer (the password from its file), to
        the app's database unless `dbname` says another."""
        sockets, port, home = self._postgres_line().groups()
        password = (Path(home) / "passwords" / user).read_text().strip()
        return {"host": sockets, "port": port, "user": user, "password": password, "dbname": dbname or self.database}


@contextmanager
def running_local_app(root: Path, workdir: Path, *args: str, **extra_env: str) -> Iterator[LocalApp]:
    """Run local/run.py (with `args`, e.g. "lakebase"); yield once the first page answers 200; stop it and check
    PostgreSQL stopped too."""
    port = free_port()
    python = app_python()
    # As root, run.py keeps PostgreSQL in $TMPDIR for 'nobody': a directory 'nobody' can reach.
    pg_tmp = Path(tempfile.mkdtemp(prefix="lakebase-local-"))
    pg_tmp.chmod(0o755)
    env = {"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(pg_tmp), **extra_env}
    log_path = workdir / f"run-{port}.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        run = subprocess.Popen(
            [str(python), "local/run.py", *args, "--port", str(port)],
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
                database = json.loads((root / ".cookiecutter.json").read_text())["cookiecutter"]["database_name"]
                yield LocalApp(url, time.monotonic() - started, log_path, pg_tmp, database)
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


# Run with the app environment's python (Streamlit's protobufs, websockets): open a session the way Streamlit's page
# does (/_stcore/stream, a rerun), on a socket to 127.0.0.1 but with the Host and Origin of `host`, as a browser does
# after DNS rebinding; print what the script showed, as [element type, body] pairs.
STREAMLIT_SESSION = """
import json, socket, sys
from websockets.sync.client import connect
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

port, host, patience, query = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
sock = socket.create_connection(("127.0.0.1", port), timeout=patience)
shown = []
url, origin = f"ws://{host}:{port}/_stcore/stream", f"http://{host}:{port}"
with connect(url, sock=sock, origin=origin, subprotocols=["streamlit"], open_timeout=patience) as ws:
    rerun = BackMsg()
    rerun.rerun_script.query_string = query
    rerun.rerun_script.page_script_hash = ""
    ws.send(rerun.SerializeToString())
    while True:
        msg = ForwardMsg()
        msg.ParseFromString(ws.recv(timeout=patience))
        if msg.WhichOneof("type") == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            kind = element.WhichOneof("type")
            shown.append([kind, getattr(getattr(element, kind), "body", "")])
        if msg.WhichOneof("type") == "script_finished":
            break
print(json.dumps(shown))
"""


def streamlit_shows(app: LocalApp, host: str, query: str = "") -> list[list[str]]:
    """What a Streamlit session opened with this Host and Origin (and page query) shows: [element type, body]."""
    port = app.url.rsplit(":", 1)[1]
    script = app.log.with_name(f"streamlit-session-{port}.py")
    script.write_text(STREAMLIT_SESSION)
    done = subprocess.run(
        [str(app_python()), str(script), port, host, str(HANG_GUARD), query],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)

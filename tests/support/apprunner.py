"""Run a rendered app the way the Databricks Apps runtime does, against the test harness (for tests/test_e2e.py).

The command comes from the project's app/app.yaml ($DATABRICKS_APP_PORT substituted), the working directory is
app/, and the environment holds only what the runtime injects: DATABRICKS_* for the app's service principal
(pointing at the WorkspaceStub), PG* without PGPASSWORD, and app.yaml's env entries. As on Databricks, the
deployer migrates the database before the app's code starts (tests/support/deployer.py): ``start`` runs
``python -m database.migrate upgrade`` as the deployment's deployer first, unless told not to.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.support import deployer
from tests.support.appenv import app_python
from tests.support.waiting import HANG_GUARD, until_serving


def app_yaml(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / "app" / "app.yaml").read_text())


def command(project: Path, port: int) -> list[str]:
    return [str(part).replace("$DATABRICKS_APP_PORT", str(port)) for part in app_yaml(project)["command"]]


def framework_of(project: Path) -> str:
    main = (project / "app" / "main.py").read_text()
    cmd = app_yaml(project)["command"]
    if cmd[0] == "streamlit":
        return "streamlit"
    if cmd[0] == "gunicorn":
        return "dash" if "from dash import" in main else "flask"
    return "gradio" if "import gradio" in main else "fastapi"


def runtime_env(
    project: Path,
    workspace_stub: Any,
    client: Any,
    port: int,
    home: Path,
    dbname: str | None = None,
    appname: str = "lakebase-e2e",
) -> dict[str, str]:
    """Exactly what the Apps runtime gives the app process (plus PATH, HOME, DATABRICKS_CONFIG_FILE); the database's
    owner role and deployer are made on first use."""
    env = dict(workspace_stub.env_for_app(client, appname=appname))
    if dbname:
        env["PGDATABASE"] = dbname
    deployer.prepare(workspace_stub.pg, env["PGDATABASE"])
    env["DATABRICKS_APP_PORT"] = str(port)
    for entry in app_yaml(project).get("env") or []:
        if "valueFrom" in entry:
            env[entry["name"]] = workspace_stub.value_from(entry["valueFrom"])  # as strict as the Apps docs
        else:
            env[entry["name"]] = str(entry["value"])
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        PATH=f"{app_python().parent}:/usr/bin:/bin",
        HOME=str(home),
        DATABRICKS_CONFIG_FILE="/nonexistent",
    )
    assert "PGPASSWORD" not in env
    return env


@dataclass
class App:
    project: Path
    port: int
    proc: subprocess.Popen
    log: Path
    started: float = field(default_factory=time.monotonic)
    ready_after: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def migrate(project: Path, env: dict[str, str]) -> None:
    """The deploy step before the code: the deployer applies the pending migrations and grants the app's role."""
    found = deployer.of(env)
    assert found is not None, f"no deployer prepared for database {env.get('PGDATABASE')} (use runtime_env)"
    deployer.upgrade(project / "app", found, env["PGUSER"])


def start(project: Path, env: dict[str, str], log: Path, *, migrate_first: bool = True) -> App:
    if migrate_first:
        migrate(project, env)
    port = int(env["DATABRICKS_APP_PORT"])
    with log.open("w") as out:
        proc = subprocess.Popen(
            command(project, port),
            cwd=project / "app",
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return App(project, port, proc, log)


def wait_ready(app: App, path: str = "/", poll: float = 0.2) -> None:
    """Until the app answers 200 on `path` (fails at once if it exits; see waiting.py); sets app.ready_after."""
    until_serving(app.url + path, app.proc, app.log_text, poll)
    app.ready_after = time.monotonic() - app.started


def stop(app: App) -> None:
    if app.proc.poll() is None:
        try:
            os.killpg(app.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            app.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:  # whatever is left of the group (gunicorn workers, streamlit children)
        os.killpg(app.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if app.proc.poll() is None:
        app.proc.wait(timeout=10)


def healthz_at_once(apps: list[App]) -> dict[int, int]:
    """GET /healthz on every app at the same moment: index -> status."""
    status: dict[int, int] = {}

    def health(i: int) -> None:
        status[i] = requests.get(f"{apps[i].url}/healthz", timeout=HANG_GUARD).status_code

    threads = [threading.Thread(target=health, args=(i,)) for i in range(len(apps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return status


@contextmanager
def running_app(
    project: Path, env: dict[str, str], log: Path, ready_path: str = "/", *, migrate_first: bool = True
) -> Iterator[App]:
    app = start(project, env, log, migrate_first=migrate_first)
    try:
        wait_ready(app, ready_path)
        yield app
    finally:
        stop(app)


class Driver:
    """A helper script run with the app env's python; JSON lines in, JSON lines out (one answer per request)."""

    def __init__(self, script: Path, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        self._err = log.open("w")
        self.proc = subprocess.Popen(
            [str(app_python()), str(script)],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            start_new_session=True,
        )

    def call(self, op: str, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"driver died:\n{self.log.read_text(errors='replace')[-6000:]}")
        answer = json.loads(line)
        if "error" in answer:
            raise DriverError(answer["error"])
        return answer["ok"]

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self._err.close()


class DriverError(RuntimeError):
    pass


_DRIVER_MAIN = """
import json, sys, traceback

def serve(handle):
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = {"ok": handle(request)}
        except Exception as error:
            answer = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}
            print(answer["trace"], file=sys.stderr, flush=True)
        sys.stdout.write(json.dumps(answer, default=str) + "\\n")
        sys.stdout.flush()
"""

GRADIO_DRIVER = (
    _DRIVER_MAIN
    + """
from gradio_client import Client
URL = sys.argv[1]
clients = {}

def handle(request):
    user = request.get("user")
    if user not in clients:
        clients[user] = Client(URL, headers={"X-Forwarded-Email": user} if user else None, verbose=False)
    result = clients[user].predict(*request["args"], api_name=request["api_name"])
    return result

serve(handle)
"""
)

STREAMLIT_DRIVER = (
    _DRIVER_MAIN
    + """
import os
import streamlit.runtime.context as context
from streamlit.testing.v1 import AppTest
MAIN = sys.argv[1]
sys.path.insert(0, os.path.dirname(MAIN))  # as `streamlit run main.py` from app/ has it
# AppTest cannot seed request headers (streamlit/testing/v1/app_test.py: "headers ... come from the
# session's client"): st.context.headers answers with the user this request names, as the proxy would.
USER = {"email": None}
context.ContextProxy.headers = property(
    lambda self: context.StreamlitHeaders([("X-Forwarded-Email", USER["email"])] if USER["email"] else [])
)

def state(at):
    return {
        "exceptions": [str(e.value) for e in at.exception],
        "errors": [str(e.value) for e in at.error],
        "titles": [t.value for t in at.text],
        "checkboxes": {c.key: c.value for c in at.checkbox},
    }

def handle(request):
    USER["email"] = request.get("user")
    at = AppTest.from_file(MAIN, default_timeout=HANG_GUARD)
    at.run()
    op = request["op"]
    if op == "add":
        at.text_input[0].input(request["title"])
        [button for button in at.button if button.label == "Add"][0].click()
        at.run()
    elif op == "toggle":
        box = at.checkbox(key=f"done-{request['id']}")
        (box.uncheck() if box.value else box.check())
        at.run()
    elif op == "delete":
        at.button(key=f"delete-{request['id']}").click()
        at.run()
    if op == "list":
        return state(at)
    shown = state(at)  # what the session that acted shows (st.error on a refused title)
    at = AppTest.from_file(MAIN, default_timeout=HANG_GUARD)  # a fresh session shows what is stored now
    at.run()
    return {**state(at), "acting_session": shown}

serve(handle)
"""
)


def driver(kind: str, tmp_path: Path, env: dict[str, str], cwd: Path, arg: str) -> Driver:
    script = tmp_path / f"{kind}_driver.py"
    source = {"gradio": GRADIO_DRIVER, "streamlit": STREAMLIT_DRIVER}[kind].replace("sys.argv[1]", json.dumps(arg))
    script.write_text(f"HANG_GUARD = {HANG_GUARD!r}\n{source}")
    return Driver(script, env, cwd, tmp_path / f"{kind}_driver.log")

"""`./run-local.sh`'s core: a rendered app starts on this machine against an embedded PostgreSQL."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.appenv import app_python
from tests.template import render

FIRST_PAGE = {"streamlit": "/", "dash": "/", "gradio": "/", "flask": "/", "fastapi": "/"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


@pytest.mark.parametrize("framework", ["flask", "fastapi", "dash", "gradio", "streamlit"])
def test_local_run_serves_the_app_against_embedded_postgres(tmp_path: Path, framework: str) -> None:
    driver = "asyncpg" if framework == "fastapi" else "psycopg3"
    root = render(tmp_path, framework=framework, driver=driver, project_name=f"Local {framework}")
    port = free_port()
    python = app_python()
    # As root, run.py keeps PostgreSQL in $TMPDIR for 'nobody': a directory 'nobody' can reach.
    pg_tmp = Path(tempfile.mkdtemp(prefix="lakebase-local-"))
    pg_tmp.chmod(0o755)
    env = {"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(pg_tmp)}
    log = (tmp_path / "run.log").open("w")
    started = time.monotonic()
    run = subprocess.Popen(
        [str(python), "local/run.py", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = started + 90
        while True:
            assert run.poll() is None, (tmp_path / "run.log").read_text()
            try:
                status, _ = get(f"http://127.0.0.1:{port}{FIRST_PAGE[framework]}")
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.2)
        print(f"{framework}: first page after {time.monotonic() - started:.1f} s")
        if framework in ("flask", "fastapi"):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/items",
                data=json.dumps({"title": "runs locally"}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 201
            status, body = get(f"http://127.0.0.1:{port}/api/items", timeout=10)
            assert [item["title"] for item in json.loads(body)] == ["runs locally"]
        if framework != "streamlit":
            assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        run.send_signal(signal.SIGTERM)
        try:
            run.wait(timeout=30)
        finally:
            os.killpg(run.pid, signal.SIGKILL) if run.poll() is None else None
            log.close()
    pid_files = list(pg_tmp.rglob("postmaster.pid"))
    shutil.rmtree(pg_tmp, ignore_errors=True)
    assert not pid_files, "the embedded PostgreSQL was left running"

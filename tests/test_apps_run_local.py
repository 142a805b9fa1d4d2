"""`databricks apps run-local`, the CLI's own local runner, on a rendered project: what the README says it lacks."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.harness.ports import free_port
from tests.support.appenv import app_python
from tests.support.databricks_cli import Cli, FakeWorkspace, tools
from tests.support.template import project_docs, render
from tests.support.waiting import HANG_GUARD


def test_run_local_lacks_what_the_readme_says(fake_workspace: FakeWorkspace, tmp_path: Path) -> None:
    project = render(tmp_path / "render", framework="fastapi", driver="psycopg3")
    readme = project_docs(project)  # README.md and docs/, where the project says what run-local lacks
    cli = Cli(fake_workspace, tmp_path / "home")
    env = {**cli.environ(), "PATH": f"{Path(app_python()).parent}{os.pathsep}{cli.environ()['PATH']}"}
    command = [str(tools()["DATABRICKS_CLI_NEWEST"]), "apps", "run-local"]

    refused = subprocess.run(command, cwd=project / "app", env=env, capture_output=True, text=True, timeout=120)
    said = "LAKEBASE_ENDPOINT defined in app.yaml with valueFrom property and can't be resolved locally"
    assert refused.returncode != 0 and said in refused.stderr, refused.stderr
    assert said in readme and "./run-local.sh" in readme

    app_port, proxy_port = free_port(), free_port()
    ports = ["--port", str(proxy_port), "--app-port", str(app_port)]
    endpoint = ["--env", "LAKEBASE_ENDPOINT=projects/p/branches/b/endpoints/e"]
    with subprocess.Popen(
        [*command, *endpoint, *ports],
        cwd=project / "app",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as running:
        assert running.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + HANG_GUARD
        try:  # wait on what the app reports: uvicorn's line naming the address it serves
            while not any("Uvicorn running on" in line for line in lines) and time.monotonic() < deadline:
                line = running.stdout.readline()
                if not line:
                    break
                lines.append(line)
        finally:
            os.killpg(running.pid, signal.SIGTERM)
            running.wait(timeout=60)
    log = "".join(lines)
    # app.yaml's command as written: on every interface, past the CLI's proxy (README: what it lacks)
    assert f"Uvicorn running on http://0.0.0.0:{app_port}" in log, log
    assert f"--host=0.0.0.0 --port={app_port}" in log and "0.0.0.0" in readme

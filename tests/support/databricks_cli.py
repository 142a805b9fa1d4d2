"""The real Databricks CLI and Databricks' own fake workspace (libs/testserver), for the bundle and workflow tests.

scripts/databricks-cli.sh builds both from github.com/databricks/cli (cached); this module runs them:

    with FakeWorkspace.start() as server:
        cli = Cli(server, identity="user", home=tmp_path)
        cli.run("bundle", "validate", "-o", "json", cwd=project)

Identities are the testserver's (libs/testserver/fake_workspace.go): a token starting `dbapi0` is the user
tester@databricks.com, `dbapi1` a service principal, `dbapi2` a guest service principal. The rest of the token
picks the fake workspace: tokens that share it see one workspace, so a test gets its own by its own suffix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TOKEN_PREFIX = {"user": "dbapi0", "service_principal": "dbapi1", "guest_service_principal": "dbapi2"}
# The user behind a dbapi0 token and the service principal behind dbapi1 (fake_workspace.go TestUser, TestUserSP).
USER_NAME = "tester@databricks.com"
SERVICE_PRINCIPAL = "aaaaaaaa-bbbb-4ccc-dddd-eeeeeeeeeeee"


@cache
def tools() -> dict[str, Path]:
    """Paths of the built binaries: DATABRICKS_CLI_NEWEST, DATABRICKS_CLI_FLOOR, FAKEWORKSPACE."""
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "databricks-cli.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/databricks-cli.sh failed:\n{done.stderr}")
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {key: Path(value) for key, value in found.items()}


@cache
def cli_version(binary: Path) -> str:
    """'1.12.1' from `databricks --version` ('Databricks CLI v1.12.1')."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().rsplit("v", 1)[-1]


def cli_binaries() -> dict[str, Path]:
    """{'1.12.1': path, '1.11.0': path}: the newest release and the bundle's floor."""
    found = tools()
    return {cli_version(found[key]): found[key] for key in ("DATABRICKS_CLI_NEWEST", "DATABRICKS_CLI_FLOOR")}


class FakeWorkspace:
    """A running fakeworkspace process on 127.0.0.1; stop() (or the context manager) ends it."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url
        self._stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    @classmethod
    def start(cls, deadline_s: float = 120.0) -> FakeWorkspace:
        process = subprocess.Popen(
            [str(tools()["FAKEWORKSPACE"])],
            stdin=subprocess.PIPE,  # closing it (or our death) stops the server
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = ""
        started = time.monotonic()
        # The server prints one line once it serves; wait on that line, not on a fixed time.
        while not line.startswith("LISTENING "):
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                raise RuntimeError(f"fakeworkspace exited with {process.returncode}: {process.stderr.read()}")
            if time.monotonic() - started > deadline_s:
                process.kill()
                raise RuntimeError("fakeworkspace printed no LISTENING line")
        return cls(process, line.split()[1])

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:  # noqa: S310 (127.0.0.1 only)
            return json.load(response)

    def errors(self) -> list[str]:
        """What the testserver reported through t.Errorf, such as its "No handler for URL"."""
        return self._get("/__lakebase/errors")

    def requests(self, workspace: str | None = None) -> list[dict[str, Any]]:
        """Every request it served (method, path, query, body, identity), of one workspace if named."""
        return self._get("/__lakebase/requests" + (f"?workspace={workspace}" if workspace else ""))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> FakeWorkspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Cli:
    """The real `databricks` against a FakeWorkspace, as one identity in one fake workspace."""

    server: FakeWorkspace
    home: Path
    identity: str = "user"
    workspace: str = field(default_factory=lambda: uuid.uuid4().hex)
    binary: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return TOKEN_PREFIX[self.identity] + self.workspace

    def as_identity(self, identity: str) -> Cli:
        """The same fake workspace, another identity (a user deploys dev, a service principal the CI targets)."""
        return Cli(self.server, self.home, identity, self.workspace, self.binary, dict(self.env))

    def environ(self) -> dict[str, str]:
        self.home.mkdir(parents=True, exist_ok=True)
        python_dir = str(Path(sys.executable).parent)
        return {
            "PATH": os.pathsep.join([python_dir, "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(self.home),
            "DATABRICKS_HOST": self.server.url,
            "DATABRICKS_TOKEN": self.token,
            "DATABRICKS_CONFIG_FILE": str(self.home / ".databrickscfg"),  # none: nothing of the developer's
            "DATABRICKS_CACHE_DIR": str(self.home / ".cache"),
            "DO_NOT_TRACK": "1",
            **self.env,
        }

    def run(self, *args: str, cwd: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        binary = self.binary or tools()["DATABRICKS_CLI_NEWEST"]
        errors_before = len(self.server.errors())
        done = subprocess.run(
            [str(binary), *args], cwd=cwd, env=self.environ(), capture_output=True, text=True, timeout=timeout
        )
        unanswered = self.server.errors()[errors_before:]
        # A request the fake workspace cannot answer fails the step that sent it, never passes silently.
        assert not unanswered, (
            f"`databricks {' '.join(args)}` sent requests the fake workspace has no handler for:\n"
            + "\n".join(unanswered)
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"`databricks {' '.join(args)}` exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done

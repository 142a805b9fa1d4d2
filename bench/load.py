"""Benchmark rendered apps under load against a real PostgreSQL (TLS + scram) and a workspace stub.

Usage:
    /tmp/dev/bin/python bench/load.py [--short] [--combos fastapi:asyncpg,flask:psycopg3]
                                      [--clients 32] [--seconds 10] [--scenarios 1,2,3]

Prints one markdown table per run and whether each target / invariant held. Not a test: in --short
mode the exit status is non-zero only when an INVARIANT fails (bounded connections, zero failures
across credential rotation and a restart, three instances bootstrapping), never for a speed ratio.

Each app runs its own app.yaml command in the app environment (tests.appenv.app_python()), with only
what the Apps runtime gives it: DATABRICKS_APP_PORT, DATABRICKS_HOST/CLIENT_ID/CLIENT_SECRET of a
stub service principal, PG* without PGPASSWORD, app.yaml's env, LAKEBASE_ENDPOINT. PGAPPNAME is
unique per app instance, so pg_stat_activity (sampled every 50 ms as the superuser) tells how many
server connections each instance holds. The load generator is asyncio with keep-alive HTTP/1.1 on
127.0.0.1, bounded in clients and seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.harness.postgres import PostgresServer  # noqa: E402
from tests.harness.workspace_stub import KINDS, WorkspaceStub  # noqa: E402
from tests.support.appenv import app_python  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.template import render, valid_combinations  # noqa: E402

ENDPOINT = "projects/p/branches/production/endpoints/primary"
API_FRAMEWORKS = {"fastapi", "flask"}
READERS = 8  # owners whose lists the GETs read (seeded with SEED_ITEMS each)
SEED_ITEMS = 5

# ---------------------------------------------------------------------------------------------
# the connect-per-request baselines (what the seed docs show), same SQL as items/queries.py

NAIVE_FASTAPI = '''
"""Connect-per-request baseline: asyncpg.connect() inside every handler, static PGPASSWORD."""
import os

import asyncpg
from fastapi import FastAPI, Header
from pydantic import BaseModel

app = FastAPI()


class NewItem(BaseModel):
    title: str


async def connect():
    return await asyncpg.connect(
        host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]), user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"], database=os.environ["PGDATABASE"], ssl="require",
        server_settings={"search_path": "app_data", "application_name": os.environ["PGAPPNAME"]},
    )


@app.get("/healthz")
async def healthz():
    conn = await connect()
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()
    return {"database": "ok"}


@app.get("/api/items")
async def list_items(owner: str = Header("local.user@example.com", alias="X-Forwarded-Email")):
    conn = await connect()
    try:
        rows = await conn.fetch(
            "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = $1 ORDER BY id",
            owner.strip().lower(),
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


@app.post("/api/items", status_code=201)
async def create_item(new: NewItem, owner: str = Header("local.user@example.com", alias="X-Forwarded-Email")):
    conn = await connect()
    try:
        row = await conn.fetchrow(
            "INSERT INTO items (owner, title) VALUES ($1, $2) RETURNING id, title, done, created_at, updated_at",
            owner.strip().lower(), new.title.strip(),
        )
        return dict(row)
    finally:
        await conn.close()
'''

NAIVE_FLASK = '''
"""Connect-per-request baseline: psycopg.connect() in every request (libpq reads PG*, PGPASSWORD)."""
import psycopg
from flask import Flask, jsonify, request
from psycopg.rows import dict_row

app = Flask(__name__)


def connect():
    return psycopg.connect(options="-c search_path=app_data", row_factory=dict_row)


def owner():
    return (request.headers.get("X-Forwarded-Email") or "local.user@example.com").strip().lower()


@app.get("/healthz")
def healthz():
    with connect() as conn:
        conn.execute("SELECT 1")
    return jsonify(database="ok")


@app.get("/api/items")
def list_items():
    with connect() as conn:
        rows = conn.execute(
            "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %(owner)s ORDER BY id",
            {"owner": owner()},
        ).fetchall()
    return jsonify(rows)


@app.post("/api/items")
def create_item():
    with connect() as conn:
        row = conn.execute(
            "INSERT INTO items (owner, title) VALUES (%(owner)s, %(title)s) "
            "RETURNING id, title, done, created_at, updated_at",
            {"owner": owner(), "title": request.get_json()["title"].strip()},
        ).fetchone()
    return jsonify(row), 201
'''

# ---------------------------------------------------------------------------------------------
# the bare-pool baselines: the driver's own pool as its docs show it, a static PGPASSWORD (libpq's PG*
# variables), no token, no retry, no validation; the same SQL, framework and server command as the
# rendered app. What the rendered app costs on top of them is its connection layer and its contract.

BARE_DRIVERS = {
    "psycopg3": """
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

LIST = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %s ORDER BY id"
INSERT = "INSERT INTO items (owner, title) VALUES (%s, %s) RETURNING id, title, done, created_at, updated_at"
pool = ConnectionPool("", min_size=1, max_size=5, kwargs={"options": "-c search_path=app_data", "row_factory": dict_row})


def fetch(sql, params):
    with pool.connection() as conn:
        return conn.execute(sql, params).fetchall()
""",
    "psycopg2": """
import threading

import psycopg2.extras
import psycopg2.pool

LIST = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %s ORDER BY id"
INSERT = "INSERT INTO items (owner, title) VALUES (%s, %s) RETURNING id, title, done, created_at, updated_at"
# minconn = maxconn: the pool closes every connection handed back beyond minconn (psycopg2/pool.py)
pool = psycopg2.pool.ThreadedConnectionPool(5, 5, "", options="-c search_path=app_data")
slots = threading.BoundedSemaphore(5)  # the pool raises instead of waiting when all 5 are out


def fetch(sql, params):
    with slots:
        conn = pool.getconn()
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(sql, params)
                rows = cur.fetchall()
            conn.commit()
            return rows
        finally:
            pool.putconn(conn)
""",
    "sqlalchemy": """
from sqlalchemy import create_engine

LIST = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %s ORDER BY id"
INSERT = "INSERT INTO items (owner, title) VALUES (%s, %s) RETURNING id, title, done, created_at, updated_at"
engine = create_engine(
    "postgresql+psycopg://", pool_size=5, max_overflow=0, connect_args={"options": "-c search_path=app_data"}
)


def fetch(sql, params):
    with engine.begin() as conn:
        return [dict(row) for row in conn.exec_driver_sql(sql, params).mappings()]
""",
    "asyncpg": """
import asyncio
import os

import asyncpg

LIST = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = $1 ORDER BY id"
INSERT = "INSERT INTO items (owner, title) VALUES ($1, $2) RETURNING id, title, done, created_at, updated_at"
pool = None
opening = asyncio.Lock()


async def fetch(sql, params):
    global pool
    if pool is None:
        async with opening:
            if pool is None:
                pool = await asyncpg.create_pool(
                    min_size=1,
                    max_size=5,
                    server_settings={"search_path": "app_data", "application_name": os.environ["PGAPPNAME"]},
                )
    async with pool.acquire() as conn:
        return [dict(row) for row in await conn.fetch(sql, *params)]
""",
}

BARE_FRAMEWORKS = {
    "flask": """
from flask import Flask, jsonify, request

app = Flask(__name__)


def owner():
    return (request.headers.get("X-Forwarded-Email") or "").strip().lower()


@app.get("/healthz")
def healthz():
    fetch("SELECT 1 AS one", ())
    return jsonify(database="ok")


@app.get("/api/items")
def list_items():
    return jsonify(fetch(LIST, (owner(),)))


@app.post("/api/items")
def create_item():
    return jsonify(fetch(INSERT, (owner(), request.get_json()["title"].strip()))[0]), 201
""",
    "fastapi": """
from fastapi import FastAPI, Header
from pydantic import BaseModel

app = FastAPI()


class NewItem(BaseModel):
    title: str


@app.get("/healthz")
ASYNC def healthz():
    AWAIT fetch("SELECT 1 AS one", ())
    return {"database": "ok"}


@app.get("/api/items")
ASYNC def list_items(owner: str = Header("", alias="X-Forwarded-Email")):
    return AWAIT fetch(LIST, (owner.strip().lower(),))


@app.post("/api/items", status_code=201)
ASYNC def create_item(new: NewItem, owner: str = Header("", alias="X-Forwarded-Email")):
    return (AWAIT fetch(INSERT, (owner.strip().lower(), new.title.strip())))[0]
""",
}


def used(before: tuple[float, float], after: tuple[float, float]) -> tuple[float, float]:
    return after[0] - before[0], after[1] - before[1]


def cpu_ms(res: LoadResult, part: int | None = None) -> float:
    """CPU milliseconds per answered request (set by scenario 8): app + backends, or part 0 (app) or 1 (backends)."""
    served = res.ok + res.failed
    cpu = getattr(res, "cpu", (0.0, 0.0))
    return (sum(cpu) if part is None else cpu[part]) * 1000 / served if served else 0.0


def bare_app(framework: str, driver: str) -> str:
    is_async = driver == "asyncpg"
    web = BARE_FRAMEWORKS[framework].replace("ASYNC ", "async " if is_async else "")
    web = web.replace("AWAIT ", "await " if is_async else "")
    return f'"""Bare-pool baseline: {framework} + {driver}\'s own pool."""\n' + BARE_DRIVERS[driver] + web


NAIVE_APP_YAML = {
    "fastapi": {"command": ["uvicorn", "main:app", "--host=0.0.0.0", "--port=$DATABRICKS_APP_PORT"], "env": []},
    "flask": {
        "command": ["gunicorn", "main:app", "--bind=0.0.0.0:$DATABRICKS_APP_PORT", "--threads=8", "--access-logfile=-"],
        "env": [{"name": "WEB_CONCURRENCY", "value": "2"}],
    },
}


# ---------------------------------------------------------------------------------------------
# process bookkeeping: everything started here is stopped, even on Ctrl-C or failure

_PROCS: list[subprocess.Popen] = []


def _stop_proc(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    # a gunicorn worker left behind by its master would still hold the group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc in _PROCS:
        _PROCS.remove(proc)


def stop_all() -> None:
    for proc in list(_PROCS):
        _stop_proc(proc)


# ---------------------------------------------------------------------------------------------
# pg_stat_activity sampler


class Sampler:
    """Counts client backends by application_name every `interval` s; keeps the history."""

    NAME = "bench-sampler"

    def __init__(self, pg: PostgresServer, interval: float = 0.05) -> None:
        self.pg = pg
        self.interval = interval
        self.history: list[tuple[float, dict[str, int]]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(
                        self.pg.superuser_dsn_for("postgres"), autocommit=True, application_name=self.NAME
                    )
                rows = conn.execute(
                    "SELECT application_name, count(*) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1"
                ).fetchall()
                self.history.append((time.monotonic(), {name: int(n) for name, n in rows}))
            except psycopg.Error:
                self.errors += 1
                with contextlib.suppress(Exception):
                    if conn is not None:
                        conn.close()
                conn = None
            self._stop.wait(self.interval)
        if conn is not None:
            conn.close()

    def peak(self, names: list[str], t0: float = 0.0, t1: float = float("inf")) -> int:
        return max(
            (sum(counts.get(n, 0) for n in names) for t, counts in list(self.history) if t0 <= t <= t1),
            default=0,
        )


# ---------------------------------------------------------------------------------------------
# the load generator


@dataclass
class LoadResult:
    clients: int
    seconds: float
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    events: list[tuple[float, bool]] = field(default_factory=list)  # (monotonic end, ok)
    errors: Counter = field(default_factory=Counter)
    quantiles: dict[str, float] = field(default_factory=dict)  # seconds, as wrk reports them ("50%", "99%")

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if f"{q * 100:.0f}%" in self.quantiles:
            return self.quantiles[f"{q * 100:.0f}%"] * 1000
        if not self.latencies:
            return float("nan")
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000


def request_bytes(mode: str, i: int, n: int) -> bytes:
    if mode == "reads":
        return b"GET /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Email: reader0@example.com\r\n\r\n"
    if mode == "items":
        if (i + n) % 5 == 0:
            body = json.dumps({"title": f"item {i}-{n}"}).encode()
            return (
                f"POST /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Email: writer{i}@example.com\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
        return (
            f"GET /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Email: reader{i % READERS}@example.com\r\n\r\n"
        ).encode()
    return f"GET {mode} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()  # mode is a path


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    line = await reader.readline()
    if not line:
        raise ConnectionResetError("connection closed by the app")
    status = int(line.split()[1])
    length, chunked, close = None, False, False
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        key, _, value = header.partition(b":")
        key, value = key.strip().lower(), value.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif key == b"connection" and value == b"close":
            close = True
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()
        close = True
    return status, close


async def _load(ports: list[int], mode: str, clients: int, seconds: float, timeout: float) -> LoadResult:
    result = LoadResult(clients, seconds)
    deadline = time.monotonic() + seconds

    async def client(i: int) -> None:
        port = ports[i % len(ports)]
        reader = writer = None
        n = 0
        while time.monotonic() < deadline:
            data = request_bytes(mode, i, n)
            n += 1
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
                writer.write(data)
                status, close = await asyncio.wait_for(_read_response(reader), timeout)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                result.failed += 1
                result.errors[type(e).__name__] += 1
                result.events.append((time.monotonic(), False))
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.02)
                continue
            ok = 200 <= status < 300
            result.events.append((time.monotonic(), ok))
            if ok:
                result.ok += 1
                result.latencies.append(time.perf_counter() - t0)
            else:
                result.failed += 1
                result.errors[f"HTTP {status}"] += 1
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return result


def run_load(ports: list[int], mode: str, clients: int, seconds: float, timeout: float = 30.0) -> LoadResult:
    return asyncio.run(_load(ports, mode, clients, seconds, timeout))


def run_wrk(port: int, clients: int, seconds: float, user: str = "reader0@example.com") -> LoadResult:
    """GET /api/items as ``user`` with wrk (2 threads, keep-alive); the asyncio loader when wrk is missing."""
    if not shutil.which("wrk"):
        return run_load([port], "reads", clients, seconds)
    command = ["wrk", "-t2", f"-c{clients}", f"-d{seconds:g}s", "--latency", "-H", f"X-Forwarded-Email: {user}"]
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}/api/items"], capture_output=True, text=True, timeout=seconds + 60
    ).stdout
    result = LoadResult(clients, seconds)
    total = failed = 0
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1] == "requests" and words[0].isdigit():
            total = int(words[0])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            failed += int(words[-1])
            result.errors["non-2xx"] += int(words[-1])
        elif line.strip().startswith("Socket errors:"):
            failed += sum(int(w.strip(",")) for w in words if w.strip(",").isdigit())
            result.errors["socket"] += 1
        elif len(words) == 2 and words[0] in ("50%", "99%"):
            unit = next(u for u in ("us", "ms", "s") if words[1].endswith(u))
            result.quantiles[words[0]] = float(words[1][: -len(unit)]) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]
    result.ok, result.failed = total - failed, failed
    return result


def http(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None, timeout=10) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


# ---------------------------------------------------------------------------------------------
# the environment: server, stub, apps


@dataclass
class App:
    label: str
    appname: str  # PGAPPNAME: how its connections are counted
    proc: subprocess.Popen
    port: int
    log: Path
    bound: int  # DB_POOL_MAX_SIZE x processes
    health: str
    mode: str  # what the load generator drives
    client_id: str | None
    started: float = 0.0
    ready_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.python = app_python()
        self.tables: list[str] = []
        self.checks: list[tuple[str, str, bool, bool]] = []  # scenario, what, held, invariant
        self.projects: dict[tuple[str, str], Path] = {}
        self.servers: list[PostgresServer] = []
        self.stubs: list[WorkspaceStub] = []
        self.samplers: list[Sampler] = []

    # -------------------------------------------------------------- infrastructure
    def new_server(self, **kwargs) -> tuple[PostgresServer, WorkspaceStub, Sampler]:
        pg = PostgresServer(tls=True, **kwargs)
        self.servers.append(pg)
        pg.start()
        stub = WorkspaceStub(pg)
        self.stubs.append(stub)
        stub.start()
        sampler = Sampler(pg).start()
        self.samplers.append(sampler)
        return pg, stub, sampler

    def close(self) -> None:
        stop_all()
        for s in self.samplers:
            s.stop()
        for stub in self.stubs:
            stub.stop()
        for pg in self.servers:
            pg.stop()

    def project(self, framework: str, driver: str) -> Path:
        key = (framework, driver)
        if key not in self.projects:
            out = self.work / "render" / f"{framework}-{driver}"
            self.projects[key] = render(
                out,
                framework=framework,
                driver=driver,
                lakebase="autoscaling",
                create_database=False,
                project_slug=f"bench_{framework}_{driver}",
            )
        return self.projects[key]

    @staticmethod
    def new_database(pg: PostgresServer, role: str) -> str:
        return pg.create_database_for(role)

    def bootstrap_schema(self, pg: PostgresServer, role: str, password: str, database: str) -> None:
        """Create the app's schema with the rendered app's own bootstrap, for the baselines that have none."""
        env = {**pg.env_for_app(role), "PGDATABASE": database, "PGPASSWORD": password, "PATH": "/usr/bin:/bin"}
        subprocess.run(
            [str(self.python), "-c", "from database import open_database; open_database().close()"],
            cwd=self.project("flask", "psycopg3") / "app",
            env=env,
            check=True,
            capture_output=True,
        )

    def spawn(
        self,
        label: str,
        app_dir: Path,
        spec: dict,
        env_base: dict[str, str],
        appname: str,
        mode: str,
        client_id: str | None,
        extra_env: dict[str, str] | None = None,
    ) -> App:
        port = free_port()
        home = self.work / "home" / appname
        home.mkdir(parents=True, exist_ok=True)
        env = {"PATH": f"{self.python.parent}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
        env.update(env_base)
        env["DATABRICKS_APP_PORT"] = str(port)
        env["PGAPPNAME"] = env["DATABRICKS_APP_NAME"] = appname
        for item in spec.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif item.get("valueFrom") == "postgres":
                env[item["name"]] = ENDPOINT
            elif item.get("valueFrom") == "database":
                env[item["name"]] = "bench-instance"
        env.update(extra_env or {})
        command = [arg.replace("$DATABRICKS_APP_PORT", str(port)) for arg in spec["command"]]
        command[0] = shutil.which(command[0], path=env["PATH"]) or command[0]
        processes = int(env.get("WEB_CONCURRENCY", "1")) if "gunicorn" in command[0] else 1
        bound = int(env.get("DB_POOL_MAX_SIZE", "0")) * processes
        health = "/_stcore/health" if "streamlit" in command[0] else "/healthz"
        log = self.work / "logs" / f"{appname}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            proc = subprocess.Popen(
                command, cwd=app_dir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        _PROCS.append(proc)
        return App(label, appname, proc, port, log, bound, health, mode, client_id, started=time.monotonic())

    def start_rendered(
        self,
        stub: WorkspaceStub,
        framework: str,
        driver: str,
        *,
        client=None,
        database: str | None = None,
        extra_env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> App:
        project = self.project(framework, driver)
        spec = yaml.safe_load((project / "app" / "app.yaml").read_text())
        client = client or stub.new_client()
        database = database or self.new_database(stub.pg, client.role)
        appname = f"b-{framework}-{driver}-{uuid.uuid4().hex[:6]}"
        env = stub.env_for_app(client, appname)
        env["PGDATABASE"] = database
        mode = (
            "items" if framework in API_FRAMEWORKS else ("/_stcore/health" if framework == "streamlit" else "/healthz")
        )
        app = self.spawn(
            f"{framework}:{driver}", project / "app", spec, env, appname, mode, client.client_id, extra_env
        )
        if wait:
            self.wait_ready(app)
        return app

    def start_naive(self, pg: PostgresServer, framework: str) -> App:
        """The connect-per-request baseline, with a static password role."""
        role, password = self.static_role(pg)
        database = self.new_database(pg, role)
        self.bootstrap_schema(pg, role, password, database)
        app_dir = self.work / f"naive-{framework}-{uuid.uuid4().hex[:6]}"
        app_dir.mkdir(parents=True)
        (app_dir / "main.py").write_text(NAIVE_FASTAPI if framework == "fastapi" else NAIVE_FLASK)
        env = {**pg.env_for_app(role), "PGDATABASE": database, "PGPASSWORD": password}
        appname = f"b-naive-{framework}-{uuid.uuid4().hex[:6]}"
        app = self.spawn(
            f"{framework} connect-per-request", app_dir, NAIVE_APP_YAML[framework], env, appname, "items", None
        )
        app.bound = 0  # unbounded by design
        self.wait_ready(app)
        return app

    def seeded_database(self, pg: PostgresServer) -> tuple[str, str, str]:
        """A database of the static-password role with the app's schema and the readers' seed rows."""
        role, password = self.static_role(pg)
        database = self.new_database(pg, role)
        self.bootstrap_schema(pg, role, password, database)
        with psycopg.connect(pg.dsn_for(role, password, dbname=database), autocommit=True) as conn:
            for k in range(READERS):
                for j in range(SEED_ITEMS):
                    conn.execute(
                        "INSERT INTO app_data.items (owner, title) VALUES (%s, %s)",
                        (f"reader{k}@example.com", f"seed {j}"),
                    )
        return role, password, database

    def start_bare(self, pg: PostgresServer, framework: str, driver: str) -> App:
        """The bare-pool baseline of this framework and driver, seeded like a rendered app, with a static password."""
        role, password, database = self.seeded_database(pg)
        app_dir = self.work / f"bare-{framework}-{driver}-{uuid.uuid4().hex[:6]}"
        app_dir.mkdir(parents=True)
        (app_dir / "main.py").write_text(bare_app(framework, driver))
        env = {**pg.env_for_app(role), "PGDATABASE": database, "PGPASSWORD": password}
        appname = f"b-bare-{framework}-{driver}-{uuid.uuid4().hex[:6]}"
        app = self.spawn(
            f"{framework}:{driver} bare pool", app_dir, NAIVE_APP_YAML[framework], env, appname, "items", None
        )
        app.bound = 5 * (2 if framework == "flask" else 1)
        app.seeded = True  # type: ignore[attr-defined]
        self.wait_ready(app)
        return app

    _static: dict[int, tuple[str, str]] = {}

    def static_role(self, pg: PostgresServer) -> tuple[str, str]:
        if id(pg) not in self._static:
            role = f"static_{uuid.uuid4().hex[:10]}"
            password = uuid.uuid4().hex
            pg.create_service_principal_role(role)
            pg.set_password(role, password, datetime.now(UTC) + timedelta(days=1))
            self._static[id(pg)] = (role, password)
        return self._static[id(pg)]

    def wait_ready(self, app: App, timeout: float = 120) -> None:
        while True:
            if app.proc.poll() is not None:
                raise RuntimeError(f"{app.label} exited with {app.proc.returncode}:\n{app.log_text()[-3000:]}")
            if http(app.url + app.health, timeout=5) == 200:
                app.ready_seconds = time.monotonic() - app.started
                return
            if time.monotonic() - app.started > timeout:
                raise RuntimeError(f"{app.label} not ready after {timeout} s:\n{app.log_text()[-3000:]}")
            time.sleep(0.1)

    def seed(self, app: App) -> None:
        if app.mode != "items" or getattr(app, "seeded", False):
            return
        app.seeded = True  # type: ignore[attr-defined]
        for k in range(READERS):
            for j in range(SEED_ITEMS):
                status = http(
                    app.url + "/api/items",
                    "POST",
                    {"title": f"seed {j}"},
                    {"X-Forwarded-Email": f"reader{k}@example.com"},
                )
                if status != 201:
                    raise RuntimeError(f"seeding {app.label}: HTTP {status}\n{app.log_text()[-2000:]}")

    def ceiling(self, pg: PostgresServer, driver: str, clients: int, seconds: float) -> LoadResult:
        """N clients on a pool, no HTTP; psycopg3 in 2 processes of pool 5 (like gunicorn), asyncpg 1 of 5."""
        role, password, database = self.seeded_database(pg)
        procs = 2 if driver == "psycopg3" else 1
        appname = f"b-ceiling-{driver}-{uuid.uuid4().hex[:6]}"
        env = {
            "PATH": f"{self.python.parent}:/usr/bin:/bin",
            "HOME": str(self.work),
            **pg.env_for_app(role, appname),
            "PGDATABASE": database,
            "PGPASSWORD": password,
        }
        runs = []
        per = clients // procs
        for p in range(procs):
            cmd = [str(self.python), str(Path(__file__).with_name("_ceiling.py")), "--driver", driver]
            cmd += ["--clients", str(per), "--first", str(p * per), "--seconds", str(seconds), "--pool", "5"]
            proc = subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
            )
            _PROCS.append(proc)
            runs.append(proc)
        result = LoadResult(clients, seconds)
        for proc in runs:
            out, err = proc.communicate(timeout=seconds + 60)
            _PROCS.remove(proc)
            if proc.returncode != 0:
                raise RuntimeError(f"ceiling {driver} failed: {err.decode()[-2000:]}")
            data = json.loads(out.decode().strip().splitlines()[-1])
            result.ok += data["ok"]
            result.failed += data["failed"]
            result.latencies += data["lat"]
        result.appname = appname  # type: ignore[attr-defined]
        result.bound = 5 * procs  # type: ignore[attr-defined]
        return result

    # -------------------------------------------------------------- reporting
    def check(self, scenario: str, what: str, held: bool, invariant: bool) -> bool:
        self.checks.append((scenario, what, held, invariant))
        kind = "INVARIANT" if invariant else "target"
        print(f"  [{kind}] {what}: {'held' if held else 'FAILED' if invariant else 'missed'}", flush=True)
        return held

    def table(self, title: str, rows: list[dict], note: str = "") -> None:
        cols = [
            "run",
            "clients",
            "s",
            "req/s",
            "p50 ms",
            "p99 ms",
            "failed",
            "peak conns",
            "bound",
            "cred calls",
            "drives",
        ]
        lines = [f"### {title}", ""]
        if note:
            lines += [note, ""]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join(["---"] * len(cols)) + "|")
        for row in rows:
            lines.append("| " + " | ".join(str(row.get(c, "")) for c in cols) + " |")
        text = "\n".join(lines) + "\n"
        self.tables.append(text)
        print("\n" + text, flush=True)

    @staticmethod
    def row(label: str, res: LoadResult, peak: int | str, bound: int | str, creds: int | str, drives: str) -> dict:
        return {
            "run": label,
            "clients": res.clients,
            "s": f"{res.seconds:g}",
            "req/s": f"{res.rps:.0f}",
            "p50 ms": f"{res.pct(0.50):.1f}",
            "p99 ms": f"{res.pct(0.99):.1f}",
            "failed": res.failed
            if not res.errors
            else f"{res.failed} ({', '.join(f'{k}: {v}' for k, v in res.errors.most_common(3))})",
            "peak conns": peak,
            "bound": bound or "none",
            "cred calls": creds,
            "drives": drives,
        }

    @staticmethod
    def cred_calls(stub: WorkspaceStub, client_id: str | None, since: float = 0.0) -> int | str:
        if client_id is None:
            return "-"
        with stub._lock:
            return sum(1 for path, cid, t in stub.calls if path in KINDS and cid == client_id and t >= since)

    def measure(
        self, stub: WorkspaceStub, sampler: Sampler, apps: list[App], clients: int, seconds: float
    ) -> tuple[LoadResult, int]:
        """Seed, warm up briefly, then drive `clients` for `seconds`; returns the result and the lifetime peak."""
        for app in apps:
            self.seed(app)
        run_load([a.port for a in apps], apps[0].mode, min(clients, 8), 0.5 if self.args.short else 1.0)
        res = run_load([a.port for a in apps], apps[0].mode, clients, seconds)
        time.sleep(0.1)
        peak = sampler.peak([a.appname for a in apps])
        return res, peak

    # -------------------------------------------------------------- scenarios
    def combos(self, default: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
        if self.args.combos is None:
            return default or [("fastapi", "asyncpg"), ("flask", "psycopg3")]
        return [tuple(c.split(":")) for c in self.args.combos.split(",")]  # type: ignore[misc]

    def scenario1(self, pg, stub, sampler) -> None:
        a = self.args
        rows, ratios = [], []
        for framework, driver in self.combos():
            if framework not in API_FRAMEWORKS:
                continue
            app = self.start_rendered(stub, framework, driver)
            t0 = time.time()
            res, peak = self.measure(stub, sampler, [app], a.clients, a.seconds)
            rows.append(
                self.row(
                    f"{framework}:{driver} (pool)",
                    res,
                    peak,
                    app.bound,
                    self.cred_calls(stub, app.client_id, 0),
                    "GET+POST /api/items",
                )
            )
            _stop_proc(app.proc)
            bare = self.start_bare(pg, framework, driver)
            bres, bpeak = self.measure(stub, sampler, [bare], a.clients, a.seconds)
            rows.append(self.row(bare.label, bres, bpeak, bare.bound, "- (static pw)", "GET+POST /api/items"))
            _stop_proc(bare.proc)
            naive = self.start_naive(pg, framework)
            nres, npeak = self.measure(stub, sampler, [naive], a.clients, a.seconds)
            rows.append(
                self.row(f"{framework} connect-per-request", nres, npeak, 0, "- (static pw)", "GET+POST /api/items")
            )
            _stop_proc(naive.proc)
            cdriver = "asyncpg" if driver == "asyncpg" else "psycopg3"
            cres = self.ceiling(pg, cdriver, a.clients, a.seconds)
            cpeak = sampler.peak([cres.appname])  # type: ignore[attr-defined]
            rows.append(
                self.row(
                    f"raw {cdriver} pool, no HTTP (queries/s)", cres, cpeak, cres.bound, "- (static pw)", "same SQL"
                )
            )  # type: ignore[attr-defined]
            ratio = res.rps / nres.rps if nres.rps else float("inf")
            ratios.append((framework, driver, ratio, res.rps / cres.rps if cres.rps else 0, res.rps / bres.rps))
            del t0
        note = "\n".join(
            f"- {f}:{d}: {r:.1f}x connect-per-request; {b:.2f} of its bare pool; {c * 100:.0f}% of the raw-driver ceiling"
            for f, d, r, c, b in ratios
        )
        self.table(f"1. Pool vs connect-per-request, {a.clients} clients", rows, note)
        for f, d, r, _, _ in ratios:
            self.check("1", f"{f}:{d} >= 5x connect-per-request ({r:.1f}x)", r >= 5, False)

    def scenario8(self, pg, stub, sampler) -> None:
        """Rendered app vs a bare pool of the same driver, side by side: same framework, server command, SQL."""
        rounds = 1 if self.args.short else self.args.rounds
        pairs = self.combos(default=[(c["framework"], c["driver"]) for c in valid_combinations()])
        pairs = sorted({p for p in pairs if p[0] in API_FRAMEWORKS})
        rows, notes = [], []
        for framework, driver in pairs:
            rendered = self.start_rendered(stub, framework, driver)
            bare = self.start_bare(pg, framework, driver)
            try:
                self.seed(rendered)
                runs: dict[str, list[LoadResult]] = {"rendered": [], "bare": []}
                for app in (rendered, bare):
                    run_load([app.port], "reads", 8, 1.0)  # warm the pool and the workers
                for r in range(rounds):
                    order = [("rendered", rendered), ("bare", bare)]
                    if self.args.apart:  # one after the other, alternating who goes first
                        for kind, app in order if r % 2 == 0 else order[::-1]:
                            cpu0 = {kind: cpu_seconds(pg, app)}
                            res = run_wrk(app.port, self.args.clients, self.args.seconds)
                            res.cpu = used(cpu0[kind], cpu_seconds(pg, app))  # type: ignore[attr-defined]
                            runs[kind].append(res)
                        continue
                    # Both at once (default): on a shared machine both suffer the same neighbours, so the
                    # ratio of their req/s is the ratio of their cost per request.
                    done: dict[str, LoadResult] = {}
                    cpu0 = {kind: cpu_seconds(pg, app) for kind, app in order}
                    threads = [
                        threading.Thread(
                            target=lambda k=kind, a=app, into=done: into.__setitem__(
                                k, run_wrk(a.port, self.args.clients, self.args.seconds)
                            )
                        )
                        for kind, app in order
                    ]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    for kind, app in order:
                        done[kind].cpu = used(cpu0[kind], cpu_seconds(pg, app))  # type: ignore[attr-defined]
                        runs[kind].append(done[kind])
            finally:
                _stop_proc(rendered.proc)
                _stop_proc(bare.proc)
            for kind, app in (("rendered", rendered), ("bare", bare)):
                for k, res in enumerate(runs[kind]):
                    row = self.row(f"{app.label}, round {k + 1}", res, "-", app.bound, "-", "GET /api/items")
                    row["drives"] += f"; CPU ms/request: {cpu_ms(res, 0):.2f} app + {cpu_ms(res, 1):.2f} its backends"
                    rows.append(row)
            ratios = [a.rps / b.rps for a, b in zip(runs["rendered"], runs["bare"], strict=True) if b.rps]
            ratio = sorted(ratios)[len(ratios) // 2] if ratios else 0.0
            costs = [cpu_ms(b) / cpu_ms(a) for a, b in zip(runs["rendered"], runs["bare"], strict=True) if cpu_ms(a)]
            cost = sorted(costs)[len(costs) // 2] if costs else 0.0
            notes.append(
                f"- {framework}:{driver}: {ratio:.2f} of its bare pool's req/s (rounds: "
                f"{', '.join(f'{x:.2f}' for x in ratios)}); {cost:.2f} of its requests per CPU second "
                f"(rounds: {', '.join(f'{x:.2f}' for x in costs)})"
            )
            self.check("8", f"{framework}:{driver} >= 0.9 of a bare {driver} pool ({ratio:.2f})", ratio >= 0.9, False)
            failed = sum(res.failed for res in runs["rendered"])
            self.check("8", f"{framework}:{driver} zero failed GETs ({failed})", failed == 0, True)
        loader = "wrk -t2" if shutil.which("wrk") else "the asyncio loader (wrk not installed)"
        loader += ", one after the other" if self.args.apart else ", both loaded at once"
        self.table(
            f"8. Rendered app vs a bare pool of its driver, GET /api/items, {self.args.clients} clients, {loader}",
            rows,
            "\n".join(notes),
        )

    def scenario2(self, pg, stub, sampler) -> None:
        clients = 64 if self.args.short else 200
        rows = []
        for framework, driver in self.combos():
            app = self.start_rendered(stub, framework, driver)
            res, peak = self.measure(stub, sampler, [app], clients, self.args.seconds)
            rows.append(
                self.row(f"{framework}:{driver}", res, peak, app.bound, self.cred_calls(stub, app.client_id), app.mode)
            )
            _stop_proc(app.proc)
            self.check(
                "2", f"{framework}:{driver} peak connections {peak} <= pool bound {app.bound}", peak <= app.bound, True
            )
            self.check(
                "2",
                f"{framework}:{driver} zero failed requests at {clients} clients ({res.failed})",
                res.failed == 0,
                True,
            )
        self.table(f"2. {clients} concurrent clients: bounded pool", rows)

    def scenario3(self, pg, stub, sampler) -> None:
        seconds = 12 if self.args.short else 30
        every = 2.0 if self.args.short else 3.0
        rows = []
        stub.ttl_seconds = 10
        try:
            for framework, driver in self.combos():
                app = self.start_rendered(stub, framework, driver)
                for_app = app.appname
                stop = threading.Event()
                killed = [0]

                def chaos(stop=stop, killed=killed, for_app=for_app) -> None:
                    while not stop.wait(every):
                        with contextlib.suppress(Exception):
                            killed[0] += terminate_backends(pg, for_app)

                since = time.time()
                self.seed(app)
                thread = threading.Thread(target=chaos, daemon=True)
                thread.start()
                try:
                    res = run_load([app.port], app.mode, self.args.clients, seconds)
                finally:
                    stop.set()
                    thread.join(10)
                peak = sampler.peak([app.appname])
                row = self.row(
                    f"{framework}:{driver}", res, peak, app.bound, self.cred_calls(stub, app.client_id, since), app.mode
                )
                row["run"] += f" ({killed[0]} backends killed)"
                rows.append(row)
                _stop_proc(app.proc)
                self.check(
                    "3",
                    f"{framework}:{driver} zero failed requests with 10 s credentials and backends killed every {every:g} s ({res.failed})",
                    res.failed == 0,
                    True,
                )
                self.check(
                    "3", f"{framework}:{driver} peak connections {peak} <= bound {app.bound}", peak <= app.bound, True
                )
        finally:
            stub.ttl_seconds = 3600
        self.table(
            f"3. Credentials expiring every 10 s + backends terminated every {every:g} s, {self.args.clients} clients, {seconds} s",
            rows,
            "cred calls: credential-endpoint calls during the run. A token is only needed for a NEW connection, so a "
            "process calls at most once per 8 s (renewal at 1/5 of a 10 s TTL left), and only when it has to reconnect.",
        )

    def scenario4(self, pg, stub, sampler) -> None:
        rows = []
        for framework, driver in self.combos():
            client = stub.new_client()
            database = self.new_database(pg, client.role)
            apps = [
                self.start_rendered(stub, framework, driver, client=client, database=database, wait=False)
                for _ in range(3)
            ]
            # every instance's first request (which opens its pool and bootstraps) at the same moment
            deadline = time.monotonic() + 120
            for app in apps:
                while http(app.url + "/", timeout=2) == 0 and time.monotonic() < deadline:
                    if app.proc.poll() is not None:
                        break
                    time.sleep(0.05)
            first: list[int] = [0, 0, 0]
            barrier = threading.Barrier(3)

            def hit(k: int, barrier=barrier, first=first, apps=apps) -> None:
                barrier.wait()
                first[k] = http(apps[k].url + apps[k].health, timeout=30)

            threads = [threading.Thread(target=hit, args=(k,)) for k in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for app in apps:
                with contextlib.suppress(RuntimeError):
                    self.wait_ready(app, timeout=60)
            errors = [a for a in apps if "Traceback" in a.log_text() or a.proc.poll() is not None]
            res, peak = self.measure(stub, sampler, apps, self.args.clients, self.args.seconds)
            bound = sum(a.bound for a in apps)
            rows.append(
                self.row(
                    f"{framework}:{driver} x3 (first /healthz: {', '.join(map(str, first))})",
                    res,
                    peak,
                    bound,
                    self.cred_calls(stub, client.client_id),
                    app.mode,
                )
            )
            for app in apps:
                _stop_proc(app.proc)
            self.check(
                "4",
                f"{framework}:{driver} 3 instances started at once all bootstrap (first /healthz {first}, tracebacks in {len(errors)} logs)",
                all(s == 200 for s in first) and not errors,
                True,
            )
            self.check(
                "4", f"{framework}:{driver} total connections {peak} <= 3 pool maxima ({bound})", peak <= bound, True
            )
            self.check(
                "4",
                f"{framework}:{driver} zero failed requests across 3 instances ({res.failed})",
                res.failed == 0,
                True,
            )
        self.table(f"4. Three instances started together (same role, same database), {self.args.clients} clients", rows)

    def scenario5(self, pg, stub, sampler) -> None:
        seconds = 8 if self.args.short else 15
        at = 2.5 if self.args.short else 5.0
        rows = []
        for framework, driver in self.combos():
            app = self.start_rendered(stub, framework, driver)
            self.seed(app)
            marks: dict[str, float] = {}

            def chaos(marks=marks) -> None:
                time.sleep(at)
                marks["down"] = time.monotonic()
                pg.restart()
                marks["up"] = time.monotonic()

            thread = threading.Thread(target=chaos, daemon=True)
            thread.start()
            res = run_load([app.port], app.mode, self.args.clients, seconds)
            thread.join(60)
            pid = app.proc.pid
            alive = app.proc.poll() is None
            up, down = marks.get("up"), marks.get("down")
            first_ok = next((t for t, ok in sorted(res.events) if ok and up and t >= up), None)
            recovery = (first_ok - up) if first_ok and up else float("inf")
            after = [ok for t, ok in res.events if first_ok and t > first_ok]
            failures_after = after.count(False)
            outage_failures = sum(
                1 for t, ok in res.events if not ok and down and t >= down and (not first_ok or t <= first_ok)
            )
            row = self.row(
                f"{framework}:{driver}",
                res,
                sampler.peak([app.appname]),
                app.bound,
                self.cred_calls(stub, app.client_id),
                app.mode,
            )
            row["run"] += (
                f" (server down {up - down:.1f} s; first 2xx {recovery:.2f} s after it was back; "
                f"{outage_failures} failed during the outage, {failures_after} after)"
                if up and down
                else " (restart did not complete)"
            )
            rows.append(row)
            _stop_proc(app.proc)
            self.check(
                "5",
                f"{framework}:{driver} serves again without restarting the app (pid {pid} alive: {alive})",
                first_ok is not None and alive,
                True,
            )
            self.check(
                "5",
                f"{framework}:{driver} zero failures once it served again ({failures_after})",
                failures_after == 0,
                True,
            )
            self.check("5", f"{framework}:{driver} recovery {recovery:.2f} s <= 5 s", recovery <= 5, False)
        self.table(f"5. PostgreSQL restarted {at:g} s into a {seconds} s run, {self.args.clients} clients", rows)

    def scenario6(self, pg, stub, sampler) -> None:
        pairs = sorted({(c["framework"], c["driver"]) for c in valid_combinations()})
        rows = []
        for framework, driver in pairs:
            try:
                app = self.start_rendered(stub, framework, driver)
            except RuntimeError as e:
                rows.append({"run": f"{framework}:{driver}", "drives": f"did not start: {str(e).splitlines()[0]}"})
                self.check("6", f"{framework}:{driver} starts", False, True)
                continue
            res, peak = self.measure(stub, sampler, [app], self.args.clients, self.args.seconds)
            drives = {
                "items": "GET+POST /api/items",
                "/healthz": "/healthz (pool ping)",
                "/_stcore/health": "/_stcore/health only (no DB: the UI is a websocket)",
            }[app.mode]
            row = self.row(f"{framework}:{driver}", res, peak, app.bound, self.cred_calls(stub, app.client_id), drives)
            row["run"] += f" (ready {app.ready_seconds:.1f} s)"
            rows.append(row)
            _stop_proc(app.proc)
            self.check(
                "6",
                f"{framework}:{driver} peak {peak} <= bound {app.bound}, failed {res.failed}",
                peak <= app.bound and res.failed == 0,
                True,
            )
        self.table(
            f"6. Every framework x driver, {self.args.clients} clients",
            rows,
            "Streamlit serves its UI over a websocket; only /_stcore/health can be driven over HTTP and it does not "
            "touch the database. Dash and Gradio are driven on /healthz (a pooled SELECT 1), not their UI callbacks.",
        )

    def scenario7(self) -> None:
        k = 3
        clients = 24 if self.args.short else 96
        rows = []
        for framework, driver in self.combos():
            processes = 2 if framework in ("flask", "dash") else 1
            pool = 5
            budget = k * processes * pool
            reserved = 3  # superuser_reserved_connections (PostgreSQL default)
            # + 1: the sampler's own superuser session takes an ordinary slot
            pg, stub, sampler = self.new_server(max_connections=budget + reserved + 1)
            try:
                client = stub.new_client()
                database = self.new_database(pg, client.role)
                env = {"DB_POOL_MAX_SIZE": str(pool)}
                apps = [
                    self.start_rendered(
                        stub, framework, driver, client=client, database=database, extra_env=env, wait=False
                    )
                    for _ in range(k)
                ]
                for app in apps:
                    self.wait_ready(app)
                res, peak = self.measure(stub, sampler, apps, clients, self.args.seconds)
                logs = "".join(a.log_text() for a in apps) + pg.read_log()
                refused = sum(logs.count(s) for s in ("too many clients", "remaining connection slots"))
                row = self.row(
                    f"{framework}:{driver} x{k}, pool {pool}, max_connections {budget + reserved + 1}",
                    res,
                    peak,
                    budget,
                    self.cred_calls(stub, client.client_id),
                    app.mode,
                )
                row["run"] += f" ({refused} refusals in logs)"
                rows.append(row)
                for app in apps:
                    _stop_proc(app.proc)
                self.check(
                    "7",
                    f"{framework}:{driver} no connection refused ({refused} in logs, {res.failed} failed)",
                    refused == 0 and res.failed == 0,
                    True,
                )
                self.check("7", f"{framework}:{driver} peak {peak} <= budget {budget}", peak <= budget, True)
            finally:
                stop_all()
                sampler.stop()
                stub.stop()
                pg.stop()
        self.table(f"7. Scale out: {k} instances at the connection budget, {clients} clients", rows)


def terminate_backends(pg: PostgresServer, application_name: str) -> int:
    """pg_server.terminate_backends(application_name=...) in every database: the harness's own is limited to
    pg.dbname, and each app here has a database of its own (two service principals cannot share app_data)."""
    with pg.connect_superuser("postgres") as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' AND application_name = %s",
            [application_name],
        ).fetchone()
    return int(row[0])


def cpu_seconds(pg: PostgresServer, app: App) -> tuple[float, float]:
    """CPU time (user + system) used so far by the app's processes and by its PostgreSQL backends.

    Unlike req/s, this hardly moves when other work shares the machine: it is what a request costs."""
    tick = os.sysconf("SC_CLK_TCK")
    with pg.connect_superuser("postgres") as conn:
        backends = {
            int(pid)
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [app.appname]
            ).fetchall()
        }
    in_app = in_backends = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        # after the name: state ppid pgrp ... utime (12th) stime (13th)
        if int(fields[2]) == app.proc.pid:
            in_app += int(fields[11]) + int(fields[12])
        elif int(entry.name) in backends:
            in_backends += int(fields[11]) + int(fields[12])
    return in_app / tick, in_backends / tick


def machine() -> str:
    free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.strip()
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo") if x.startswith("model name")), "")
    return (
        f"nproc: {os.cpu_count()} ({cpu})\npython: {sys.version.split()[0]} (bench), "
        f"{subprocess.run([str(app_python()), '--version'], capture_output=True, text=True).stdout.strip()} (apps)\n"
        f"free -h:\n{free}\nload average at start: {os.getloadavg()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="CI-sized: scenarios 2-5 and 7, few seconds each")
    parser.add_argument(
        "--combos",
        default=None,
        help="framework:driver,... (default fastapi:asyncpg,flask:psycopg3; 8: every API pair)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="scenario 8: rounds per pair")
    parser.add_argument(
        "--apart", action="store_true", help="scenario 8: load rendered and bare one after the other, not at once"
    )
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--scenarios", default=None, help="comma-separated, e.g. 1,2,6")
    args = parser.parse_args()
    args.clients = args.clients or (16 if args.short else 32)
    args.seconds = args.seconds or (3.0 if args.short else 10.0)
    scenarios = (
        args.scenarios.split(",") if args.scenarios else (["2", "3", "4", "5", "7"] if args.short else list("12345678"))
    )

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="lakebase-bench-"))
    work.chmod(0o755)
    bench = Bench(args, work)
    print(machine(), flush=True)
    print(
        f"\nargs: short={args.short} combos={args.combos} clients={args.clients} seconds={args.seconds} scenarios={','.join(scenarios)}",
        flush=True,
    )
    try:
        pg, stub, sampler = bench.new_server()
        print(f"PostgreSQL from {pg.bin_source}, TLS {pg.tls}, port {pg.port}", flush=True)
        for s in scenarios:
            print(f"\n== scenario {s}", flush=True)
            if s == "7":
                bench.scenario7()
            else:
                getattr(bench, f"scenario{s}")(pg, stub, sampler)
    except KeyboardInterrupt:
        print("interrupted: stopping everything", file=sys.stderr)
        return 130
    finally:
        bench.close()
        if os.environ.get("BENCH_KEEP_WORK"):
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    print("\n## Summary\n")
    for scenario, what, held, invariant in bench.checks:
        kind = "INVARIANT" if invariant else "target"
        print(f"- {scenario}. [{kind}] {what}: {'held' if held else ('FAILED' if invariant else 'missed')}")
    failed = [c for c in bench.checks if c[3] and not c[2]]
    print(f"\nload average at the end: {os.getloadavg()}")
    print(
        f"\nwall time: {elapsed:.0f} s; invariants failed: {len(failed)}; targets missed: "
        f"{sum(1 for c in bench.checks if not c[3] and not c[2])}"
    )
    return 1 if (args.short and failed) else 0


if __name__ == "__main__":
    sys.exit(main())

"""The bench's environment: the harness PostgreSQL (TLS + scram) and workspace stub, rendered apps and baselines
started as the Apps runtime starts them, and the load they are driven with.

Each app is started by tests/support/apprunner.py as the Apps runtime would: its app.yaml command in the app
environment, with only DATABRICKS_APP_PORT, DATABRICKS_HOST/CLIENT_ID/CLIENT_SECRET of a stub service principal,
PG* without PGPASSWORD and app.yaml's env (valueFrom as the stub answers it). PGAPPNAME is unique per app
instance, so pg_stat_activity (sampled every 50 ms as the superuser, observe.py) tells how many server
connections each instance holds. The baselines are real apps in bench/apps/; the load generator is loadgen.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from cookiecutter.main import cookiecutter

from bench.loadgen import READERS, SEED_ITEMS, LoadResult, http, run_load
from bench.observe import Sampler
from bench.report import Report
from tests.harness.postgres import PostgresServer
from tests.harness.workspace_stub import WorkspaceStub
from tests.support import apprunner
from tests.support.appenv import app_python
from tests.support.ports import free_port
from tests.support.template import render

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"
TEMPLATE_APP = ROOT / "{{cookiecutter.__project_dir}}" / "app"
API_FRAMEWORKS = {"fastapi", "flask"}


def baseline(where: Path, framework: str, files: dict[str, str]) -> Path:
    """A project directory of a baseline from bench/apps/: app/app.yaml (the framework's server command) + files."""
    app = where / "app"
    app.mkdir(parents=True)
    shutil.copy(APPS / f"{framework}.yaml", app / "app.yaml")
    for name, source in files.items():
        shutil.copy(APPS / source, app / name)
    if framework == "flask":  # the rendered Flask app's server (flask.yaml): the template's serving.py, as is
        shutil.copy(TEMPLATE_APP / "serving.py", app / "serving.py")
        shutil.copy(APPS / "bare_pool" / "body_cap.py", app / "body_cap.py")
    return where


# ---------------------------------------------------------------------------------------------
# the environment: server, stub, apps


@dataclass
class App:
    """A started app (tests/support/apprunner.py's) and what the bench counts on it."""

    run: apprunner.App
    label: str
    appname: str  # PGAPPNAME: how its connections are counted
    bound: int  # DB_POOL_MAX_SIZE x processes
    health: str
    mode: str  # what the load generator drives
    client_id: str | None
    ready_seconds: float = 0.0
    seeded: bool = False

    @property
    def port(self) -> int:
        return self.run.port

    @property
    def url(self) -> str:
        return self.run.url

    @property
    def proc(self) -> subprocess.Popen:
        return self.run.proc

    def log_text(self) -> str:
        return self.run.log_text()


class Bench(Report):
    """Everything a scenario starts, kept here so that all of it is stopped, even on Ctrl-C or a failure."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.python = app_python()
        self.tables: list[str] = []
        self.checks: list[tuple[str, str, bool, bool]] = []  # scenario, what, held, invariant
        self.projects: dict[tuple[str, str, str], Path] = {}
        self.templates: dict[str, Path] = {}  # git ref -> that commit's template, extracted under work/
        self.pg: PostgresServer  # the run's main server, its stub and sampler (load.py starts them)
        self.stub: WorkspaceStub
        self.sampler: Sampler
        self.servers: list[PostgresServer] = []
        self.stubs: list[WorkspaceStub] = []
        self.samplers: list[Sampler] = []
        self.running: list[App] = []  # everything started here is stopped, even on Ctrl-C or failure

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

    def stop(self, app: App) -> None:
        apprunner.stop(app.run)
        if app in self.running:
            self.running.remove(app)

    def stop_apps(self) -> None:
        for app in list(self.running):
            self.stop(app)

    def close(self) -> None:
        self.stop_apps()
        for s in self.samplers:
            s.stop()
        for stub in self.stubs:
            stub.stop()
        for pg in self.servers:
            pg.stop()

    def template(self, ref: str) -> Path:
        """This repository's template as of commit ``ref`` (``git archive``: no worktree, no checkout to undo)."""
        if ref not in self.templates:
            where = self.work / "templates" / ref
            where.mkdir(parents=True)
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True)
            subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
            self.templates[ref] = where
        return self.templates[ref]

    def project(self, framework: str, driver: str, ref: str = "") -> Path:
        """The project rendered from today's template, or (``ref``) from that commit's."""
        key = (framework, driver, ref)
        if key not in self.projects:
            out = self.work / "render" / f"{framework}-{driver}{'-' + ref if ref else ''}"
            answers = dict(
                framework=framework,
                driver=driver,
                lakebase="autoscaling",
                create_database=False,
                project_slug=f"bench_{framework}_{driver}",
            )
            if ref:  # that commit's hooks and extension run from its own directory (cookiecutter's repo_dir)
                source = str(self.template(ref))
                self.projects[key] = Path(
                    cookiecutter(source, no_input=True, output_dir=str(out), extra_context=answers)
                )
            else:
                self.projects[key] = render(out, **answers)
        return self.projects[key]

    @staticmethod
    def new_database(pg: PostgresServer, role: str) -> str:
        return pg.create_database_for(role)

    def bootstrap_schema(self, pg: PostgresServer, role: str, password: str, database: str) -> None:
        """Create the app's schema with the rendered app's own migrations, for the baselines that have none.

        Without its row-level security: a baseline sets no user, and what the policies cost is part of what the
        rendered app pays."""
        env = {**pg.env_for_app(role), "PGDATABASE": database, "PGPASSWORD": password, "PATH": "/usr/bin:/bin"}
        subprocess.run(
            [str(self.python), "-m", "database.migrate", "upgrade"],  # as the role itself: it owns the schema
            cwd=self.project("flask", "psycopg3") / "app",
            env=env,
            check=True,
            capture_output=True,
        )
        with psycopg.connect(pg.dsn_for(role, password, dbname=database), autocommit=True) as conn:
            conn.execute("ALTER TABLE app_data.items DISABLE ROW LEVEL SECURITY")

    def start(
        self,
        label: str,
        project: Path,
        env: dict[str, str],
        mode: str,
        client_id: str | None,
        wait: bool = True,
        migrate_first: bool = False,
    ) -> App:
        """Start `project`'s app.yaml command with `env` (tests/support/apprunner.py), counted under PGAPPNAME;
        ``migrate_first``: the deployer migrates its database just before (today's template)."""
        env["LANG"] = "C.UTF-8"
        appname = env["PGAPPNAME"]
        log = self.work / "logs" / f"{appname}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        server = apprunner.command(project, 0)[0]
        processes = int(env.get("WEB_CONCURRENCY", "1")) if server == "gunicorn" else 1
        app = App(
            apprunner.start(project, env, log, migrate_first=migrate_first),
            label,
            appname,
            bound=int(env.get("DB_POOL_MAX_SIZE", "0")) * processes,
            health="/_stcore/health" if server == "streamlit" else "/healthz",
            mode=mode,
            client_id=client_id,
        )
        self.running.append(app)
        if wait:
            self.wait_ready(app)
        return app

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
        ref: str = "",
        project: Path | None = None,
        label: str = "",
    ) -> App:
        """Today's rendered app (the deployer migrates first), or ``ref``'s (an app of then: it migrated itself);
        ``project``: a copy of today's with something changed (``label`` says what)."""
        project = project or self.project(framework, driver, ref)
        client = client or stub.new_client()
        database = database or self.new_database(stub.pg, client.role)
        appname = f"b-{framework}-{driver}-{uuid.uuid4().hex[:6]}"
        home = self.work / "home" / appname
        env = apprunner.runtime_env(project, stub, client, free_port(), home, database, appname=appname)
        env.update(extra_env or {})
        mode = (
            "items" if framework in API_FRAMEWORKS else ("/_stcore/health" if framework == "streamlit" else "/healthz")
        )
        label = label or f"{framework}:{driver}{' @' + ref if ref else ''}"
        return self.start(label, project, env, mode, client.client_id, wait, migrate_first=not ref)

    def baseline_env(self, pg: PostgresServer, project: Path, role: str, password: str, database: str) -> dict:
        """A baseline's environment: the runtime's PG* plus a static PGPASSWORD, and its app.yaml's values."""
        appname = f"b-{project.name}"
        env = {**pg.env_for_app(role, appname), "PGDATABASE": database, "PGPASSWORD": password}
        env.update(
            PATH=f"{self.python.parent}:/usr/bin:/bin", HOME=str(self.work), DATABRICKS_APP_PORT=str(free_port())
        )
        env.update({entry["name"]: str(entry["value"]) for entry in apprunner.app_yaml(project).get("env") or []})
        return env

    def start_naive(self, pg: PostgresServer, framework: str) -> App:
        """The connect-per-request baseline (bench/apps/connect_per_request_*.py), with a static password role."""
        role, password = self.static_role(pg)
        database = self.new_database(pg, role)
        self.bootstrap_schema(pg, role, password, database)
        where = self.work / f"naive-{framework}-{uuid.uuid4().hex[:6]}"
        project = baseline(where, framework, {"main.py": f"connect_per_request_{framework}.py"})
        env = self.baseline_env(pg, project, role, password, database)
        app = self.start(f"{framework} connect-per-request", project, env, "items", None, wait=False)
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
        """The bare-pool baseline of this framework and driver (bench/apps/bare_pool/), seeded like a rendered app."""
        role, password, database = self.seeded_database(pg)
        where = self.work / f"bare-{framework}-{driver}-{uuid.uuid4().hex[:6]}"
        files = {"main.py": f"bare_pool/{framework}_app.py", "pool.py": f"bare_pool/{driver}.py"}
        project = baseline(where, framework, files)
        env = self.baseline_env(pg, project, role, password, database)
        app = self.start(f"{framework}:{driver} bare pool", project, env, "items", None, wait=False)
        app.bound = 5 * (2 if framework == "flask" else 1)
        app.seeded = True
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

    @staticmethod
    def wait_ready(app: App) -> None:
        """Until its health path answers 200; fails at once if it exits (tests/support/waiting.py)."""
        apprunner.wait_ready(app.run, app.health)
        app.ready_seconds = app.run.ready_after

    def seed(self, app: App) -> None:
        if app.mode != "items" or app.seeded:
            return
        app.seeded = True
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
        result = LoadResult(clients, seconds)
        try:
            for p in range(procs):
                cmd = [str(self.python), str(Path(__file__).with_name("_ceiling.py")), "--driver", driver]
                cmd += ["--clients", str(per), "--first", str(p * per), "--seconds", str(seconds), "--pool", "5"]
                runs.append(
                    subprocess.Popen(
                        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
                    )
                )
            for proc in runs:
                out, err = proc.communicate()
                if proc.returncode != 0:
                    raise RuntimeError(f"ceiling {driver} failed: {err.decode()[-2000:]}")
                data = json.loads(out.decode().strip().splitlines()[-1])
                result.ok += data["ok"]
                result.failed += data["failed"]
                result.latencies += data["lat"]
        finally:
            for proc in runs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        result.appname = appname
        result.bound = 5 * procs
        return result

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

    def combos(self, default: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
        if self.args.combos is None:
            return default or [("fastapi", "asyncpg"), ("flask", "psycopg3")]
        return [tuple(c.split(":")) for c in self.args.combos.split(",")]  # type: ignore[misc]

"""Benchmark rendered apps under load against a real PostgreSQL (TLS + scram) and a workspace stub.

Usage:
    .venv/bin/python bench/load.py [--short] [--combos fastapi:asyncpg,flask:psycopg3]
                                   [--clients 32] [--seconds 10] [--scenarios 1,2,3]

Prints one markdown table per run and whether each target / invariant held. Not a test: in --short
mode the exit status is non-zero only when an INVARIANT fails (bounded connections, zero failures
across credential rotation and a restart, three instances bootstrapping), never for a speed ratio.

Each app is started by tests/support/apprunner.py as the Apps runtime would: its app.yaml command in the app
environment, with only DATABRICKS_APP_PORT, DATABRICKS_HOST/CLIENT_ID/CLIENT_SECRET of a stub service principal,
PG* without PGPASSWORD and app.yaml's env (valueFrom as the stub answers it). PGAPPNAME is unique per app
instance, so pg_stat_activity (sampled every 50 ms as the superuser, observe.py) tells how many server
connections each instance holds. The baselines are real apps in bench/apps/; the load generator is loadgen.py.
"""

from __future__ import annotations

import argparse
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
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"
sys.path.insert(0, str(ROOT))
from loadgen import READERS, SEED_ITEMS, LoadResult, http, run_load, run_wrk  # noqa: E402
from observe import Sampler, cpu_ms, cpu_seconds, machine, used  # noqa: E402

from tests.harness.postgres import PostgresServer  # noqa: E402
from tests.harness.workspace_stub import KINDS, WorkspaceStub  # noqa: E402
from tests.support import apprunner  # noqa: E402
from tests.support.appenv import app_python  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.template import render, valid_combinations  # noqa: E402
from tests.support.waiting import HANG_GUARD  # noqa: E402

API_FRAMEWORKS = {"fastapi", "flask"}


def baseline(where: Path, framework: str, files: dict[str, str]) -> Path:
    """A project directory of a baseline from bench/apps/: app/app.yaml (the framework's server command) + files."""
    app = where / "app"
    app.mkdir(parents=True)
    shutil.copy(APPS / f"{framework}.yaml", app / "app.yaml")
    for name, source in files.items():
        shutil.copy(APPS / source, app / name)
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
        self, label: str, project: Path, env: dict[str, str], mode: str, client_id: str | None, wait: bool = True
    ) -> App:
        """Start `project`'s app.yaml command with `env` (tests/support/apprunner.py), counted under PGAPPNAME."""
        env["LANG"] = "C.UTF-8"
        appname = env["PGAPPNAME"]
        log = self.work / "logs" / f"{appname}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        server = apprunner.command(project, 0)[0]
        processes = int(env.get("WEB_CONCURRENCY", "1")) if server == "gunicorn" else 1
        app = App(
            apprunner.start(project, env, log),
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
    ) -> App:
        project = self.project(framework, driver)
        client = client or stub.new_client()
        database = database or self.new_database(stub.pg, client.role)
        appname = f"b-{framework}-{driver}-{uuid.uuid4().hex[:6]}"
        home = self.work / "home" / appname
        env = apprunner.runtime_env(project, stub, client, free_port(), home, database, appname=appname)
        env.update(extra_env or {})
        mode = (
            "items" if framework in API_FRAMEWORKS else ("/_stcore/health" if framework == "streamlit" else "/healthz")
        )
        return self.start(f"{framework}:{driver}", project, env, mode, client.client_id, wait)

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

    # -------------------------------------------------------------- reporting
    def check(self, scenario: str, what: str, held: bool, invariant: bool) -> bool:
        self.checks.append((scenario, what, held, invariant))
        kind = "INVARIANT" if invariant else "target"
        print(f"  [{kind}] {what}: {'held' if held else 'FAILED' if invariant else 'missed'}", flush=True)
        return held

    def check_load(self, scenario: str, label: str, res: LoadResult, peak: int, bound: int, during: str) -> None:
        """The two invariants of a load run: no more server connections than the pools allow, no request failed."""
        self.check(scenario, f"{label} peak connections {peak} <= pool bound {bound}", peak <= bound, True)
        self.check(scenario, f"{label} zero failed requests {during} ({res.failed})", res.failed == 0, True)

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
            self.stop(app)
            bare = self.start_bare(pg, framework, driver)
            bres, bpeak = self.measure(stub, sampler, [bare], a.clients, a.seconds)
            rows.append(self.row(bare.label, bres, bpeak, bare.bound, "- (static pw)", "GET+POST /api/items"))
            self.stop(bare)
            naive = self.start_naive(pg, framework)
            nres, npeak = self.measure(stub, sampler, [naive], a.clients, a.seconds)
            rows.append(
                self.row(f"{framework} connect-per-request", nres, npeak, 0, "- (static pw)", "GET+POST /api/items")
            )
            self.stop(naive)
            cdriver = "asyncpg" if driver == "asyncpg" else "psycopg3"
            cres = self.ceiling(pg, cdriver, a.clients, a.seconds)
            cpeak = sampler.peak([cres.appname])
            rows.append(
                self.row(
                    f"raw {cdriver} pool, no HTTP (queries/s)", cres, cpeak, cres.bound, "- (static pw)", "same SQL"
                )
            )
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
        """Rendered app vs a bare pool of the same driver, side by side: same framework, server command, SQL;
        reads (GET /api/items) and writes (POST /api/items), each loaded on both apps at once."""
        rounds = 1 if self.args.short else self.args.rounds
        pairs = self.combos(default=[(c["framework"], c["driver"]) for c in valid_combinations()])
        pairs = sorted({p for p in pairs if p[0] in API_FRAMEWORKS})
        rows, notes = [], []
        for framework, driver in pairs:
            rendered = self.start_rendered(stub, framework, driver)
            bare = self.start_bare(pg, framework, driver)
            runs: dict[tuple[str, str], list[LoadResult]] = {}
            try:
                self.seed(rendered)
                for app in (rendered, bare):
                    run_load([app.port], "reads", 8, 1.0)  # warm the pool and the workers
                for mode in ("reads", "writes"):
                    for r in range(rounds):
                        self._pair_round(pg, mode, r, [("rendered", rendered), ("bare", bare)], runs)
            finally:
                self.stop(rendered)
                self.stop(bare)
            for mode, request in (("reads", "GET /api/items"), ("writes", "POST /api/items")):
                for kind, app in (("rendered", rendered), ("bare", bare)):
                    for k, res in enumerate(runs[kind, mode]):
                        row = self.row(f"{app.label}, {mode}, round {k + 1}", res, "-", app.bound, "-", request)
                        row["drives"] += (
                            f"; CPU ms/request: {cpu_ms(res, 0):.2f} app + {cpu_ms(res, 1):.2f} its backends"
                        )
                        rows.append(row)
                self._pair_verdict(framework, driver, mode, runs[("rendered", mode)], runs[("bare", mode)], notes)
        loader = "wrk -t2" if shutil.which("wrk") else "the asyncio loader (wrk not installed)"
        loader += ", one after the other" if self.args.apart else ", both loaded at once"
        self.table(
            f"8. Rendered app vs a bare pool of its driver, GET and POST /api/items, {self.args.clients} clients, {loader}",
            rows,
            "\n".join(notes),
        )

    def _pair_round(self, pg, mode: str, r: int, order: list, runs: dict) -> None:
        """One round of ``mode`` on both apps: at once (default), or one after the other (--apart)."""
        if self.args.apart:  # alternating who goes first
            for kind, app in order if r % 2 == 0 else order[::-1]:
                cpu0 = cpu_seconds(pg, app.appname, app.proc.pid)
                res = run_wrk(app.port, self.args.clients, self.args.seconds, mode=mode)
                res.cpu = used(cpu0, cpu_seconds(pg, app.appname, app.proc.pid))
                runs.setdefault((kind, mode), []).append(res)
            return
        # Both at once: on a shared machine both suffer the same neighbours, so the ratio of their req/s is the
        # ratio of their cost per request.
        done: dict[str, LoadResult] = {}
        cpu0 = {kind: cpu_seconds(pg, app.appname, app.proc.pid) for kind, app in order}
        threads = [
            threading.Thread(
                target=lambda k=kind, a=app: done.__setitem__(
                    k, run_wrk(a.port, self.args.clients, self.args.seconds, mode=mode)
                )
            )
            for kind, app in order
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for kind, app in order:
            done[kind].cpu = used(cpu0[kind], cpu_seconds(pg, app.appname, app.proc.pid))
            runs.setdefault((kind, mode), []).append(done[kind])

    def _pair_verdict(self, framework: str, driver: str, mode: str, rendered: list, bare: list, notes: list) -> None:
        """Medians over the rounds: req/s against the bare pool's (target >= 0.9), p99 against its p99 (<= 1.25x)."""

        def median(values: list[float]) -> float:
            return sorted(values)[len(values) // 2] if values else 0.0

        pairs = list(zip(rendered, bare, strict=True))
        ratios = [a.rps / b.rps for a, b in pairs if b.rps]
        tails = [a.pct(0.99) / b.pct(0.99) for a, b in pairs if b.pct(0.99)]
        costs = [cpu_ms(b) / cpu_ms(a) for a, b in pairs if cpu_ms(a)]
        ratio, tail, cost = median(ratios), median(tails), median(costs)
        notes.append(
            f"- {framework}:{driver} {mode}: {ratio:.2f} of its bare pool's req/s (rounds: "
            f"{', '.join(f'{x:.2f}' for x in ratios)}); p99 {tail:.2f}x the bare pool's (rounds: "
            f"{', '.join(f'{x:.2f}' for x in tails)}); {cost:.2f} of its requests per CPU second"
        )
        name = f"{framework}:{driver} {mode}"
        self.check("8", f"{name} >= 0.9 of a bare {driver} pool's req/s ({ratio:.2f})", ratio >= 0.9, False)
        self.check("8", f"{name} p99 <= 1.25x the bare pool's ({tail:.2f}x)", 0 < tail <= 1.25, False)
        failed = sum(res.failed for res in rendered)
        self.check("8", f"{name} zero failed requests ({failed})", failed == 0, True)

    def scenario2(self, pg, stub, sampler) -> None:
        clients = 64 if self.args.short else 200
        rows = []
        for framework, driver in self.combos():
            app = self.start_rendered(stub, framework, driver)
            res, peak = self.measure(stub, sampler, [app], clients, self.args.seconds)
            rows.append(
                self.row(f"{framework}:{driver}", res, peak, app.bound, self.cred_calls(stub, app.client_id), app.mode)
            )
            self.stop(app)
            self.check_load("2", f"{framework}:{driver}", res, peak, app.bound, f"at {clients} clients")
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
                            killed[0] += pg.terminate_backends(application_name=for_app, every_database=True)

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
                self.stop(app)
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
            for app in apps:
                apprunner.wait_ready(app.run, "/")  # serving; "/" opens no pool
            first: list[int] = [0, 0, 0]
            barrier = threading.Barrier(3)

            def hit(k: int, barrier=barrier, first=first, apps=apps) -> None:
                barrier.wait()
                first[k] = http(apps[k].url + apps[k].health, timeout=HANG_GUARD)

            threads = [threading.Thread(target=hit, args=(k,)) for k in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
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
                self.stop(app)
            self.check(
                "4",
                f"{framework}:{driver} 3 instances started at once all bootstrap (first /healthz {first}, tracebacks in {len(errors)} logs)",
                all(s == 200 for s in first) and not errors,
                True,
            )
            self.check_load("4", f"{framework}:{driver}", res, peak, bound, "across 3 instances")
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
            self.stop(app)
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
            except AssertionError as e:
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
            self.stop(app)
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
                    self.stop(app)
                self.check(
                    "7",
                    f"{framework}:{driver} no connection refused ({refused} in logs, {res.failed} failed)",
                    refused == 0 and res.failed == 0,
                    True,
                )
                self.check("7", f"{framework}:{driver} peak {peak} <= budget {budget}", peak <= budget, True)
            finally:
                self.stop_apps()
                sampler.stop()
                stub.stop()
                pg.stop()
        self.table(f"7. Scale out: {k} instances at the connection budget, {clients} clients", rows)


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

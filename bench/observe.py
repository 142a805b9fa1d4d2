"""What bench/load.py observes besides the load: server connections per app (pg_stat_activity, sampled), CPU time
of an app and of its backends (/proc), and the machine it ran on."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from bench.loadgen import LoadResult
from tests.harness.postgres import PostgresServer
from tests.support.appenv import app_python


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


def used(before: tuple[float, float], after: tuple[float, float]) -> tuple[float, float]:
    return after[0] - before[0], after[1] - before[1]


def cpu_ms(res: LoadResult, part: int | None = None) -> float:
    """CPU milliseconds per answered request (set by scenario 8): app + backends, or part 0 (app) or 1 (backends)."""
    served = res.ok + res.failed
    return (sum(res.cpu) if part is None else res.cpu[part]) * 1000 / served if served else 0.0


def cpu_seconds(pg: PostgresServer, appname: str, pid: int) -> tuple[float, float]:
    """CPU time (user + system) used so far by the app's processes and by its PostgreSQL backends.

    Unlike req/s, this hardly moves when other work shares the machine: it is what a request costs."""
    tick = os.sysconf("SC_CLK_TCK")
    with pg.connect_superuser("postgres") as conn:
        backends = {
            int(backend)
            for (backend,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [appname]
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
        if int(fields[2]) == pid:
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

"""PostgreSQL restarted mid-load: serving again without restarting the app."""

from __future__ import annotations

import threading
import time

from bench.core import Bench
from bench.loadgen import run_load


def run(b: Bench) -> None:
    pg, stub, sampler = b.pg, b.stub, b.sampler
    seconds = 8 if b.args.short else 10
    at = 2.5 if b.args.short else 3.0
    rows = []
    for framework, driver in b.combos():
        app = b.start_rendered(stub, framework, driver)
        b.seed(app)
        marks: dict[str, float] = {}

        def chaos(marks=marks) -> None:
            time.sleep(at)
            marks["down"] = time.monotonic()
            pg.restart()
            marks["up"] = time.monotonic()

        thread = threading.Thread(target=chaos, daemon=True)
        thread.start()
        res = run_load([app.port], app.mode, b.args.clients, seconds)
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
        row = b.row(
            f"{framework}:{driver}",
            res,
            sampler.peak([app.appname]),
            app.bound,
            b.cred_calls(stub, app.client_id),
            app.mode,
        )
        row["run"] += (
            f" (server down {up - down:.1f} s; first 2xx {recovery:.2f} s after it was back; "
            f"{outage_failures} failed during the outage, {failures_after} after)"
            if up and down
            else " (restart did not complete)"
        )
        rows.append(row)
        b.stop(app)
        b.check(
            f"{framework}:{driver} serves again without restarting the app (pid {pid} alive: {alive})",
            first_ok is not None and alive,
            True,
        )
        b.check(
            f"{framework}:{driver} zero failures once it served again ({failures_after})",
            failures_after == 0,
            True,
        )
        b.check(f"{framework}:{driver} recovery {recovery:.2f} s <= 5 s", recovery <= 5, False)
    b.table(f"PostgreSQL restarted {at:g} s into a {seconds} s run, {b.args.clients} clients", rows)

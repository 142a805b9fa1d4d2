"""Credentials expiring every 10 s and backends terminated every few seconds: zero failed requests."""

from __future__ import annotations

import contextlib
import threading
import time

from bench.core import Bench
from bench.loadgen import run_load


def run(b: Bench) -> None:
    pg, stub, sampler = b.pg, b.stub, b.sampler
    seconds = 12 if b.args.short else 20  # two credential lifetimes and a renewal
    every = 2.0 if b.args.short else 3.0
    rows = []
    stub.ttl_seconds = 10
    try:
        for framework, driver in b.combos():
            app = b.start_rendered(stub, framework, driver)
            for_app = app.appname
            stop = threading.Event()
            killed = [0]

            def chaos(stop=stop, killed=killed, for_app=for_app) -> None:
                while not stop.wait(every):
                    with contextlib.suppress(Exception):
                        killed[0] += pg.terminate_backends(application_name=for_app, every_database=True)

            since = time.time()
            b.seed(app)
            thread = threading.Thread(target=chaos, daemon=True)
            thread.start()
            try:
                res = run_load([app.port], app.mode, b.args.clients, seconds)
            finally:
                stop.set()
                thread.join(10)
            peak = sampler.peak([app.appname])
            row = b.row(
                f"{framework}:{driver}", res, peak, app.bound, b.cred_calls(stub, app.client_id, since), app.mode
            )
            row["run"] += f" ({killed[0]} backends killed)"
            rows.append(row)
            b.stop(app)
            b.check(
                f"{framework}:{driver} zero failed requests with 10 s credentials and backends killed every {every:g} s ({res.failed})",
                res.failed == 0,
                True,
            )
            b.check(f"{framework}:{driver} peak connections {peak} <= bound {app.bound}", peak <= app.bound, True)
    finally:
        stub.ttl_seconds = 3600
    b.table(
        f"Credentials expiring every 10 s + backends terminated every {every:g} s, {b.args.clients} clients, {seconds} s",
        rows,
        "cred calls: credential-endpoint calls during the run. A token is only needed for a NEW connection, so a "
        "process calls at most once per 8 s (renewal at 1/5 of a 10 s TTL left), and only when it has to reconnect.",
    )

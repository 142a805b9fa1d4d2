"""Three instances of one app started at once: all bootstrap, connections bounded."""

from __future__ import annotations

import threading

from bench.core import Bench
from bench.loadgen import http
from tests.support import apprunner
from tests.support.waiting import HANG_GUARD


def run(b: Bench) -> None:
    pg, stub, sampler = b.pg, b.stub, b.sampler
    rows = []
    for framework, driver in b.combos():
        client = stub.new_client()
        database = b.new_database(pg, client.role)
        apps = [
            b.start_rendered(stub, framework, driver, client=client, database=database, wait=False) for _ in range(3)
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
        res, peak = b.measure(stub, sampler, apps, b.args.clients, b.args.seconds)
        bound = sum(a.bound for a in apps)
        rows.append(
            b.row(
                f"{framework}:{driver} x3 (first /healthz: {', '.join(map(str, first))})",
                res,
                peak,
                bound,
                b.cred_calls(stub, client.client_id),
                app.mode,
            )
        )
        for app in apps:
            b.stop(app)
        b.check(
            f"{framework}:{driver} 3 instances started at once all bootstrap (first /healthz {first}, tracebacks in {len(errors)} logs)",
            all(s == 200 for s in first) and not errors,
            True,
        )
        b.check_load(f"{framework}:{driver}", res, peak, bound, "across 3 instances")
    b.table(f"Three instances started together (same role, same database), {b.args.clients} clients", rows)

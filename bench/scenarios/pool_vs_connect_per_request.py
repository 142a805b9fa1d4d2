"""Pooled app vs connect-per-request, a bare pool and the raw driver, GET+POST /api/items."""

from __future__ import annotations

import time

from bench.core import API_FRAMEWORKS, Bench


def run(b: Bench) -> None:
    pg, stub, sampler = b.pg, b.stub, b.sampler
    a = b.args
    rows, ratios = [], []
    for framework, driver in b.combos():
        if framework not in API_FRAMEWORKS:
            continue
        app = b.start_rendered(stub, framework, driver)
        t0 = time.time()
        res, peak = b.measure(stub, sampler, [app], a.clients, a.seconds)
        rows.append(
            b.row(
                f"{framework}:{driver} (pool)",
                res,
                peak,
                app.bound,
                b.cred_calls(stub, app.client_id, 0),
                "GET+POST /api/items",
            )
        )
        b.stop(app)
        bare = b.start_bare(pg, framework, driver)
        bres, bpeak = b.measure(stub, sampler, [bare], a.clients, a.seconds)
        rows.append(b.row(bare.label, bres, bpeak, bare.bound, "- (static pw)", "GET+POST /api/items"))
        b.stop(bare)
        naive = b.start_naive(pg, framework)
        nres, npeak = b.measure(stub, sampler, [naive], a.clients, a.seconds)
        rows.append(b.row(f"{framework} connect-per-request", nres, npeak, 0, "- (static pw)", "GET+POST /api/items"))
        b.stop(naive)
        cdriver = "asyncpg" if driver == "asyncpg" else "psycopg3"
        cres = b.ceiling(pg, cdriver, a.clients, a.seconds)
        cpeak = sampler.peak([cres.appname])
        rows.append(
            b.row(f"raw {cdriver} pool, no HTTP (queries/s)", cres, cpeak, cres.bound, "- (static pw)", "same SQL")
        )
        ratio = res.rps / nres.rps if nres.rps else float("inf")
        ratios.append((framework, driver, ratio, res.rps / cres.rps if cres.rps else 0, res.rps / bres.rps))
        del t0
    note = "\n".join(
        f"- {f}:{d}: {r:.1f}x connect-per-request; {b:.2f} of its bare pool; {c * 100:.0f}% of the raw-driver ceiling"
        for f, d, r, c, b in ratios
    )
    b.table(f"Pool vs connect-per-request, {a.clients} clients", rows, note)
    for f, d, r, _, _ in ratios:
        b.check(f"{f}:{d} >= 5x connect-per-request ({r:.1f}x)", r >= 5, False)

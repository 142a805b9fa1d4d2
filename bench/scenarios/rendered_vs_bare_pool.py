"""The rendered app vs a bare pool of the same driver (same framework, server command and SQL; bench/apps/bare_pool/),
reads (GET /api/items) and writes (POST /api/items), all apps loaded at once in interleaved rounds, at each added
network latency (--delay-ms: the harness proxy's delay line, each way); with --compare-ref, the app rendered from
that commit of this repository runs in the same rounds; connect-per-request is loaded against the rendered app
once per mode.

On a shared machine every app loaded at once suffers the same neighbours, so the ratio of their req/s is the ratio
of their cost per request; CPU ms per request (app + its backends, /proc) hardly moves with the machine's load.
"""

from __future__ import annotations

import threading

from bench.core import API_FRAMEWORKS, App, Bench
from bench.loadgen import LoadResult, run_load, run_wrk
from bench.observe import cpu_ms, cpu_seconds, used

COLUMNS = ("delay ms", "pair", "mode", "app", "req/s", "p50 ms", "p99 ms", "req/s vs bare", "p99 vs bare", "CPU ms/req")


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] if values else 0.0


def load_at_once(b: Bench, pg, mode: str, apps: list[tuple[str, App]], runs: dict) -> None:
    """One round of ``mode`` on every app at the same time; each result gets the app's and its backends' CPU."""
    done: dict[str, LoadResult] = {}
    cpu0 = {kind: cpu_seconds(pg, app.appname, app.proc.pid) for kind, app in apps}

    def drive(kind: str, app: App) -> None:
        done[kind] = run_wrk(app.port, b.args.clients, b.args.seconds, mode=mode)

    threads = [threading.Thread(target=drive, args=(kind, app)) for kind, app in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for kind, app in apps:
        done[kind].cpu = used(cpu0[kind], cpu_seconds(pg, app.appname, app.proc.pid))
        runs.setdefault((kind, mode), []).append(done[kind])


def start_all(b: Bench, pg, stub, framework: str, driver: str, ref: str, notes: list[str]) -> list[tuple[str, App]]:
    apps = [("rendered", b.start_rendered(stub, framework, driver)), ("bare", b.start_bare(pg, framework, driver))]
    if ref:
        try:
            apps.append((f"@{ref}", b.start_rendered(stub, framework, driver, ref=ref)))
        except Exception as e:  # noqa: BLE001 - an old commit may not run under today's harness: say why, go on
            notes.append(f"- {framework}:{driver} rendered from {ref} did not start: {str(e).splitlines()[0][:300]}")
    for _, app in apps:
        b.seed(app)
        run_load([app.port], "reads", 8, 1.0)  # warm the pool and the workers
    return apps


def run(b: Bench) -> None:
    rounds = 1 if b.args.short else b.args.rounds
    pairs = sorted({p for p in b.combos() if p[0] in API_FRAMEWORKS})
    ref = b.args.compare_ref
    rows: list[dict] = []
    notes: list[str] = []
    for delay in b.args.delay_ms:
        pg, stub = (b.pg, b.stub) if not delay else b.new_server(delay_ms=delay)[:2]
        for framework, driver in pairs:
            runs: dict[tuple[str, str], list[LoadResult]] = {}
            apps = start_all(b, pg, stub, framework, driver, ref, notes)
            try:
                for mode in ("reads", "writes"):
                    for _ in range(rounds):
                        load_at_once(b, pg, mode, apps, runs)
                for _, app in apps[1:]:
                    b.stop(app)
                naive = b.start_naive(pg, framework)  # against the rendered app, the two alone
                for mode in ("reads", "writes"):
                    b.seed(naive)
                    load_at_once(b, pg, mode, [("rendered+cpr", apps[0][1]), ("connect-per-request", naive)], runs)
            finally:
                b.stop_apps()
            for mode in ("reads", "writes"):
                verdict(b, delay, f"{framework}:{driver}", mode, [k for k, _ in apps], runs, rows, notes)
    b.table(
        f"Rendered vs a bare pool of its driver, {b.args.clients} clients, {rounds} rounds x {b.args.seconds:g} s, "
        f"all loaded at once (medians over the rounds)",
        rows,
        "\n".join(notes),
        cols=COLUMNS,
    )


def verdict(
    b: Bench, delay: float, pair: str, mode: str, kinds: list[str], runs: dict, rows: list, notes: list
) -> None:
    """Median rows per app, the ratios to the bare pool per round, and the target lines (printed, not asserted)."""
    bare = runs[("bare", mode)]

    def row(kind: str, results: list[LoadResult], against: list[LoadResult]) -> dict:
        ratios = [a.rps / z.rps for a, z in zip(results, against, strict=True) if z.rps]
        tails = [a.pct(0.99) / z.pct(0.99) for a, z in zip(results, against, strict=True) if z.pct(0.99)]
        rows.append(
            {
                "delay ms": f"{delay:g}",
                "pair": pair,
                "mode": mode,
                "app": kind,
                "req/s": f"{median([r.rps for r in results]):.0f}",
                "p50 ms": f"{median([r.pct(0.5) for r in results]):.1f}",
                "p99 ms": f"{median([r.pct(0.99) for r in results]):.1f}",
                "req/s vs bare": f"{median(ratios):.2f}" if kind != "bare" else "1",
                "p99 vs bare": f"{median(tails):.2f}" if kind != "bare" else "1",
                "CPU ms/req": f"{median([cpu_ms(r) for r in results]):.2f}",
            }
        )
        return {"ratio": median(ratios), "tail": median(tails), "ratios": ratios}

    rendered = row("rendered", runs[("rendered", mode)], bare)
    row("bare", bare, bare)
    for kind in kinds[2:]:
        row(kind, runs[(kind, mode)], bare)
    cpr, mine = runs[("connect-per-request", mode)], runs[("rendered+cpr", mode)]
    over_cpr = mine[0].rps / cpr[0].rps if cpr[0].rps else float("inf")
    rows.append({"delay ms": f"{delay:g}", "pair": pair, "mode": mode, "app": "connect-per-request",
                 "req/s": f"{cpr[0].rps:.0f}", "p50 ms": f"{cpr[0].pct(0.5):.1f}", "p99 ms": f"{cpr[0].pct(0.99):.1f}",
                 "req/s vs bare": f"rendered {over_cpr:.1f}x it (loaded with it)", "CPU ms/req": f"{cpu_ms(cpr[0]):.2f}"})  # fmt: skip
    notes.append(
        f"- {delay:g} ms, {pair} {mode}: rendered/bare per round {', '.join(f'{x:.2f}' for x in rendered['ratios'])}"
    )
    want = (1.0 if not delay else 0.95) if mode == "reads" else 0.95
    name = f"{delay:g} ms {pair} {mode}"
    b.check(f"{name} >= {want:g}x the bare pool's req/s ({rendered['ratio']:.2f}x)", rendered["ratio"] >= want, False)
    b.check(f"{name} p99 <= 1.25x the bare pool's ({rendered['tail']:.2f}x)", 0 < rendered["tail"] <= 1.25, False)
    b.check(f"{name} >= 10x connect-per-request ({over_cpr:.1f}x)", over_cpr >= 10, False)
    failed = sum(r.failed for r in runs[("rendered", mode)])
    b.check(f"{name} zero failed requests ({failed})", failed == 0, True)

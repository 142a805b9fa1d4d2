"""Flask's server: the rendered app under its app.yaml (gunicorn's asyncio worker, each request read whole, then run
on one of 8 threads by app/serving.py) vs the same app under gunicorn's thread worker (--threads=8, which a client
that sends slowly can starve: tests/test_request_limits.py), reads and writes, loaded at once in interleaved rounds.

What the slow-client protection costs per request, on the same code, database and load generator.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.core import App, Bench
from bench.observe import cpu_ms
from bench.scenarios.rendered_vs_bare_pool import failures, load_at_once, median

COLUMNS = ("pair", "mode", "server", "req/s", "p50 ms", "p99 ms", "req/s vs gthread", "CPU ms/req", "failed")


def gthread_copy(b: Bench, driver: str) -> Path:
    """The rendered Flask project with app.yaml's command on gunicorn's thread worker, as before serving.py."""
    project = b.project("flask", driver)
    copy = project.with_name(f"{project.name}-gthread")
    if not copy.exists():
        shutil.copytree(project, copy, symlinks=True)
        app_yaml = copy / "app" / "app.yaml"
        text = app_yaml.read_text()
        for old, new in (("- main:served", "- main:app"), ("- --worker-class=asgi", "- --threads=8")):
            if old not in text:
                raise RuntimeError(f"{app_yaml} has no {old!r}: the scenario no longer matches the template")
            text = text.replace(old, new)
        app_yaml.write_text(text)
    return copy


def run(b: Bench) -> None:
    rounds = 1 if b.args.short else b.args.rounds
    drivers = sorted({d for f, d in b.combos([("flask", "psycopg3")]) if f == "flask"}) or ["psycopg3"]
    rows: list[dict] = []
    for driver in drivers:
        apps: list[tuple[str, App]] = [
            ("asgi + serving.py", b.start_rendered(b.stub, "flask", driver)),
            ("gthread", b.start_rendered(b.stub, "flask", driver, project=gthread_copy(b, driver),
                                         label=f"flask:{driver} gthread")),
        ]  # fmt: skip
        runs: dict = {}
        try:
            for _, app in apps:
                b.seed(app)
            for mode in ("reads", "writes"):
                for r in range(rounds):
                    print(f"  flask:{driver} {mode} round {r + 1}: both servers at once", flush=True)
                    load_at_once(b, b.pg, mode, apps, runs)
        finally:
            b.stop_apps()
        for mode in ("reads", "writes"):
            against = runs[("gthread", mode)]
            for kind, _ in apps:
                results = runs[(kind, mode)]
                ratios = [a.rps / z.rps for a, z in zip(results, against, strict=True) if z.rps]
                rows.append(
                    {
                        "pair": f"flask:{driver}",
                        "mode": mode,
                        "server": kind,
                        "req/s": f"{median([r.rps for r in results]):.0f}",
                        "p50 ms": f"{median([r.pct(0.5) for r in results]):.1f}",
                        "p99 ms": f"{median([r.pct(0.99) for r in results]):.1f}",
                        "req/s vs gthread": f"{median(ratios):.2f}",
                        "CPU ms/req": f"{median([cpu_ms(r) for r in results]):.2f}",
                        "failed": failures(results),
                    }
                )
    b.table(
        f"Flask's server: asgi worker + serving.py vs gthread, {b.args.clients} clients, {rounds} rounds x "
        f"{b.args.seconds:g} s, both loaded at once (medians over the rounds)",
        rows,
        "",
        cols=COLUMNS,
    )

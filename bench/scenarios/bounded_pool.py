"""200 (CI: 64) concurrent clients: never more server connections than the pool."""

from __future__ import annotations

from bench.core import Bench


def run(b: Bench) -> None:
    stub, sampler = b.stub, b.sampler
    clients = 64 if b.args.short else 200
    rows = []
    for framework, driver in b.combos():
        app = b.start_rendered(stub, framework, driver)
        res, peak = b.measure(stub, sampler, [app], clients, b.args.seconds)
        rows.append(b.row(f"{framework}:{driver}", res, peak, app.bound, b.cred_calls(stub, app.client_id), app.mode))
        b.stop(app)
        b.check_load(f"{framework}:{driver}", res, peak, app.bound, f"at {clients} clients")
    b.table(f"{clients} concurrent clients: bounded pool", rows)

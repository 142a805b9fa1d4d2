"""Every framework x driver pair under load: bounded, no failure."""

from __future__ import annotations

from bench.core import Bench
from tests.support.template import valid_combinations


def run(b: Bench) -> None:
    stub, sampler = b.stub, b.sampler
    pairs = sorted({(c["framework"], c["driver"]) for c in valid_combinations()})
    rows = []
    for framework, driver in pairs:
        try:
            app = b.start_rendered(stub, framework, driver)
        except AssertionError as e:
            rows.append({"run": f"{framework}:{driver}", "drives": f"did not start: {str(e).splitlines()[0]}"})
            b.check(f"{framework}:{driver} starts", False, True)
            continue
        res, peak = b.measure(stub, sampler, [app], b.args.clients, min(b.args.seconds, 2.0))  # 17 pairs: kept short
        drives = {
            "items": "GET+POST /api/items",
            "/healthz": "/healthz (pool ping)",
            "/_stcore/health": "/_stcore/health only (no DB: the UI is a websocket)",
        }[app.mode]
        row = b.row(f"{framework}:{driver}", res, peak, app.bound, b.cred_calls(stub, app.client_id), drives)
        row["run"] += f" (ready {app.ready_seconds:.1f} s)"
        rows.append(row)
        b.stop(app)
        b.check(
            f"{framework}:{driver} peak {peak} <= bound {app.bound}, failed {res.failed}",
            peak <= app.bound and res.failed == 0,
            True,
        )
    b.table(
        f"Every framework x driver, {b.args.clients} clients",
        rows,
        "Streamlit serves its UI over a websocket; only /_stcore/health can be driven over HTTP and it does not "
        "touch the database. Dash and Gradio are driven on /healthz (a pooled SELECT 1), not their UI callbacks.",
    )

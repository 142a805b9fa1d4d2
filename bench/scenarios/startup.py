"""Start-up, warm: seconds from each framework's app.yaml command to its first served request (bench/startup.py)."""

from __future__ import annotations

from bench import startup
from bench.core import Bench


def run(b: Bench) -> None:
    rows = []
    runs = 1 if b.args.short else b.args.start_runs
    for row in startup.measure(b.pg, b.stub, b.args.start_combos, runs, b.work / "startup", None):
        rows.append(row)
        if row["framework"] in ("flask", "fastapi"):
            b.check(f"{row['app']} warm start {row['median']:.2f} s <= 2 s", row["median"] <= 2.0, False)
    b.table(
        f"Start-up, warm: the app.yaml command to the first served request, median of {runs}",
        rows,
        "The first start follows the deployer's migration of a new database and is not in the median.",
        cols=startup.COLUMNS,
    )

"""Three instances at exactly the connection budget: no connection refused."""

from __future__ import annotations

from bench.core import Bench


def run(b: Bench) -> None:
    k = 3
    clients = 24 if b.args.short else 96
    rows = []
    for framework, driver in b.combos():
        processes = 2 if framework in ("flask", "dash") else 1
        pool = 5
        budget = k * processes * pool
        reserved = 3  # superuser_reserved_connections (PostgreSQL default)
        # + 1: the sampler's own superuser session takes an ordinary slot
        pg, stub, sampler = b.new_server(max_connections=budget + reserved + 1)
        try:
            client = stub.new_client()
            database = b.new_database(pg, client.role)
            env = {"DB_POOL_MAX_SIZE": str(pool)}
            apps = [
                b.start_rendered(stub, framework, driver, client=client, database=database, extra_env=env, wait=False)
                for _ in range(k)
            ]
            for app in apps:
                b.wait_ready(app)
            res, peak = b.measure(stub, sampler, apps, clients, b.args.seconds)
            logs = "".join(a.log_text() for a in apps) + pg.read_log()
            refused = sum(logs.count(s) for s in ("too many clients", "remaining connection slots"))
            row = b.row(
                f"{framework}:{driver} x{k}, pool {pool}, max_connections {budget + reserved + 1}",
                res,
                peak,
                budget,
                b.cred_calls(stub, client.client_id),
                app.mode,
            )
            row["run"] += f" ({refused} refusals in logs)"
            rows.append(row)
            for app in apps:
                b.stop(app)
            b.check(
                f"{framework}:{driver} no connection refused ({refused} in logs, {res.failed} failed)",
                refused == 0 and res.failed == 0,
                True,
            )
            b.check(f"{framework}:{driver} peak {peak} <= budget {budget}", peak <= budget, True)
        finally:
            b.stop_apps()
            sampler.stop()
            stub.stop()
            pg.stop()
    b.table(f"Scale out: {k} instances at the connection budget, {clients} clients", rows)

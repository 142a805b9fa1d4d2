"""Raw-driver ceiling for bench/load.py: N clients run the app's queries on a pool, no HTTP.

Run with the app environment's python (it has every driver). Connection settings come from
PG* (with PGPASSWORD: a static password role). Prints one JSON line: ok, failed, latencies (s).
Mix per client: 4 in 5 list the items of reader<k> (seeded), 1 in 5 inserts an item for writer<i>.
"""

import argparse
import asyncio
import json
import os
import threading
import time

LIST = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %(owner)s ORDER BY id"
INSERT = (
    "INSERT INTO items (owner, title) VALUES (%(owner)s, %(title)s) RETURNING id, title, done, created_at, updated_at"
)
LIST_A = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = $1 ORDER BY id"
INSERT_A = "INSERT INTO items (owner, title) VALUES ($1, $2) RETURNING id, title, done, created_at, updated_at"


def is_write(i: int, n: int) -> bool:
    return (i + n) % 5 == 0


async def run_asyncpg(args: argparse.Namespace) -> dict:
    import asyncpg

    pool = await asyncpg.create_pool(
        host=os.environ["PGHOST"],
        port=int(os.environ["PGPORT"]),
        user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"],
        database=os.environ["PGDATABASE"],
        ssl=os.environ.get("PGSSLMODE", "require"),
        min_size=1,
        max_size=args.pool,
        server_settings={"search_path": "app_data", "application_name": os.environ["PGAPPNAME"]},
    )
    lat: list[float] = []
    failed = 0
    deadline = time.monotonic() + args.seconds

    async def client(i: int) -> None:
        nonlocal failed
        n = 0
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                async with pool.acquire() as conn:
                    if is_write(i, n):
                        dict(await conn.fetchrow(INSERT_A, f"writer{i}@example.com", f"item {i}-{n}"))
                    else:
                        [dict(r) for r in await conn.fetch(LIST_A, f"reader{i % 8}@example.com")]
                lat.append(time.perf_counter() - t0)
            except Exception:  # noqa: BLE001 - counted
                failed += 1
            n += 1

    await asyncio.gather(*(client(i) for i in range(args.first, args.first + args.clients)))
    await pool.close()
    return {"ok": len(lat), "failed": failed, "lat": lat}


def run_psycopg3(args: argparse.Namespace) -> dict:
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        "",
        kwargs={"options": "-c search_path=app_data", "row_factory": dict_row},
        min_size=1,
        max_size=args.pool,
        open=True,
    )
    lat: list[float] = []
    failed = [0]
    deadline = time.monotonic() + args.seconds

    def client(i: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                with pool.connection() as conn:
                    if is_write(i, n):
                        conn.execute(INSERT, {"owner": f"writer{i}@example.com", "title": f"item {i}-{n}"}).fetchone()
                    else:
                        conn.execute(LIST, {"owner": f"reader{i % 8}@example.com"}).fetchall()
                lat.append(time.perf_counter() - t0)
            except Exception:  # noqa: BLE001 - counted
                failed[0] += 1
            n += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.first, args.first + args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool.close()
    return {"ok": len(lat), "failed": failed[0], "lat": lat}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--driver", choices=["asyncpg", "psycopg3"], required=True)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--first", type=int, default=0, help="index of the first client")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--pool", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(run_asyncpg(args)) if args.driver == "asyncpg" else run_psycopg3(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

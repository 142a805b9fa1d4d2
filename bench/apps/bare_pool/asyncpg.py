"""Bare pool, asyncpg: asyncpg.create_pool as its docs show it, a static PGPASSWORD (libpq's PG* variables), no token,
no retry, no validation; LIST and INSERT are the rendered app's SQL. Copied next to main.py as pool.py."""

import asyncio
import os

import asyncpg

LIST = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = $1 ORDER BY id"
INSERT = "INSERT INTO items (owner, title) VALUES ($1, $2) RETURNING id, title, done, created_at, updated_at"
pool = None
opening = asyncio.Lock()


async def fetch(sql, params):
    global pool
    if pool is None:
        async with opening:
            if pool is None:
                pool = await asyncpg.create_pool(
                    min_size=1,
                    max_size=5,
                    server_settings={"search_path": "app_data", "application_name": os.environ["PGAPPNAME"]},
                )
    async with pool.acquire() as conn:
        return [dict(row) for row in await conn.fetch(sql, *params)]

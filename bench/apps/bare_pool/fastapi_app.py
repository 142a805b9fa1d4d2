"""Bare-pool baseline, FastAPI: the driver's own pool (pool.py, one of this directory's driver files), the rendered
app's SQL and server command (fastapi.yaml). Copied as main.py."""

import inspect

from fastapi import FastAPI, Header
from pool import INSERT, LIST, fetch
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

app = FastAPI()


class NewItem(BaseModel):
    title: str


async def run(sql, params):
    """asyncpg's fetch is awaited; a blocking driver's runs in Starlette's threadpool, where FastAPI runs a `def`
    endpoint (the rendered app's endpoints are `def` for those drivers)."""
    if inspect.iscoroutinefunction(fetch):
        return await fetch(sql, params)
    return await run_in_threadpool(fetch, sql, params)


@app.get("/healthz")
async def healthz():
    await run("SELECT 1 AS one", ())
    return {"database": "ok"}


@app.get("/api/items")
async def list_items(owner: str = Header("", alias="X-Forwarded-Email")):
    return await run(LIST, (owner.strip().lower(),))


@app.post("/api/items", status_code=201)
async def create_item(new: NewItem, owner: str = Header("", alias="X-Forwarded-Email")):
    return (await run(INSERT, (owner.strip().lower(), new.title.strip())))[0]

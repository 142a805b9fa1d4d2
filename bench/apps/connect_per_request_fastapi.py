"""Connect-per-request baseline: asyncpg.connect() inside every handler, static PGPASSWORD."""

import os

import asyncpg
from fastapi import FastAPI, Header
from pydantic import BaseModel

app = FastAPI()


class NewItem(BaseModel):
    title: str


async def connect():
    return await asyncpg.connect(
        host=os.environ["PGHOST"],
        port=int(os.environ["PGPORT"]),
        user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"],
        database=os.environ["PGDATABASE"],
        ssl="require",
        server_settings={"search_path": "app_data", "application_name": os.environ["PGAPPNAME"]},
    )


@app.get("/healthz")
async def healthz():
    conn = await connect()
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()
    return {"database": "ok"}


@app.get("/api/items")
async def list_items(owner: str = Header("local.user@example.com", alias="X-Forwarded-Email")):
    conn = await connect()
    try:
        rows = await conn.fetch(
            "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = $1 ORDER BY id",
            owner.strip().lower(),
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


@app.post("/api/items", status_code=201)
async def create_item(new: NewItem, owner: str = Header("local.user@example.com", alias="X-Forwarded-Email")):
    conn = await connect()
    try:
        row = await conn.fetchrow(
            "INSERT INTO items (owner, title) VALUES ($1, $2) RETURNING id, title, done, created_at, updated_at",
            owner.strip().lower(),
            new.title.strip(),
        )
        return dict(row)
    finally:
        await conn.close()

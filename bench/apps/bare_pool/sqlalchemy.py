"""Bare pool, sqlalchemy: a SQLAlchemy engine's QueuePool as its docs show it, a static PGPASSWORD (libpq's PG* variables), no token,
no retry, no validation; LIST and INSERT are the rendered app's SQL. Copied next to main.py as pool.py."""

from sqlalchemy import create_engine

LIST = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %s ORDER BY id"
INSERT = "INSERT INTO items (owner, title) VALUES (%s, %s) RETURNING id, title, done, created_at, updated_at"
engine = create_engine(
    "postgresql+psycopg://", pool_size=5, max_overflow=0, connect_args={"options": "-c search_path=app_data"}
)


def fetch(sql, params):
    with engine.begin() as conn:
        return [dict(row) for row in conn.exec_driver_sql(sql, params).mappings()]

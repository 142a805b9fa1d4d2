"""Bare pool, psycopg3: psycopg_pool.ConnectionPool as its docs show it, a static PGPASSWORD (libpq's PG* variables), no token,
no retry, no validation; LIST and INSERT are the rendered app's SQL. Copied next to main.py as pool.py."""

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

LIST = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %s ORDER BY id"
INSERT = "INSERT INTO items (owner, title) VALUES (%s, %s) RETURNING id, title, done, created_at, updated_at"
pool = ConnectionPool(
    "", min_size=1, max_size=5, kwargs={"options": "-c search_path=app_data", "row_factory": dict_row}
)


def fetch(sql, params):
    with pool.connection() as conn:
        return conn.execute(sql, params).fetchall()

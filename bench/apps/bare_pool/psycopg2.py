"""Bare pool, psycopg2: psycopg2.pool.ThreadedConnectionPool as its docs show it, a static PGPASSWORD (libpq's PG* variables), no token,
no retry, no validation; LIST and INSERT are the rendered app's SQL. Copied next to main.py as pool.py."""

import threading

import psycopg2.extras
import psycopg2.pool

LIST = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %s ORDER BY id"
INSERT = "INSERT INTO items (owner, title) VALUES (%s, %s) RETURNING id, title, done, created_at, updated_at"
# minconn = maxconn: the pool closes every connection handed back beyond minconn (psycopg2/pool.py)
pool = psycopg2.pool.ThreadedConnectionPool(5, 5, "", options="-c search_path=app_data")
slots = threading.BoundedSemaphore(5)  # the pool raises instead of waiting when all 5 are out


def fetch(sql, params):
    with slots:
        conn = pool.getconn()
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(sql, params)
                rows = cur.fetchall()
            conn.commit()
            return rows
        finally:
            pool.putconn(conn)

"""What a rendered app stored, read as the superuser (past row-level security: every user's rows)."""

from __future__ import annotations

from typing import Any

SCHEMA = "app_data"


def rows_in_db(pg_server: Any, dbname: str) -> list[tuple[str, str, bool]]:
    return pg_server.query(f"SELECT owner, title, done FROM {SCHEMA}.items ORDER BY id", dbname=dbname)


def ids_by_title(pg_server: Any, dbname: str, owner: str) -> dict[str, int]:
    rows = pg_server.query(f"SELECT title, id FROM {SCHEMA}.items WHERE owner = %s", [owner.lower()], dbname=dbname)
    return dict(rows)


def table_owner(pg_server: Any, dbname: str) -> str | None:
    sql = "SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = 'items'"
    rows = pg_server.query(sql, [SCHEMA], dbname=dbname)
    return rows[0][0] if rows else None

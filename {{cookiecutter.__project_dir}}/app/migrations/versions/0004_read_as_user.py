"""``items_for(user)``: the user's rows of items in one statement, so a read costs one round trip on asyncpg.

asyncpg sends a statement with parameters alone (no pipeline), so setting the user and reading would need a
transaction around them: BEGIN, the setting, the read, COMMIT. ``items_for`` runs both in one call instead:
a SQL function's statements run in order and the last one's rows are returned (PostgreSQL docs, xfunc-sql),
and a VOLATILE function's later statements see what its earlier ones changed (xfunc-volatility), so the read
inside sees ``app.user`` set. One statement that calls set_config beside the read (a CTE, a LATERAL) would not
do: the order of its parts is undefined, and current_setting is STABLE, which PostgreSQL may evaluate once.

SECURITY INVOKER: the read runs as the caller, so row-level security (0002) applies to the app's role as
before. The setting is transaction-local (``true``): it ends with the calling statement's implicit
transaction, and a SET clause on a function restores only the variables it names (sql-createfunction), here
search_path, pinned as 0003 pins app_user()'s, so nothing of a session's can shadow what it calls.
EXECUTE is the app's role's alone (database/migrate.py grants it), not PUBLIC's.

Additive: it only adds a function; code from before it never calls it.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from database.settings import SCHEMA

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.execute(
        f"CREATE FUNCTION items_for(app_user text) RETURNS SETOF {SCHEMA}.items "  # noqa: S608 (SCHEMA: a constant)
        "LANGUAGE sql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp "
        "AS $$ SELECT pg_catalog.set_config('app.user', app_user, true); "
        f"SELECT * FROM {SCHEMA}.items $$"
    )
    op.execute("REVOKE ALL ON FUNCTION items_for(text) FROM PUBLIC")

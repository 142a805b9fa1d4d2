"""Row-level security: PostgreSQL itself refuses every row of items that is not the signed-in user's.

The app opens each request's work for one user: ``set_config('app.user', <e-mail>, true)``, local to
that transaction (database/pooled.py). ``app_user()`` reads it back, NULL when no user is set, so the
policy ``items_owner`` shows and accepts only that user's rows, and nothing at all without a user.
FORCE applies the policies to the table's owner too, and the owner is the app's own role (PostgreSQL
docs, "Row Security Policies": table owners bypass row security unless it is forced).

Migrations must still reach every row (a backfill such as README's ``UPDATE items SET priority = 1``):
the policy ``items_migrations`` admits the session holding the migration lock (database/schema.py
``LOCK``), which only ``database.migrate`` takes, around the migrations and nothing else.

Not additive: code from before this revision sets no user, so it would find no rows. Such code stops
serving once the database is at this revision (docs/change-the-schema.md).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from database.schema import LOCK_KEY

revision = "0002"
down_revision = "0001"
additive = False


def upgrade() -> None:
    # The user the current transaction was opened for; NULL (matching no row) when none was set.
    op.execute(
        "CREATE FUNCTION app_user() RETURNS text LANGUAGE sql STABLE "
        "AS $$ SELECT nullif(current_setting('app.user', true), '') $$"
    )
    # Whether this session holds the migration lock (pg_advisory_lock of one bigint key: classid is its
    # high half, objid its low half, objsubid 1).
    op.execute(
        "CREATE FUNCTION migrating() RETURNS boolean LANGUAGE sql STABLE AS $$ "  # noqa: S608 (LOCK_KEY: a constant)
        "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted "
        f"AND objsubid = 1 AND (classid::bigint << 32 | objid::bigint) = {LOCK_KEY}) $$"
    )
    op.execute("ALTER TABLE items ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY items_owner ON items USING (owner = app_user()) WITH CHECK (owner = app_user())")
    # (SELECT migrating()) runs once per statement, not once per row.
    op.execute("CREATE POLICY items_migrations ON items USING ((SELECT migrating())) WITH CHECK ((SELECT migrating()))")

"""The schema belongs to an owner role; the app's role only reads and writes rows.

``database.migrate upgrade`` runs the migrations as the owner role (``SET ROLE``), which has BYPASSRLS, so
migrations reach every user's rows without a policy of their own, and grants the app's role the rows alone
(docs/database.md, "Whose rows"). The policy that admitted the session holding the migration lock goes: any session of
the role that owned the tables could take that lock, or plant a temporary ``pg_locks`` that said it had.

``app_user()`` now runs with a fixed search_path (pg_catalog, then pg_temp, where nothing of a session's can
shadow what it calls), and the policy calls it once per statement.

Not additive: code from before this revision migrates at start-up as the role that owned the schema, which
now owns nothing there; such code stops serving once the database is at this revision.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
additive = False


def upgrade() -> None:
    op.execute("DROP POLICY IF EXISTS items_migrations ON items")
    op.execute("DROP FUNCTION IF EXISTS migrating()")
    # The user the current transaction was opened for; NULL (matching no row) when none was set.
    op.execute(
        "CREATE OR REPLACE FUNCTION app_user() RETURNS text LANGUAGE sql STABLE "
        "SET search_path = pg_catalog, pg_temp "
        "AS $$ SELECT nullif(pg_catalog.current_setting('app.user', true), '') $$"
    )
    # (SELECT app_user()): evaluated once per statement, not once per row.
    op.execute(
        "ALTER POLICY items_owner ON items USING (owner = (SELECT app_user())) WITH CHECK (owner = (SELECT app_user()))"
    )

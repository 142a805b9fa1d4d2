"""``create_item``, ``update_item`` and ``delete_item``: a write in one statement, applied once by its key.

A write in a transaction that reads its own id before COMMIT (so that a lost COMMIT answer can be looked up)
costs two round trips or more: COMMIT waits for the id; four on asyncpg, which sends one statement per round trip.
Each of these functions sets the user and makes the write in one statement instead, in that statement's own
transaction: one round trip, on every driver. A PL/pgSQL function runs its statements
in order (PostgreSQL docs, plpgsql-structure), so the write sees ``app.user`` set, and row-level security (0002)
decides as before: SECURITY INVOKER, the caller's role, and the items policy.

Applied once: the app sends each write with a key of its own (a random UUID, the same on every try), and the
function first records it in ``applied_writes`` (INSERT ... ON CONFLICT DO NOTHING). When a try's answer was lost
and the write is sent again, the key is there: nothing changes and the function returns what the write left (the
item as it is now; whether it was deleted). When the first try still runs on a backend that has not yet noticed its
client left, the second waits on the key's unique index until the first commits or rolls back (sql-insert, "ON
CONFLICT"), so exactly one applies the write. A key outlives its request only to be found by its retries: each
user's keys older than an hour go, now and then, with a later write.

``applied_writes`` has the row security of every table (the user's keys only). EXECUTE is the app's role's alone
(database/migrate.py grants it), not PUBLIC's; search_path is pinned as 0004 pins items_for's.

Additive: it adds a table and functions; code from before it never calls them.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from database.settings import SCHEMA

revision = "0005"
down_revision = "0004"

PINNED = "LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp"
# True the first time a key is seen (the write is to be applied), false for a retry of one applied already.
FIRST_TIME = f"""
CREATE FUNCTION first_time(as_user text, once uuid, item bigint) RETURNS boolean {PINNED} AS $$
BEGIN
    INSERT INTO {SCHEMA}.applied_writes (write_key, owner, item_id) VALUES (once, as_user, item)
        ON CONFLICT (write_key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF random() < 0.01 THEN  -- about one write in a hundred: this user's keys that no retry can still need
        DELETE FROM {SCHEMA}.applied_writes WHERE owner = as_user AND applied_at < now() - interval '1 hour';
    END IF;
    RETURN true;
END $$"""  # noqa: S608 (SCHEMA: a constant)
CREATE_ITEM = f"""
CREATE FUNCTION create_item(as_user text, once uuid, new_title text, max_items integer)
RETURNS SETOF {SCHEMA}.items {PINNED} AS $$
DECLARE
    made bigint := nextval(pg_get_serial_sequence('{SCHEMA}.items', 'id'));  -- the new item's id, kept with the key
BEGIN
    PERFORM set_config('app.user', as_user, true);
    IF NOT {SCHEMA}.first_time(as_user, once, made) THEN  -- applied before: the item it made, as it is now
        RETURN QUERY SELECT i.* FROM {SCHEMA}.items i JOIN {SCHEMA}.applied_writes w ON w.item_id = i.id
            WHERE w.write_key = once;
        RETURN;
    END IF;
    -- only while the user keeps fewer than max_items: nothing made at the cap
    RETURN QUERY WITH made_row AS (
        INSERT INTO {SCHEMA}.items (id, owner, title) OVERRIDING SYSTEM VALUE
        SELECT made, as_user, new_title WHERE (SELECT count(*) FROM {SCHEMA}.items WHERE owner = as_user) < max_items
        RETURNING *
    ) SELECT * FROM made_row;
END $$"""  # noqa: S608 (SCHEMA: a constant)
UPDATE_ITEM = f"""
CREATE FUNCTION update_item(as_user text, once uuid, item bigint, new_title text, new_done boolean)
RETURNS SETOF {SCHEMA}.items {PINNED} AS $$
BEGIN
    PERFORM set_config('app.user', as_user, true);
    IF NOT {SCHEMA}.first_time(as_user, once, item) THEN  -- applied before: the item as it is now
        RETURN QUERY SELECT * FROM {SCHEMA}.items WHERE id = item AND owner = as_user;
        RETURN;
    END IF;
    RETURN QUERY WITH changed AS (  -- a NULL keeps its column
        UPDATE {SCHEMA}.items
        SET title = coalesce(new_title, title), done = coalesce(new_done, done), updated_at = now()
        WHERE id = item AND owner = as_user RETURNING *
    ) SELECT * FROM changed;
END $$"""  # noqa: S608 (SCHEMA: a constant)
DELETE_ITEM = f"""
CREATE FUNCTION delete_item(as_user text, once uuid, item bigint) RETURNS integer {PINNED} AS $$
BEGIN
    PERFORM set_config('app.user', as_user, true);
    IF NOT {SCHEMA}.first_time(as_user, once, NULL) THEN  -- applied before: whether it deleted the item
        RETURN (SELECT count(item_id)::integer FROM {SCHEMA}.applied_writes WHERE write_key = once);
    END IF;
    DELETE FROM {SCHEMA}.items WHERE id = item AND owner = as_user;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    UPDATE {SCHEMA}.applied_writes SET item_id = item WHERE write_key = once;
    RETURN 1;
END $$"""  # noqa: S608 (SCHEMA: a constant)


def upgrade() -> None:
    op.execute(
        "CREATE TABLE applied_writes (write_key uuid PRIMARY KEY, owner text NOT NULL, item_id bigint, "
        "applied_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute("CREATE INDEX applied_writes_owner_at_idx ON applied_writes (owner, applied_at)")
    op.execute("ALTER TABLE applied_writes ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY applied_writes_owner ON applied_writes "
        "USING (owner = (SELECT app_user())) WITH CHECK (owner = (SELECT app_user()))"
    )
    for function, signature in (
        (FIRST_TIME, "first_time(text, uuid, bigint)"),
        (CREATE_ITEM, "create_item(text, uuid, text, integer)"),
        (UPDATE_ITEM, "update_item(text, uuid, bigint, text, boolean)"),
        (DELETE_ITEM, "delete_item(text, uuid, bigint)"),
    ):
        op.execute(function)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")

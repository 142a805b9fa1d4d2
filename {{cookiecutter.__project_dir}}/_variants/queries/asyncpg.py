"""The example feature's statements for asyncpg: its own ``$n`` parameters, each named in a ``Query``.

items/__init__.py passes the same dictionaries as with the other drivers; ``Query.names`` says which value each
``$n`` is. The reads call ``items_for($1)`` (migration 0004) with the call's user (``app_user``): the function sets
the user and reads the table in one statement, so a read is one round trip; the writes call create_item,
update_item and delete_item (0005) the same way, as every driver's do. The other drivers' reads need no function:
they send the setting with the statement (a pipeline, or one simple query). Row-level security still decides
inside the functions: a read that forgot its owner filter sees only the user's rows.
"""

from database.connection import Query

LIST_ITEMS = Query(
    "SELECT id, title, done, created_at, updated_at FROM items_for($1) WHERE owner = $2 ORDER BY id",
    ("app_user", "owner"),
)
LIST_PAGE = Query(
    "SELECT id, title, done, created_at, updated_at FROM items_for($1) WHERE id > $2 AND owner = $3 "
    "ORDER BY id LIMIT $4",
    ("app_user", "after", "owner", "limit"),
)
GET_ITEM = Query(
    "SELECT id, title, done, created_at, updated_at FROM items_for($1) WHERE id = $2 AND owner = $3",
    ("app_user", "id", "owner"),
)
# Writes call the functions of migration 0005: each sets the user, applies the write once by its key (write_key,
# which the driver adds: the same on every try) and commits, in one statement, so a write is one round trip too.
# create_item inserts only while the user keeps fewer than max_items: two creates racing at the cap may both pass
# (each counts before the other commits), so a user can exceed it by the requests in flight.
CREATE_ITEM = Query(
    "SELECT id, title, done, created_at, updated_at FROM create_item($1, $2, $3, $4)",
    ("app_user", "write_key", "title", "max_items"),
)
UPDATE_ITEM = Query(  # a NULL title or done keeps its column
    "SELECT id, title, done, created_at, updated_at FROM update_item($1, $2, $3, $4, $5)",
    ("app_user", "write_key", "id", "title", "done"),
)
DELETE_ITEM = Query("SELECT delete_item($1, $2, $3) AS changed", ("app_user", "write_key", "id"))  # rows deleted

"""The example feature's statements for asyncpg: its own ``$n`` parameters, each named in a ``Query``.

items/__init__.py passes the same dictionaries as with the other drivers; ``Query.names`` says which value each
``$n`` is. The reads call ``items_for($1)`` (migration 0004) with the call's user (``app_user``): the function sets
the user and reads the table in one statement, so a read is one round trip. Only asyncpg needs it: the other
drivers send the setting and the read together already (a pipeline, or one simple query). Row-level security
still decides inside it: a read that forgot its owner filter sees only the user's rows.
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
# Inserts only while the user keeps fewer than max_items: the cap costs no extra round trip. Two creates racing
# at the cap may both pass (each counts before the other commits): a user can exceed it by the requests in flight.
# Writes set the user in their transaction's first statement (database/pooled.py), not through items_for.
CREATE_ITEM = Query(
    "INSERT INTO items (owner, title) SELECT $1, $2 WHERE (SELECT count(*) FROM items WHERE owner = $1) < $3 "
    "RETURNING id, title, done, created_at, updated_at",
    ("owner", "title", "max_items"),
)
UPDATE_ITEM = Query(  # a NULL parameter keeps its column
    "UPDATE items SET title = COALESCE($1, title), done = COALESCE($2, done), updated_at = now() "
    "WHERE id = $3 AND owner = $4 RETURNING id, title, done, created_at, updated_at",
    ("title", "done", "id", "owner"),
)
DELETE_ITEM = Query("DELETE FROM items WHERE id = $1 AND owner = $2", ("id", "owner"))

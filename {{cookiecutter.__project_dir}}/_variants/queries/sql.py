"""The example feature's statements: parameterized SQL with ``%(name)s`` parameters.

Reads name their owner and are sent with the user's setting (database/pooled.py): row-level security (0002)
decides, and a read that forgot its owner filter still sees only the user's rows. Writes call the functions of
migration 0005, which set the user themselves; ``app_user`` and ``write_key`` are filled in by the Database.
"""

LIST_ITEMS = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %(owner)s ORDER BY id"
LIST_PAGE = (
    "SELECT id, title, done, created_at, updated_at FROM items WHERE id > %(after)s AND owner = %(owner)s "
    "ORDER BY id LIMIT %(limit)s"
)
GET_ITEM = "SELECT id, title, done, created_at, updated_at FROM items WHERE id = %(id)s AND owner = %(owner)s"
# Writes call the functions of migration 0005: each sets the user (app_user, the call's user=), applies the write
# once by its key (write_key, which the Database adds: the same on every try) and commits, in one statement, so a
# write is one round trip. create_item inserts only while the user keeps fewer than max_items: two creates racing
# at the cap may both pass (each counts before the other commits), so a user can exceed it by the requests in flight.
CREATE_ITEM = (
    "SELECT id, title, done, created_at, updated_at "
    "FROM create_item(%(app_user)s, %(write_key)s, %(title)s, %(max_items)s)"
)
UPDATE_ITEM = (  # a NULL title or done keeps its column
    "SELECT id, title, done, created_at, updated_at "
    "FROM update_item(%(app_user)s, %(write_key)s, %(id)s, %(title)s, %(done)s)"
)
DELETE_ITEM = "SELECT delete_item(%(app_user)s, %(write_key)s, %(id)s) AS changed"  # rows deleted: 0 or 1

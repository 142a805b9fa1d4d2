"""The example feature's statements: parameterized SQL with ``%(name)s`` parameters."""

LIST_ITEMS = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %(owner)s ORDER BY id"
LIST_PAGE = (
    "SELECT id, title, done, created_at, updated_at FROM items WHERE id > %(after)s AND owner = %(owner)s "
    "ORDER BY id LIMIT %(limit)s"
)
GET_ITEM = "SELECT id, title, done, created_at, updated_at FROM items WHERE id = %(id)s AND owner = %(owner)s"
# Inserts only while the user keeps fewer than max_items: the cap costs no extra round trip. Two creates racing
# at the cap may both pass (each counts before the other commits): a user can exceed it by the requests in flight.
CREATE_ITEM = (
    "INSERT INTO items (owner, title) SELECT %(owner)s, %(title)s "
    "WHERE (SELECT count(*) FROM items WHERE owner = %(owner)s) < %(max_items)s "
    "RETURNING id, title, done, created_at, updated_at"
)
UPDATE_ITEM = (  # a NULL parameter keeps its column
    "UPDATE items SET title = COALESCE(%(title)s, title), done = COALESCE(%(done)s, done), updated_at = now() "
    "WHERE id = %(id)s AND owner = %(owner)s RETURNING id, title, done, created_at, updated_at"
)
DELETE_ITEM = "DELETE FROM items WHERE id = %(id)s AND owner = %(owner)s"

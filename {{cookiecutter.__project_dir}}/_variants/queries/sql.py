"""The example feature's statements: parameterized SQL with ``%(name)s`` parameters."""

LIST_ITEMS = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %(owner)s ORDER BY id"
CREATE_ITEM = (
    "INSERT INTO items (owner, title) VALUES (%(owner)s, %(title)s) RETURNING id, title, done, created_at, updated_at"
)
UPDATE_ITEM = (  # a NULL parameter keeps its column
    "UPDATE items SET title = COALESCE(%(title)s, title), done = COALESCE(%(done)s, done), updated_at = now() "
    "WHERE id = %(id)s AND owner = %(owner)s RETURNING id, title, done, created_at, updated_at"
)
DELETE_ITEM = "DELETE FROM items WHERE id = %(id)s AND owner = %(owner)s"

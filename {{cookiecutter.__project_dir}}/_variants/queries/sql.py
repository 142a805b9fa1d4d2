"""The example feature's statements: parameterized SQL with ``%(name)s`` parameters."""

LIST_ITEMS = "SELECT id, title, done, created_at, updated_at FROM items WHERE owner = %(owner)s ORDER BY id"
CREATE_ITEM = (
    "INSERT INTO items (owner, title) VALUES (%(owner)s, %(title)s) RETURNING id, title, done, created_at, updated_at"
)
UPDATE_ITEM = (
    "UPDATE items SET title = %(title)s, done = %(done)s, updated_at = now() "
    "WHERE id = %(id)s AND owner = %(owner)s RETURNING id, title, done, created_at, updated_at"
)
SET_DONE = (
    "UPDATE items SET done = %(done)s, updated_at = now() "
    "WHERE id = %(id)s AND owner = %(owner)s RETURNING id, title, done, created_at, updated_at"
)
DELETE_ITEM = "DELETE FROM items WHERE id = %(id)s AND owner = %(owner)s"

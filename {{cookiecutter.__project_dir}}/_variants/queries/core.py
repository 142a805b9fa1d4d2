"""The example feature's statements in SQLAlchemy Core, on the tables of models.py.

Their parameters are named like the other drivers' ``%(name)s`` ones, so items/__init__.py passes the same
dictionaries whatever the driver; a change to models.py shows up here as a Python error, not a SQL one.
"""

from sqlalchemy import bindparam, delete, func, insert, select, update

from .models import items

COLUMNS = (items.c.id, items.c.title, items.c.done, items.c.created_at, items.c.updated_at)
THEIRS = (items.c.id == bindparam("id"), items.c.owner == bindparam("owner"))  # the user's own item

LIST_ITEMS = select(*COLUMNS).where(items.c.owner == bindparam("owner")).order_by(items.c.id)
CREATE_ITEM = insert(items).values(owner=bindparam("owner"), title=bindparam("title")).returning(*COLUMNS)
UPDATE_ITEM = (  # a NULL parameter keeps its column
    update(items)
    .where(*THEIRS)
    .values(
        title=func.coalesce(bindparam("title", type_=items.c.title.type), items.c.title),
        done=func.coalesce(bindparam("done", type_=items.c.done.type), items.c.done),
        updated_at=func.now(),
    )
    .returning(*COLUMNS)
)
DELETE_ITEM = delete(items).where(*THEIRS)

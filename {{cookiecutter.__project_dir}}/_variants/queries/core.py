"""The example feature's statements in SQLAlchemy Core, on the tables of models.py.

Their parameters are named like the other drivers' ``%(name)s`` ones, so items/__init__.py passes the same
dictionaries whatever the driver; a change to models.py shows up here as a Python error, not a SQL one.
"""

from sqlalchemy import Text, bindparam, delete, func, insert, select, update

from .models import items

COLUMNS = (items.c.id, items.c.title, items.c.done, items.c.created_at, items.c.updated_at)
THEIRS = (items.c.id == bindparam("id"), items.c.owner == bindparam("owner"))  # the user's own item

LIST_ITEMS = select(*COLUMNS).where(items.c.owner == bindparam("owner")).order_by(items.c.id)
LIST_PAGE = (
    select(*COLUMNS)
    .where(items.c.id > bindparam("after"), items.c.owner == bindparam("owner"))
    .order_by(items.c.id)
    .limit(bindparam("limit"))
)
GET_ITEM = select(*COLUMNS).where(*THEIRS)
# Inserts only while the user keeps fewer than max_items: the cap costs no extra round trip. Two creates racing
# at the cap may both pass (each counts before the other commits): a user can exceed it by the requests in flight.
KEPT = select(func.count()).select_from(items).where(items.c.owner == bindparam("owner")).scalar_subquery()
CREATE_ITEM = (
    insert(items)
    .from_select(
        ["owner", "title"],
        select(bindparam("owner", type_=Text), bindparam("title", type_=Text)).where(KEPT < bindparam("max_items")),
    )
    .returning(*COLUMNS)
)
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

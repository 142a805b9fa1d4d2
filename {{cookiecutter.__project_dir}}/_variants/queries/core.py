"""The example feature's statements in SQLAlchemy Core, on the tables of models.py.

Their parameters are named like the other drivers' ``%(name)s`` ones, so items/__init__.py passes the same
dictionaries whatever the driver; a change to models.py shows up here as a Python error, not a SQL one. Reads are
sent with the user's setting (database/pooled.py); writes call the functions of migration 0005, which set it
themselves. ``app_user`` and ``write_key`` are filled in by the Database.
"""

from typing import Any

from sqlalchemy import Integer, Select, Text, Uuid, bindparam, column, func, select
from sqlalchemy.sql.functions import FunctionElement

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
# Writes call the functions of migration 0005: each sets the user (app_user, the call's user=), applies the write
# once by its key (write_key, which the Database adds: the same on every try) and commits, in one statement, so a
# write is one round trip. create_item inserts only while the user keeps fewer than max_items: two creates racing
# at the cap may both pass (each counts before the other commits), so a user can exceed it by the requests in flight.
USER_AND_KEY = (bindparam("app_user", type_=Text), bindparam("write_key", type_=Uuid))


def _item_from(call: FunctionElement[Any]) -> Select[Any]:
    """The item a function of migration 0005 returns (SETOF items), as the reads' columns."""
    row = call.table_valued(*(column(c.name, c.type) for c in COLUMNS), name="item")
    return select(*row.c)


CREATE_ITEM = _item_from(
    func.create_item(*USER_AND_KEY, bindparam("title", type_=Text), bindparam("max_items", type_=Integer))
)
UPDATE_ITEM = _item_from(  # a NULL title or done keeps its column
    func.update_item(
        *USER_AND_KEY,
        bindparam("id", type_=items.c.id.type),
        bindparam("title", type_=items.c.title.type),
        bindparam("done", type_=items.c.done.type),
    )
)
DELETE_ITEM = select(func.delete_item(*USER_AND_KEY, bindparam("id", type_=items.c.id.type)).label("changed"))

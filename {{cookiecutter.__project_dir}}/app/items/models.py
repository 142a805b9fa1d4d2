"""The tables as SQLAlchemy metadata: the queries are built on it, and Alembic's autogenerate
compares it with the database to write the next migration (see docs/change-the-schema.md).
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    Table,
    Text,
    false,
    func,
)

metadata = MetaData()  # no schema: names resolve through the search_path, which puts the app's schema first

items = Table(
    "items",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("owner", Text, nullable=False),
    Column("title", Text, CheckConstraint("char_length(title) BETWEEN 1 AND 200"), nullable=False),
    Column("done", Boolean, nullable=False, server_default=false()),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("items_owner_id_idx", "owner", "id"),
)

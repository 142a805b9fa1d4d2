"""Alembic's entry point: runs the migrations on the connection ``database.migrate`` hands it.

Run migrations with ``python -m database.migrate ...`` from app/ (see its docstring): it logs in
like the app, takes the advisory lock and creates the schema before Alembic starts.
"""

from alembic import context

from database.schema import VERSION_TABLE
from database.settings import SCHEMA
{%- if cookiecutter.driver == "sqlalchemy" %}
from items.models import metadata
{%- endif %}

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `python -m database.migrate ...` from app/: it connects like the app")


def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
{%- if cookiecutter.driver == "sqlalchemy" %}
    """Autogenerate compares the tables of items/models.py only: never Alembic's own version table, nor a table a
    feature creates in plain SQL without a model (README, "Add a feature"), which it would otherwise drop."""
    return type_ != "table" or name in metadata.tables
{%- else %}
    """Autogenerate compares the app's tables only, never Alembic's own version table."""
    return not (type_ == "table" and name == VERSION_TABLE)
{%- endif %}


context.configure(
    connection=connection,
{%- if cookiecutter.driver == "sqlalchemy" %}
    target_metadata=metadata,  # what autogenerate compares the database with
{%- else %}
    target_metadata=None,  # this driver's migrations are plain SQL (op.execute)
{%- endif %}
    version_table=VERSION_TABLE,
    version_table_schema=SCHEMA,
    transaction_per_migration=True,  # a failed migration rolls back alone; the ones before it stay
    include_name=include_name,
    on_version_apply=context.config.attributes.get("on_version_apply"),
)
with context.begin_transaction():
    context.run_migrations()

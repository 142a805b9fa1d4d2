"""Alembic's entry point: runs the migrations on the connection ``database.migrate`` hands it.

Run migrations with ``python -m database.migrate ...`` from app/ (see its docstring): it logs in as the
deployer, takes the advisory lock, becomes the owner role and creates the schema before Alembic starts.
``python -m database.migrate sql`` runs this file in Alembic's offline mode: SQL text, no database.
"""

from alembic import context

from database.migrate import DIALECT
from database.schema import VERSION_TABLE
from database.settings import SCHEMA
{%- if cookiecutter.driver == "sqlalchemy" %}
from items.models import metadata
{%- endif %}


def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
{%- if cookiecutter.driver == "sqlalchemy" %}
    """Autogenerate compares the tables of items/models.py only: never Alembic's own version table, nor a table a
    feature creates in plain SQL without a model (docs/add-a-feature.md), which it would otherwise drop."""
    return type_ != "table" or name in metadata.tables
{%- else %}
    """Autogenerate compares the app's tables only, never Alembic's own version table."""
    return not (type_ == "table" and name == VERSION_TABLE)
{%- endif %}


options = {
{%- if cookiecutter.driver == "sqlalchemy" %}
    "target_metadata": metadata,  # what autogenerate compares the database with
{%- else %}
    "target_metadata": None,  # this driver's migrations are plain SQL (op.execute)
{%- endif %}
    "version_table": VERSION_TABLE,
    "version_table_schema": SCHEMA,
    "transaction_per_migration": True,  # a failed migration rolls back alone; the ones before it stay
    "include_name": include_name,
}
if context.is_offline_mode():
    context.configure(
        url=DIALECT, literal_binds=True, output_buffer=context.config.attributes.get("output_buffer"), **options
    )
else:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise SystemExit("run migrations with `python -m database.migrate ...` from app/: it connects as the deployer")
    context.configure(
        connection=connection, on_version_apply=context.config.attributes.get("on_version_apply"), **options
    )
with context.begin_transaction():
    context.run_migrations()

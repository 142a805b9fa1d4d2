{%- set async_ = "async " if cookiecutter.__is_async == "True" else "" -%}
{%- set await_ = "await " if cookiecutter.__is_async == "True" else "" -%}
"""Create the app's schema, tables and indexes at startup.

Idempotent, and safe when several app instances start at once: the DDL runs in
one transaction behind a transaction-scoped advisory lock.
"""

from .connection import Database
from .settings import SCHEMA

BOOTSTRAP = [
    # Serialises concurrent bootstraps; released at commit.
    f"SELECT pg_advisory_xact_lock(hashtext('{SCHEMA}.bootstrap'))",
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.items (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner text NOT NULL,
        title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
        done boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""",
    f"CREATE INDEX IF NOT EXISTS items_owner_id_idx ON {SCHEMA}.items (owner, id)",
]

ACCESS = """
SELECT current_user AS role,
       n.oid IS NOT NULL AS present,
       coalesce(has_schema_privilege(n.oid, 'USAGE') AND has_schema_privilege(n.oid, 'CREATE'), false) AS usable
FROM (SELECT 1) AS one
LEFT JOIN pg_namespace AS n ON n.nspname = %(schema)s
"""


class SchemaAccessError(RuntimeError):
    """The schema exists but belongs to someone who has not let this app's role use it."""


{{ async_ }}def bootstrap(db: Database) -> None:
    access = {{ await_ }}db.fetch_one(ACCESS, {"schema": SCHEMA})
    if access and access["present"] and not access["usable"]:
        role = access["role"]
        raise SchemaAccessError(
            f'schema "{SCHEMA}" exists but role "{role}" cannot use it. As the schema owner run: '
            f'GRANT USAGE, CREATE ON SCHEMA {SCHEMA} TO "{role}"; '
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {SCHEMA} TO "{role}";'
        )
    {{ await_ }}db.execute_script(BOOTSTRAP)

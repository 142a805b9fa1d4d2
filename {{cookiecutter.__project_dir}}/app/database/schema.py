"""The app's schema: who may use it, and the lock that serialises changing it.

The tables themselves are made by the migrations (``app/migrations/versions``, run by
``database.migrate``); this module holds the SQL that must run before Alembic does.
"""

import ast
import re
from pathlib import Path
from typing import Any

from .settings import SCHEMA

ACCESS = """
SELECT current_user AS role,
       n.oid IS NOT NULL AS present,
       coalesce(has_schema_privilege(n.oid, 'USAGE') AND has_schema_privilege(n.oid, 'CREATE'), false) AS usable
FROM (SELECT 1) AS one
LEFT JOIN pg_namespace AS n ON n.nspname = :schema
"""

# A session-level advisory lock, held across the migrations' own transactions. Its key is also the one an app
# release without migrations takes (transaction-scoped) to create the schema, so during a rollout the two exclude
# each other.
LOCK_KEY = f"hashtext('{SCHEMA}.bootstrap')"  # migration 0002's policies admit the session holding it
LOCK = f"SELECT pg_advisory_lock({LOCK_KEY})"
UNLOCK = f"SELECT pg_advisory_unlock({LOCK_KEY})"
CREATE = f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"  # the version table lives in it, so it comes first

# Alembic's version table says which revision the database is at, not whether code older than that revision
# may still run on it, and older code has no copy of the newer file that could say so (its ``additive = False``,
# script.py.mako). So applying such a migration also writes its id into the database, as the comment on Alembic's
# version table (psql: \dt+ <schema>.alembic_version):
#     COMMENT ON TABLE <schema>.alembic_version IS 'not additive: 0003'
# Older code that finds a revision it does not know reads it, and stops serving when it names one it does not know.
NOT_ADDITIVE = "SELECT substring(obj_description(to_regclass(:table), 'pg_class') FROM '^not additive: (.*)$')"
VERSION_TABLE = "alembic_version"  # Alembic's, in the app's schema

BEFORE_ROW_SECURITY = {"0001"}  # revisions older than 0002, which gave items its policies: not checked
# Tables of the app's schema that PostgreSQL would serve without a per-user policy: row-level security
# not enabled, not forced (the app's role owns its tables), or no policy. Checked after every migration.
UNPROTECTED = """
SELECT c.relname AS name
FROM pg_class AS c
WHERE c.relnamespace = to_regnamespace(:schema) AND c.relkind IN ('r', 'p') AND c.relname <> :version_table
  AND NOT (c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (SELECT FROM pg_policy WHERE polrelid = c.oid))
ORDER BY 1
"""


def mark_not_additive(revision: str) -> str:
    if not re.fullmatch(r"\w+", revision, re.ASCII):  # COMMENT takes no parameters: only a plain id goes in
        raise ValueError(f"revision id {revision!r} must be letters, digits and _")
    return f"COMMENT ON TABLE {SCHEMA}.{VERSION_TABLE} IS 'not additive: {revision}'"


VERSIONS_DIR = Path(__file__).resolve().parent.parent / "migrations" / "versions"
_ASSIGNED = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]+)?=\s*(.+?)\s*$", re.M)
# Start-up's fast path, through the app's own pool: the revisions the database is at (unqualified: the
# search_path is the app's schema), once the version table is known to exist.
HAS_VERSIONS = "SELECT to_regclass(%(table)s) IS NOT NULL AS present"
VERSIONS = "SELECT version_num FROM alembic_version"


def code_heads() -> set[str] | None:
    """The newest revisions in migrations/versions, read without importing Alembic (None if a file is unusual).

    Only used to skip loading SQLAlchemy and Alembic at start-up when the database is already there.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS_DIR.glob("*.py"):
        assigned = dict(_ASSIGNED.findall(path.read_text()))
        try:
            revision, down = ast.literal_eval(assigned["revision"]), ast.literal_eval(assigned["down_revision"])
        except (KeyError, ValueError, SyntaxError):
            return None
        revisions.add(revision)
        parents.update(down if isinstance(down, tuple | list) else [down] if down else [])
    return revisions - parents or None


def is_current(versions: list[dict[str, Any]]) -> bool:
    heads = code_heads()
    return heads is not None and {row["version_num"] for row in versions} == heads


class MigrationFailed(RuntimeError):
    """A migration failed and was rolled back: the schema is as it was before it, and the app must not serve."""


class UnprotectedTable(RuntimeError):
    """A migration left a table the app serves without row-level security."""


def check_row_security(unprotected: list[str]) -> None:
    """Refuse a migration that leaves a table without forced row-level security and a policy."""
    if unprotected:
        raise UnprotectedTable(
            f"table(s) {', '.join(unprotected)} of schema {SCHEMA} have no forced row-level security with a "
            'policy: every user could read every row. Add to the migration what README, "Change the schema", '
            "shows for a new table"
        )


class SchemaAccessError(RuntimeError):
    """The schema exists but belongs to someone who has not let this app's role use it."""


def check_access(access: Any) -> None:
    """Raise the GRANT that fixes it when the schema exists but this role may not use it."""
    if access["present"] and not access["usable"]:
        role = access["role"]
        raise SchemaAccessError(
            f'schema "{SCHEMA}" exists but role "{role}" cannot use it. As the schema owner run: '
            f'GRANT USAGE, CREATE ON SCHEMA {SCHEMA} TO "{role}"; '
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {SCHEMA} TO "{role}";'
        )

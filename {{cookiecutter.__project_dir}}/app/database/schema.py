"""The app's schema: which revision the code needs, who owns what, and the lock that serialises changing it.

The tables themselves are made by the migrations (``app/migrations/versions``, run by the deployer with
``python -m database.migrate upgrade``); the app only checks, at start-up, that they have run. This module is
plain Python on purpose: the app imports it without loading SQLAlchemy or Alembic.
"""

import ast
import re
from pathlib import Path
from typing import Any

from .pooled import DatabaseBusy
from .settings import SCHEMA

VERSION_TABLE = "alembic_version"  # Alembic's, in the app's schema

# A session-level advisory lock, held by `database.migrate upgrade` across the migrations' own transactions, so
# two deploys never migrate at once. Its key is the one earlier versions of this app took at start-up.
LOCK_KEY = f"hashtext('{SCHEMA}.bootstrap')"
TRY_LOCK = f"SELECT pg_try_advisory_lock({LOCK_KEY})"
UNLOCK = f"SELECT pg_advisory_unlock({LOCK_KEY})"
LOCK_HOLDER = f"""
SELECT a.pid, a.usename AS role, a.application_name AS application, a.backend_start::text AS since
FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND (l.classid::bigint << 32 | l.objid::bigint) = {LOCK_KEY}
"""  # noqa: S608 (LOCK_KEY: a constant)
CREATE = f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"  # the version table lives in it, so it comes first

# Alembic's version table says which revision the database is at, not whether code older than that revision
# may still run on it, and older code has no copy of the newer file that could say so (its ``additive = False``,
# script.py.mako). So applying such a migration also writes its id into the database, as the comment on Alembic's
# version table (psql: \dt+ <schema>.alembic_version):
#     COMMENT ON TABLE <schema>.alembic_version IS 'not additive: 0003'
# Older code that finds a revision it does not know reads it, and stops serving when it names one it does not know.
NOT_ADDITIVE_NOTE = re.compile(r"^not additive: (\w+)$")

# The app's one query at start-up (and again on each call while it finds revisions pending): the revisions the
# database is at and the comment above. The app's role may read this table and not write it (database.migrate).
REVISIONS = (
    f"SELECT version_num, obj_description('{SCHEMA}.{VERSION_TABLE}'::regclass, 'pg_class') AS note "  # noqa: S608
    f"FROM {SCHEMA}.{VERSION_TABLE}"
)
_MISSING = {"42P01", "3F000"}  # undefined_table, invalid_schema_name: nothing migrated yet
_NO_ACCESS = "42501"  # insufficient_privilege: the app's role was not granted the schema

BEFORE_ROW_SECURITY = {"0001"}  # revisions older than 0002, which gave items its policies: not checked
# Tables of the app's schema that PostgreSQL would serve without a per-user policy: row-level security
# not enabled, not forced, or no policy. Checked after every migration.
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


class MigrationFailed(RuntimeError):
    """A migration failed and was rolled back, or this code must not serve the database it found."""


class NotMigrated(DatabaseBusy):
    """The database is not at the revision this code needs yet: answered 503, and checked again on the next call,
    so the app serves as soon as the deployer's ``database.migrate upgrade`` has run (no restart)."""

    retry_after = 5


class UnprotectedTable(RuntimeError):
    """A migration left a table the app serves without row-level security."""


def code_revisions() -> dict[str, tuple[list[str], str]]:
    """Every revision in migrations/versions: its parents and its file name, read without importing Alembic."""
    found: dict[str, tuple[list[str], str]] = {}
    for path in sorted(VERSIONS_DIR.glob("*.py")):
        assigned = dict(_ASSIGNED.findall(path.read_text()))
        try:
            revision, down = ast.literal_eval(assigned["revision"]), ast.literal_eval(assigned["down_revision"])
        except (KeyError, ValueError, SyntaxError):
            raise MigrationFailed(f"{path.name} has no plain `revision = ...` / `down_revision = ...`") from None
        found[revision] = (list(down) if isinstance(down, tuple | list) else [down] if down else [], path.name)
    return found


def _ancestry(revisions: dict[str, tuple[list[str], str]], of: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in of if r in revisions]
    while todo:
        revision = todo.pop()
        if revision not in seen:
            seen.add(revision)
            todo.extend(revisions[revision][0])
    return seen


def check_revisions(rows: list[dict[str, Any]], role: str) -> str | None:
    """Whether this code may serve a database whose version table holds ``rows``.

    Returns None when it may, or a warning to log (the database is newer, and additive). Raises NotMigrated
    naming the revisions still to apply, or MigrationFailed when a newer migration declared itself not additive.
    """
    revisions = code_revisions()
    at = {row["version_num"] for row in rows}
    unknown = sorted(at - set(revisions))
    if unknown:  # a newer release migrated the database: serve it unless it said older code must not
        note = NOT_ADDITIVE_NOTE.match(next((row["note"] for row in rows if row["note"]), "") or "")
        if note and note.group(1) not in revisions:
            raise MigrationFailed(
                f"the database is at revision {', '.join(unknown)}, newer than this code, and migration "
                f"{note.group(1)} declared itself not additive: this version must not serve; deploy the new one"
            )
        return f"the database is at revision {', '.join(unknown)}, newer than this code: serving, as it is additive"
    done = _ancestry(revisions, at)
    pending = [name for revision, (_, name) in revisions.items() if revision not in done]
    if pending:
        raise NotMigrated(
            f"the database is at revision {', '.join(sorted(at)) or 'none'} and this code needs "
            f"{', '.join(sorted(pending))}: the deployer runs `python -m database.migrate upgrade --app-role {role}` "
            "before this version serves"
        )
    return None


def revisions_or_pending(error: BaseException, sqlstate: str | None, role: str) -> list[dict[str, Any]]:
    """What the version query's failure means: no schema or version table yet (nothing applied, so every revision
    is pending), or the app's role was never granted the schema (raises NotMigrated saying so); otherwise re-raise."""
    if sqlstate in _MISSING:
        return []
    if sqlstate == _NO_ACCESS:
        raise NotMigrated(
            f'role "{role}" may not read schema {SCHEMA}: the deployer grants it with '
            f"`python -m database.migrate upgrade --app-role {role}`"
        ) from error
    raise error


def check_row_security(unprotected: list[str]) -> None:
    """Refuse a migration that leaves a table without forced row-level security and a policy."""
    if unprotected:
        raise UnprotectedTable(
            f"table(s) {', '.join(unprotected)} of schema {SCHEMA} have no forced row-level security with a "
            "policy: every user could read every row. Add to the migration what docs/change-the-schema.md "
            "shows for a new table"
        )

"""Migration files the tests add to a rendered project, shaped like the ones `database.migrate revision` writes."""

import textwrap


def migration_file(revision: str, doc: str, statements: list[str], *, additive: bool = True) -> str:
    """Revision ``revision`` (e.g. "0003") on the one before it, whose upgrade() runs ``statements`` in order."""
    down = f"{int(revision) - 1:04d}"
    body = "\n".join(f"op.execute({statement!r})" for statement in statements)
    declared = "" if additive else "additive = False\n"
    return (
        f'"""{doc}\n\nRevision ID: {revision}\nRevises: {down}\n"""\n\nfrom alembic import op\n\n'
        f'revision = "{revision}"\ndown_revision = "{down}"\n{declared}\n\n'
        f"def upgrade() -> None:\n{textwrap.indent(body, '    ')}\n"
    )

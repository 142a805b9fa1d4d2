"""${message}

Forward-only: to undo it, write another migration. Each migration runs in its own transaction.

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""

import sqlalchemy as sa  # noqa: F401  (for operations such as op.add_column)
from alembic import op  # noqa: F401
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
# False when the previous release's code breaks on the result (a drop, a rename, a NOT NULL column without
# a default): instances still running it then stop serving (503) instead of failing requests.
additive = True


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}

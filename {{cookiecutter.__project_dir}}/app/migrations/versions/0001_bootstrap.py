"""Create the items table and its index.

What the app's start-up created before the app had migrations. IF NOT EXISTS, so a database that
start-up made is adopted as it is, rows and all, and recorded at this revision.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    # Unqualified names land in the app's schema: every connection puts it first on its search_path.
    op.execute(
        """CREATE TABLE IF NOT EXISTS items (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            owner text NOT NULL,
            title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
            done boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )"""
    )
    op.execute("CREATE INDEX IF NOT EXISTS items_owner_id_idx ON items (owner, id)")

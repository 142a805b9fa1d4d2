"""What a pull request changes in the database, for its run summary (.github/workflows/ci.yml, job schema-change):

    python3 scripts/schema_change.py <base commit>

The base commit's newest migration is where every deployment of the base stands; `python -m database.migrate sql`
prints the SQL of each newer migration (Alembic's offline mode: nothing connects to a database) with its additive
flag (`additive = False` in the migration: the previous release's code must not serve on the result). Run it from
the project root, with app/requirements.txt installed and the base commit fetched.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = "app/migrations/versions"


def base_revision(base: str) -> str:
    """The newest numbered revision in the base commit's migrations ('base' when it has none)."""
    done = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{base}:{VERSIONS}"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"git ls-tree {base}:{VERSIONS} failed (is the base commit fetched?): {done.stderr.strip()}")
    numbers = [m[1] for name in done.stdout.split() if (m := re.fullmatch(r"(\d{4})_\w+\.py", name))]
    return max(numbers, default="base")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.exit(__doc__)
    after = base_revision(argv[0])
    done = subprocess.run(
        [sys.executable, "-m", "database.migrate", "sql", after], cwd=ROOT / "app", capture_output=True, text=True
    )
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

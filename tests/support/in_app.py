"""Run a few lines inside a rendered app (its app/ directory, the app environment's python) with an opened
Database, as the app's own code would use it."""

import subprocess
import textwrap
from pathlib import Path

from tests.support.appenv import app_python
from tests.support.waiting import HANG_GUARD


def run_with_database(
    app: Path, env: dict[str, str], code: str, is_async: bool, imports: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run `code` in `app` with `db`, an opened Database (`await` works in it for asyncpg); `imports` run first."""
    body = textwrap.indent(textwrap.dedent(code).strip(), "        ")
    awaited = "await " if is_async else ""
    script = (
        f"import asyncio\n{imports}\nfrom database import open_database\n"
        f"{'async ' if is_async else ''}def main():\n    db = {awaited}open_database()\n    try:\n{body}\n"
        f"    finally:\n        {awaited}db.close()\n"
        f"{'asyncio.run(main())' if is_async else 'main()'}\n"
    )
    return subprocess.run(
        [str(app_python()), "-c", script], cwd=app, env=env, capture_output=True, text=True, timeout=HANG_GUARD
    )

"""Run inside the app environment: the rendered app's requirements hold and its modules import.

Usage: python check_rendered_app.py <project dir> <framework>. No database is reachable
and no PG* variable is set: importing must not connect.
"""

import importlib
import importlib.metadata
import json
import sys
from pathlib import Path

from packaging.requirements import Requirement

project, framework = Path(sys.argv[1]), sys.argv[2]
driver = json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]["driver"]
for line in (project / "app" / "requirements.txt").read_text().splitlines():  # the lock: `name==1.2 \\` lines
    if line and not line.startswith((" ", "#")):
        requirement = Requirement(line.removesuffix("\\").strip())
        if requirement.marker is None or requirement.marker.evaluate():
            installed = importlib.metadata.version(requirement.name)
            assert requirement.specifier.contains(installed, prereleases=True), f"{line}: installed {installed}"

sys.path.insert(0, str(project / "app"))
for module in (
    "database",
    "database.settings",
    "database.credentials",
    "database.connection",
    "database.schema",
    "database.migrate",
    *(["database.libpq"] if driver != "asyncpg" else []),  # how libpq drivers log in
    "items",
    "items.rules",
    "items.queries",
    *(["json_api"] if framework in ("flask", "fastapi") else []),
    *(["body_cap"] if framework != "streamlit" else []),
):
    importlib.import_module(module)
if framework != "streamlit":  # a Streamlit script runs its page when imported; it is compiled instead
    main = importlib.import_module("main")
    assert getattr(main, "server" if framework == "dash" else "app") is not None
print("ok")

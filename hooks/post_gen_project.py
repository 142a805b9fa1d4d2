"""Keep the files of the chosen options and drop the rest.

Which file a choice selects is decided here, in one table, and nowhere else:
the template carries every variant under ``_variants/`` and this hook moves the
chosen one into place, then says where the project is and what to run first. No network, no installs.
"""

import json
import os
import shlex
import shutil
from pathlib import Path

ANSWERS = json.loads(
    r"""{{ {"framework": cookiecutter.framework, "driver": cookiecutter.driver, "lakebase": cookiecutter.lakebase,
            "flavour": cookiecutter.__flavour} | tojson }}"""
)
# started_in: where cookiecutter was started (lakebase_app_extension.py records it; this hook runs in the
# project). output_dir: set by cookiecutter's main.py, not by cruft, whose update renders into temporary dirs.
WHERE = json.loads(
    r"""{{ {
        "started_in": lakebase_app_started_in() if lakebase_app_started_in is defined else none,
        "output_dir": cookiecutter.get("_output_dir"),
    } | tojson }}"""
)
# the `lakebase` answer in the words of its prompt, and what deploying needs first
LAKEBASE = {
    "new-autoscaling": ("a new Lakebase Autoscaling project", "deploying creates it"),
    "existing-autoscaling": ("an existing Lakebase Autoscaling project", "name it per target in databricks.yml first"),
    "existing-provisioned": ("an existing Lakebase Provisioned instance", "name it per target in databricks.yml first"),
}
ANSWERS["queries"] = {"sqlalchemy": "core", "asyncpg": "asyncpg"}.get(ANSWERS["driver"], "sql")  # Core on models.py
ANSWERS["lock"] = f"{ANSWERS['framework']}-{ANSWERS['driver']}"  # scripts/lock_requirements.py made one per pair

# destination in the rendered project -> (the answer that decides, the variant it picks)
VARIANTS = {
    "app/main.py": ("framework", "_variants/ui/{}.py"),
    "app/database/connection.py": ("driver", "_variants/connection/{}.py"),
    "app/items/queries.py": ("queries", "_variants/queries/{}.py"),
    "app/requirements.txt": ("lock", "_variants/locks/{}.txt"),  # app/requirements.in, locked with hashes
    "requirements-dev.txt": ("lock", "_variants/locks/{}-dev.txt"),  # requirements-dev.in, locked with hashes
}
# path in the rendered project -> (the answer that decides, the values that keep it)
KEEP_ONLY_FOR = {
    "app/static/index.html": ("framework", {"flask", "fastapi"}),  # the HTML page over the JSON API
    "app/static/app.js": ("framework", {"flask", "fastapi"}),
    "app/json_api.py": ("framework", {"flask", "fastapi"}),  # the JSON API's HTTP shape
    "app/body_cap.py": ("framework", {"flask", "fastapi", "dash", "gradio"}),  # Streamlit: its own flags
    "app/serving.py": ("framework", {"flask", "dash"}),  # WSGI on gunicorn's asyncio worker
    "app/items/api.py": ("framework", {"flask", "fastapi"}),  # the feature's routes: a blueprint or a router
    "app/static": ("framework", {"flask", "fastapi", "dash", "gradio"}),  # style.css; Streamlit has its theme
    "app/security.py": ("framework", {"flask", "fastapi", "dash", "gradio"}),  # Streamlit: its own flags
    "tests/test_sql_params.py": ("driver", {"asyncpg"}),  # the %(name)s -> $n rewrite only asyncpg needs
    "app/database/libpq.py": ("driver", {"psycopg3", "psycopg2", "sqlalchemy"}),  # asyncpg speaks no libpq
    "app/items/models.py": ("driver", {"sqlalchemy"}),  # the tables as SQLAlchemy metadata
    "scripts/previews.py": ("flavour", {"autoscaling"}),  # pull-request previews need branches
}


def main() -> None:
    project = Path.cwd()
    for destination, (answer, pattern) in VARIANTS.items():
        shutil.move(project / pattern.format(ANSWERS[answer]), project / destination)
    shutil.rmtree(project / "_variants")
    for path, (answer, keep) in KEEP_ONLY_FOR.items():
        if ANSWERS[answer] not in keep:
            target = project / path
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    if WHERE["output_dir"] is not None:
        print(next_steps(project, WHERE["started_in"]))


def next_steps(project: Path, started_in: str | None) -> str:
    """The project's path as the user would type it: relative to where they ran cookiecutter when inside it."""
    shown = project
    if started_in and project.is_relative_to(Path(started_in).resolve()):
        shown = Path(os.path.relpath(project, Path(started_in).resolve()))
    where = shlex.quote(str(shown))
    data, before_deploying = LAKEBASE[ANSWERS["lakebase"]]
    return (
        f"Created {where} ({ANSWERS['framework']}, {ANSWERS['driver']}, {data}).\n"
        f"Next: cd {where} && ./run-local.sh   (runs it on this machine with a local PostgreSQL)\n"
        f"Then read {shlex.quote(str(shown / 'README.md'))} to deploy it to Databricks ({before_deploying})."
    )


if __name__ == "__main__":
    main()

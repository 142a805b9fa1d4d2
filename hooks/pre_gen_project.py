"""Validate the answers before anything is written.

Every answer arrives as JSON data (``tojson`` inside a raw string; JSON writes each
double quote in a value as \\", so no answer can end the string), never as Python
source: an answer that tries to close the string and add code stays inert text.
A refusal exits non-zero; cookiecutter then removes the project directory it created before
this hook ran. That directory is named by ``__project_dir`` (cookiecutter.json): the slug when it
passes the project_slug rule below, a throwaway ``refused-...`` name otherwise, so a slug such as
``a/b``, ``..``, an empty or a 300-character one never reaches the file system. Keep both rules equal
(tests/test_answers.py checks they agree).

Answers are checked as text before this hook, where cookiecutter compiles them, by lakebase_app_extension.py
(cookiecutter.json `_extensions`). A replay file is the whole context, `_extensions` included: one that leaves
the extension out is refused here, the first point where the template runs at all. Cookiecutter has then made
the project directory (generate.py `render_and_create_dir`, from the replay's own `__project_dir`) and renders
every path below it as a template next, so this hook also checks that directory is one plain name inside
the output directory.
"""

import json
import os
import re
import signal
import sys
from pathlib import Path

ANSWERS = json.loads(
    r"""{{ {
        "project_name": cookiecutter.project_name,
        "project_slug": cookiecutter.project_slug,
        "app_name": cookiecutter.app_name,
        "description": cookiecutter.description,
        "framework": cookiecutter.framework,
        "driver": cookiecutter.driver,
        "lakebase": cookiecutter.lakebase,
        "lakebase_name": cookiecutter.lakebase_name,
        "database_name": cookiecutter.database_name,
        "schema_name": cookiecutter.schema_name,
        "pool_max_size": cookiecutter.pool_max_size,
        "max_instances": cookiecutter.max_instances,
    } | tojson }}"""
)
REFUSALS = json.loads(r"""{{ cookiecutter._refusals | tojson }}""")
DERIVED = json.loads(
    r"""{{ {"__flavour": cookiecutter.__flavour, "__create_database": cookiecutter.__create_database} | tojson }}"""
)
SETTINGS = json.loads(
    r"""{{ {
        "guarded": lakebase_app_guard is defined,
        "_extensions": cookiecutter.get("_extensions"),
        "__project_dir": cookiecutter.get("__project_dir"),
        "_output_dir": cookiecutter.get("_output_dir"),
    } | tojson }}"""
)
EXTENSION = "lakebase_app_extension.RefusalsWithoutTraceback"
PROJECT_DIR = r"[a-z][a-z0-9_]{0,39}|refused-[a-z]{12}"  # lakebase_app_extension.PROJECT_DIR

# PostgreSQL words that cannot stand as an unquoted identifier (reserved keywords).
SQL_RESERVED = frozenset(
    """all analyse analyze and any array as asc asymmetric authorization binary both case cast
    check collate collation column concurrently constraint create cross current_catalog
    current_date current_role current_schema current_time current_timestamp current_user
    default deferrable desc distinct do else end except false fetch for foreign freeze from
    full grant group having ilike in initially inner intersect into is isnull join lateral
    leading left like limit localtime localtimestamp natural not notnull null offset on only
    or order outer overlaps placing primary references returning right select session_user
    similar some symmetric system_user table tablesample then to trailing true union unique
    user using variadic verbose when where window with""".split()
)

# field -> (regex the value must match in full, the rule in words, a valid example)
RULES = {
    "project_name": (
        r"[A-Za-z][A-Za-z0-9 _-]{0,59}",
        "a letter, then up to 59 letters, digits, spaces, '-' or '_'",
        "Team Feedback",
    ),
    "project_slug": (
        r"[a-z][a-z0-9_]{0,39}",
        "lowercase letter, then up to 39 lowercase letters, digits or '_'",
        "team_feedback",
    ),
    "app_name": (
        r"[a-z][a-z0-9-]{0,24}[a-z0-9]",
        "2-26 characters: lowercase letter first, then lowercase letters, digits or '-', not ending in '-'",
        "team-feedback",
    ),
    "description": (
        r"[^\x00-\x1f\"\\`$<>{}]{1,200}",
        "1-200 characters with no control characters, quotes, backslashes, backticks, '$', '<', '>' or braces",
        "Collects team feedback",
    ),
    "lakebase_name": (
        r"[a-z][a-z0-9-]{0,61}[a-z0-9]",
        "2-63 characters: lowercase letter first, then lowercase letters, digits or '-', not ending in '-'",
        "team-feedback-db",
    ),
    "database_name": (
        r"[a-z_][a-z0-9_]{0,62}",
        "an unquoted PostgreSQL identifier: lowercase letter or '_', then lowercase letters, digits or '_', at most 63",
        "databricks_postgres",
    ),
    "schema_name": (
        r"[a-z_][a-z0-9_]{0,62}",
        "an unquoted PostgreSQL identifier: lowercase letter or '_', then lowercase letters, digits or '_', at most 63; not 'public', not 'pg_*', not an SQL keyword",
        "app_data",
    ),
    "pool_max_size": (r"[1-9][0-9]?", "a whole number from 1 to 99", "5"),
    "max_instances": (r"[1-9]|10", "a whole number from 1 to 10", "2"),
}
# cookiecutter.json's `lakebase` choices, and the values it derives from each for the templates. A replay file
# recorded before this question has none of them: cookiecutter derives them then from no answer (prompt.py
# renders the keys a replay file lacks without the replayed ones), and this hook names the answer instead.
LAKEBASE = {
    "new-autoscaling": {"__flavour": "autoscaling", "__create_database": "True"},
    "existing-autoscaling": {"__flavour": "autoscaling", "__create_database": "False"},
    "existing-provisioned": {"__flavour": "provisioned", "__create_database": "False"},
}
# Connections the smallest Lakebase compute (0.5 CU) accepts, less a few for people and tools.
CONNECTION_BUDGET = 90
# Server processes per app instance: gunicorn's workers (app.yaml's WEB_CONCURRENCY, cookiecutter.json), else one.
PROCESSES = json.loads(r"""{{ cookiecutter._gunicorn_workers | tojson }}""")


def problems(answers: dict, derived: dict) -> list[str]:
    found = []
    for field, (pattern, rule, example) in RULES.items():
        value = answers[field]
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            found.append(f"{field}={value!r} is invalid: it must be {rule} (for example {example!r}).")
    schema = answers["schema_name"]
    if isinstance(schema, str) and (schema == "public" or schema.startswith("pg_") or schema in SQL_RESERVED):
        found.append(
            f"schema_name={schema!r} is invalid: the app needs its own schema, not 'public', "
            "not 'pg_*' and not an SQL keyword (for example 'app_data')."
        )
    if answers["lakebase"] not in LAKEBASE:  # a replay file's answers, or ones recorded before this question
        found.append(
            f"lakebase={answers['lakebase']!r} is invalid: it must be one of {', '.join(map(repr, LAKEBASE))} "
            "(earlier answers lakebase=autoscaling with create_database=yes are 'new-autoscaling', with no "
            "'existing-autoscaling'; lakebase=provisioned is 'existing-provisioned')."
        )
    elif derived != LAKEBASE[answers["lakebase"]]:  # an edited replay file
        found.append(
            f"__flavour and __create_database ({derived['__flavour']!r}, {derived['__create_database']!r}) do not "
            f"follow from lakebase={answers['lakebase']!r}: render from this template's questions, or from "
            "answers it recorded unchanged."
        )
    if not found:
        processes = PROCESSES.get(answers["framework"], 1)
        total = int(answers["max_instances"]) * processes * int(answers["pool_max_size"])
        if total > CONNECTION_BUDGET:
            found.append(
                f"max_instances={answers['max_instances']} x {processes} process(es) x pool_max_size="
                f"{answers['pool_max_size']} = {total} connections is over the {CONNECTION_BUDGET} a 0.5 CU "
                "Lakebase compute leaves the app: lower pool_max_size or max_instances (for example pool_max_size=5)."
            )
    return found


def refusal(answers: dict) -> str | None:
    for rule in REFUSALS:
        if all(answers[field] in allowed for field, allowed in rule["when"].items()):
            combo = ", ".join(f"{field}={json.dumps(answers[field])}" for field in rule["when"])
            return f"{combo} is not supported: {rule['why']}. Valid instead: {rule['instead']}."
    return None


def unguarded(settings: dict, here: Path) -> list[str]:
    """Refusals for answers that turned the extension off, and for a project directory outside the output one."""
    found = []
    if not settings["guarded"]:
        found.append(
            f"_extensions={settings['_extensions']!r} is refused: it must name {EXTENSION!r}, which keeps every "
            "answer plain text. Render from this template's questions, or from answers it recorded unchanged."
        )
    output_dir = settings["_output_dir"]
    name = settings["__project_dir"]
    outside = isinstance(output_dir, str) and here != Path(output_dir).resolve() / here.name
    if not isinstance(name, str) or not re.fullmatch(PROJECT_DIR, name) or here.name != name or outside:
        found.append(
            f"__project_dir={name!r} is refused: the project directory must be one name inside the output "
            "directory (a lowercase letter, then up to 39 lowercase letters, digits or '_'). It comes from "
            "project_slug: answer that instead."
        )
    return found


def stop_before_cookiecutter_deletes(here: Path) -> None:
    """Without the extension, a replayed `__project_dir` such as 'new/..' names a directory that was there
    before: `Path.exists()` is false for it while 'new' is missing, so cookiecutter counts it as made by
    itself and deletes it when this hook fails (generate.py lines 284-297 and 378; hooks.py
    `run_hook_from_repo_dir`). A directory cookiecutter made is empty here (this hook runs before any file
    is written), so a non-empty one is someone's: end cookiecutter instead of failing."""
    if any(here.iterdir()):
        print("ERROR: stopping cookiecutter, so that it does not delete the directory above.", file=sys.stderr)
        sys.stderr.flush()
        os.kill(os.getppid(), signal.SIGKILL)


def main() -> int:
    here = Path.cwd()
    errors = unguarded(SETTINGS, here)
    if errors:
        for error in errors:
            print(f"ERROR: {error}", file=sys.stderr)
        stop_before_cookiecutter_deletes(here)
        return 1
    errors = problems(ANSWERS, DERIVED)
    if not errors:
        refused = refusal(ANSWERS)
        errors = [refused] if refused else []
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

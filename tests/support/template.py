"""What the template offers, read from cookiecutter.json, and ways to render it."""

import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

from tests.support.waiting import HANG_GUARD

ROOT = Path(__file__).resolve().parents[2]
CONFIG: dict[str, Any] = json.loads((ROOT / "cookiecutter.json").read_text())
REFUSALS: list[dict[str, Any]] = CONFIG["_refusals"]

# Every question whose answer is a choice (a list) or a yes/no (a bool): the matrix axes.
AXES: dict[str, list[Any]] = {
    key: (value if isinstance(value, list) else [True, False])
    for key, value in CONFIG.items()
    if not key.startswith("_") and (isinstance(value, list) or isinstance(value, bool))
}
# The tests speak of a render's Lakebase in two words, as the template once asked: `lakebase` (its flavour) and
# `create_database`. The one `lakebase` question each pair stands for; render() and render_cli() translate.
LAKEBASE_CHOICES = {
    ("autoscaling", True): "new-autoscaling",
    ("autoscaling", False): "existing-autoscaling",
    ("provisioned", False): "existing-provisioned",
}
assert sorted(LAKEBASE_CHOICES.values()) == sorted(CONFIG["lakebase"]), "the lakebase choices changed"

# The PostgreSQL driver (DB-API package) each choice installs. SQLAlchemy and Alembic are not drivers: the
# sqlalchemy choice gets psycopg through SQLAlchemy's extra, and every choice runs Alembic over its driver.
DRIVER_PACKAGES = {
    "psycopg3": "psycopg",
    "psycopg2": "psycopg2-binary",
    "asyncpg": "asyncpg",
    "sqlalchemy": "psycopg",
}
ALL_DRIVER_PACKAGES = {"psycopg", "psycopg-binary", "psycopg2", "psycopg2-binary", "asyncpg", "pg8000"}
SQLALCHEMY_EXTRA_DRIVERS = {
    "postgresql-psycopg": "psycopg",
    "postgresql-psycopgbinary": "psycopg",
    "postgresql-psycopg2binary": "psycopg2-binary",
    "postgresql-asyncpg": "asyncpg",
    "postgresql-pg8000": "pg8000",
}


def answers_for(answers: dict[str, Any]) -> dict[str, Any]:
    """The template's answers for the tests' words: `lakebase=autoscaling|provisioned` (flavour) with
    `create_database=True|False` becomes the one `lakebase` choice; any other answer passes as it is."""
    answers = dict(answers)
    flavour = answers.get("lakebase")
    if "create_database" in answers or flavour in ("autoscaling", "provisioned"):
        flavour = flavour or "autoscaling"
        create = answers.pop("create_database", flavour == "autoscaling")
        create = {"yes": True, "no": False}.get(create, create)
        assert (flavour, create) in LAKEBASE_CHOICES, f"no lakebase choice is {flavour} with create_database={create}"
        answers["lakebase"] = LAKEBASE_CHOICES[flavour, create]
    return answers


def all_combinations() -> list[dict[str, Any]]:
    """Every combination of the choices, each in the tests' words (framework, driver, create_database, lakebase)."""
    lakebase = [{"create_database": create, "lakebase": flavour} for flavour, create in LAKEBASE_CHOICES]
    others = {key: values for key, values in AXES.items() if key != "lakebase"}
    return [
        {**dict(zip(others, values, strict=True)), **pair}
        for values in itertools.product(*others.values())
        for pair in lakebase
    ]


def refused(combo: dict[str, Any]) -> bool:
    answers = answers_for(combo)
    return any(all(answers.get(field) in allowed for field, allowed in rule["when"].items()) for rule in REFUSALS)


def valid_combinations() -> list[dict[str, Any]]:
    return [combo for combo in all_combinations() if not refused(combo)]


def combo_id(combo: dict[str, Any]) -> str:
    return "-".join(
        str(v).lower() if not isinstance(v, bool) else ("create" if v else "existing") for v in combo.values()
    )


def render(output_dir: Path, **answers: Any) -> Path:
    """Render in-process with --no-input; returns the project directory."""
    answers = answers_for(answers)
    unknown = set(answers) - set(CONFIG)
    assert not unknown, f"not questions of cookiecutter.json (cookiecutter would ignore them): {unknown}"
    return Path(cookiecutter(str(ROOT), no_input=True, output_dir=str(output_dir), extra_context=answers))


def free_text_questions() -> list[str]:
    """Every question answered in words or numbers (not a choice, not yes/no, not private)."""
    return [key for key, value in CONFIG.items() if not key.startswith("_") and isinstance(value, str)]


def isolated_config(where: Path) -> Path:
    """A cookiecutter user config whose replay and clone directories are under `where`, not in ~."""
    where.mkdir(parents=True, exist_ok=True)
    config = where / "config.yaml"
    config.write_text(json.dumps({"replay_dir": str(where / "replay"), "cookiecutters_dir": str(where / "clones")}))
    return config


def run_cookiecutter(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real `cookiecutter` command on this template, run in `cwd` with a user config of its own (in a
    temporary directory, removed after), prompting unless `--no-input` is among `args`."""
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, COOKIECUTTER_CONFIG=str(isolated_config(Path(home))))
        return subprocess.run(
            [sys.executable, "-m", "cookiecutter", str(ROOT), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
            env=env,
            cwd=cwd,
        )


def render_cli(output_dir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Render through the real command line, as a user does (`lakebase`/`create_database` in the tests' words
    become the template's one `lakebase` answer)."""
    lakebase = [arg for arg in args if arg.split("=", 1)[0] in ("lakebase", "create_database")]
    if lakebase:
        answer = answers_for(dict(arg.split("=", 1) for arg in lakebase))["lakebase"]
        args = (*(arg for arg in args if arg not in lakebase), f"lakebase={answer}")
    for arg in args:
        key = arg.split("=", 1)[0]
        assert key in CONFIG, f"{key} is not a question of cookiecutter.json"
    return run_cookiecutter(cwd or Path.cwd(), "--no-input", "-o", str(output_dir), *args)

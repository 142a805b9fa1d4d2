"""The docs describe what is rendered: the file tree in docs/layout.md equals a rendered project, and no
README or rendered test names a file the project does not have."""

import json
import re
from pathlib import Path

import pytest

from tests.support import feature_walkthrough
from tests.support.template import ROOT, render

# Between them, every conditional file is absent once and present once (static/ page, asyncpg's test).
COMBOS = [{"framework": "streamlit"}, {"framework": "fastapi", "driver": "asyncpg"}]
IDS = ["-".join(combo.values()) for combo in COMBOS]


def documented_tree(readme: str, answers: dict[str, str]) -> set[str]:
    """Files listed in the tree block of docs/layout.md, as paths relative to the project.

    Grammar: one entry per line, indented two spaces per level under `<project_slug>/`; an entry is a name (a
    directory ends in `/`) or several names joined by ", ", then an optional note. A note that starts with
    `(a, b)` limits the entry to projects where one of the answers is `a` or `b`.
    """
    section = readme[readme.index("# What a rendered project holds") :]
    block = section[section.index("```\n") + 4 :]
    lines = block[: block.index("```")].splitlines()
    assert lines[0] == "<project_slug>/", lines[0]
    files, parents = set(), []
    for line in lines[1:]:
        level = (len(line) - len(line.lstrip(" "))) // 2
        names, note = re.fullmatch(r"([^\s,]+(?:, [^\s,]+)*)(?:\s+(.*))?", line.strip()).groups()
        del parents[level - 1 :]
        only = re.match(r"\(([a-z0-9, ]+)\)", note or "")
        if only and not {value.strip() for value in only[1].split(",")} & set(answers.values()):
            continue
        for name in names.split(", "):
            if name.endswith("/"):
                parents.append(name.rstrip("/"))
            else:
                files.add("/".join([*parents, name]))
    return files


def rendered_files(root: Path) -> set[str]:
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.parametrize("answers", COMBOS, ids=IDS)
def test_readme_file_tree_is_what_renders(tmp_path: Path, answers: dict[str, str]) -> None:
    root = render(tmp_path, **answers)
    rendered = json.loads((root / ".cookiecutter.json").read_text())["cookiecutter"]
    documented = documented_tree((ROOT / "docs" / "layout.md").read_text(), {k: str(v) for k, v in rendered.items()})
    actual = rendered_files(root)
    assert documented == actual, (
        f"docs/layout.md's tree is out of date for {answers}: rendered but not documented "
        f"{sorted(actual - documented)}; documented but not rendered {sorted(documented - actual)}"
    )


# A backticked relative path, e.g. `local/run.py` or `scripts/local` (no spaces, no placeholders, no URL).
# The migration the rendered README's "Change the schema" walkthrough creates in its first step.
NEW_MIGRATION = "migrations/versions/0006_add_priority.py"
PATH_IN_BACKTICKS = re.compile(r"`(\.?[a-z_][\w.-]*/[\w./-]*|[\w.-]+\.(?:py|sh|yml|yaml|txt|toml|json|html))`")


@pytest.mark.parametrize("answers", COMBOS, ids=IDS)
def test_rendered_docs_name_only_files_the_project_has(tmp_path: Path, answers: dict[str, str]) -> None:
    root = render(tmp_path, **answers)
    names = {path.name for path in root.rglob("*")}
    made_at_run_time = [d for d in (root / ".gitignore").read_text().split() if d.endswith("/")]  # .venv/ ...
    walkthrough = feature_walkthrough.created_files(root)  # what docs/add-a-feature.md has you create
    you_create = {*walkthrough, *(f"{Path(path).parent}/" for path in walkthrough), NEW_MIGRATION}
    you_create |= {path.rsplit("/", 1)[-1] for path in you_create if not path.endswith("/")}
    you_create |= {path.removeprefix("app/") for path in you_create}
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "tests").glob("*.py"))]:
        for mentioned in PATH_IN_BACKTICKS.findall(doc.read_text()):
            if mentioned.startswith(("http", "projects/", *made_at_run_time)):
                continue  # URLs, Lakebase resource names, what the project makes when it runs
            if mentioned in you_create:
                continue  # files a walkthrough has you create (tests/test_migrations.py, test_add_feature.py follow them)
            # relative to the project, or to app/ (the import root: `database/pooled.py`), or a bare file name
            exists = any((base / mentioned).exists() for base in (root, root / "app")) or mentioned in names
            assert exists, f"{doc.relative_to(root)} names `{mentioned}`, which a {answers} project does not have"

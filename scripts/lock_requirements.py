"""Lock every rendered app's requirements, with hashes, and the tests' one environment in step with them.

    python scripts/lock_requirements.py        # needs uv (pip install uv) and PyPI

The Apps runtime runs `pip install -r requirements.txt` (Apps docs: "Manage dependencies for a Databricks app"); with
`--hash` on every line pip checks every download against the lock (hash-checking mode), so the lock must name every
package, the transitive ones included. What is locked:

1. tests/app-requirements.in (every framework and driver the template offers, and the tests' tools) is resolved into
   tests/app-requirements.txt: the versions the template's tests run.
2. For each framework x driver, the rendered app/requirements.in and requirements-dev.in are resolved with (1) as
   constraints into {{cookiecutter.__project_dir}}/_variants/locks/<framework>-<driver>[-dev].txt, which
   hooks/post_gen_project.py renders as app/requirements.txt and requirements-dev.txt: every rendered lock holds
   the versions the tests ran, and names what a rendered project runs to lock again (its header).

Resolution is universal for Python 3.11 and newer (`uv pip compile --universal`): the same lock installs on the
Apps runtime (Linux x86_64, Python 3.11) and on a developer's macOS or Windows for ./run-local.sh.
tests/test_locks.py checks that the locks are complete and current.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jinja2

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "{{cookiecutter.__project_dir}}"
LOCKS = PROJECT / "_variants" / "locks"
TESTS_IN = ROOT / "tests" / "app-requirements.in"
TESTS_LOCK = ROOT / "tests" / "app-requirements.txt"
# What a rendered project runs to lock again (the header of its locks; Dependabot reads it to update them).
COMPILE = "uv pip compile --universal --python-version 3.11 --generate-hashes"
INPUTS = {"app/requirements.in": "app/requirements.txt", "requirements-dev.in": "requirements-dev.txt"}


def combinations() -> list[tuple[str, str]]:
    sys.path.insert(0, str(ROOT))
    from tests.support.template import valid_combinations

    return sorted({(combo["framework"], combo["driver"]) for combo in valid_combinations()})


def render_input(name: str, framework: str, driver: str) -> str:
    """The rendered text of a requirements input (they use only the framework and the driver)."""
    template = jinja2.Environment(keep_trailing_newline=True).from_string((PROJECT / name).read_text())
    return template.render(cookiecutter={"framework": framework, "driver": driver})


def lock_name(framework: str, driver: str, output: str) -> str:
    return f"{framework}-{driver}{'-dev' if output == 'requirements-dev.txt' else ''}.txt"


def compile_(uv: str, source: Path, output: Path, *extra: str, command: str | None = None) -> None:
    args = [uv, "pip", "compile", *COMPILE.split()[3:], "--quiet", "--output-file", str(output), str(source), *extra]
    if command:
        args += ["--custom-compile-command", command]
    subprocess.run(args, check=True, cwd=source.parent)


def main() -> None:
    uv = shutil.which("uv") or sys.exit("uv is needed: pip install uv")
    compile_(uv, TESTS_IN, TESTS_LOCK, command=f"python scripts/lock_requirements.py  # {COMPILE}")
    LOCKS.mkdir(parents=True, exist_ok=True)
    for old in LOCKS.glob("*.txt"):
        old.unlink()
    for framework, driver in combinations():
        with tempfile.TemporaryDirectory() as tmp:
            project = Path(tmp)
            (project / "app").mkdir()
            for source in INPUTS:
                (project / source).write_text(render_input(source, framework, driver))
            for source, output in INPUTS.items():
                where = (project / source).parent
                command = f"{COMPILE} --output-file {Path(output).name} {Path(source).name}"
                compile_(uv, project / source, where / Path(output).name, "-c", str(TESTS_LOCK), command=command)
                locked = (where / Path(output).name).read_text().splitlines(keepends=True)
                kept = "".join(line for line in locked if not line.strip().startswith("#   -c "))  # the tests' lock
                (LOCKS / lock_name(framework, driver, output)).write_text(kept)
        print(f"locked {framework} + {driver}")


if __name__ == "__main__":
    main()

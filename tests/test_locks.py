"""The rendered locks (app/requirements.txt, requirements-dev.txt) are complete and current.

With a `--hash` on every line pip checks every download (hash-checking mode), so a lock must name every package
the app needs, the transitive ones included: the Apps runtime runs `pip install -r requirements.txt`. Checked here:
each lock was made from the requirements.in its project renders now (every pin in it, at that version); it holds
exactly the packages those requirements need on the Apps runtime (Linux, Python 3.11: the dependency metadata of
the tests' environment, installed from tests/app-requirements.txt with --require-hashes, says which); and every
entry is the tests' own entry, hashes included, so the tests ran what deploys. scripts/lock_requirements.py makes
them.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.support.appenv import app_python
from tests.support.template import ROOT, render, valid_combinations
from tests.support.waiting import HANG_GUARD

PAIRS = sorted({(combo["framework"], combo["driver"]) for combo in valid_combinations()})
TESTS_LOCK = ROOT / "tests" / "app-requirements.txt"
HEADER = "#    uv pip compile --universal --python-version 3.11 --generate-hashes --output-file"

# Run in the tests' environment: the packages `roots` need there (their dependencies' own metadata, markers
# evaluated for this interpreter, which is the Apps runtime's: Linux, CPython 3.11), as lower-case names.
CLOSURE = """
import json, sys
from importlib.metadata import distribution
from packaging.requirements import Requirement
from packaging.version import Version
from packaging.utils import canonicalize_name
todo, seen = [(Requirement(line), "") for line in json.loads(sys.argv[1])], {}
while todo:
    requirement, extra = todo.pop()
    if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
        continue
    name = canonicalize_name(requirement.name)
    extras = set(requirement.extras) - seen.get(name, set())
    if name in seen and not extras:
        continue
    seen[name] = seen.get(name, set()) | set(requirement.extras)
    for line in distribution(name).requires or []:
        todo.extend((Requirement(line), e) for e in [""] + sorted(seen[name]))
print(json.dumps(sorted(seen)))
"""


def entries(lock: str) -> dict[str, tuple[str | None, frozenset[str]]]:
    """Each locked `name==version` (canonical name) -> (its marker or None, its hashes)."""
    found = {}
    for block in re.split(r"\n(?=[a-z0-9])", lock.split("\n", 2)[2]):
        requirement = Requirement(block.split(" \\", 1)[0])
        version = next(iter(requirement.specifier)).version
        hashes = frozenset(re.findall(r"--hash=(sha256:[0-9a-f]{64})", block))
        marker = str(requirement.marker) if requirement.marker else None
        found[f"{requirement.name.lower().replace('_', '-')}=={version}"] = (marker, hashes)
    return found


def on_the_runtime(lock: str) -> set[str]:
    """The packages of a lock that pip installs on Linux with Python 3.11 (this interpreter)."""
    return {
        pin.split("==")[0]
        for pin, (marker, _) in entries(lock).items()
        if marker is None or Requirement(f"x ; {marker}").marker.evaluate()
    }


def closure(requirements: list[str]) -> set[str]:
    result = subprocess.run(
        [str(app_python()), "-c", CLOSURE, json.dumps(requirements)],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def requirement_lines(path: Path) -> list[str]:
    lines = (ln.split(" #")[0].strip() for ln in path.read_text().splitlines())
    return [ln for ln in lines if ln and not ln.startswith(("#", "-r "))]


@pytest.mark.parametrize(("framework", "driver"), PAIRS, ids=["-".join(p) for p in PAIRS])
def test_the_rendered_locks_are_complete_and_current(tmp_path: Path, framework: str, driver: str) -> None:
    project = render(tmp_path, framework=framework, driver=driver)
    tested = entries(TESTS_LOCK.read_text())
    for source, lock_path in (
        ("app/requirements.in", "app/requirements.txt"),
        ("requirements-dev.in", "requirements-dev.txt"),
    ):
        lock = (project / lock_path).read_text()
        assert lock.splitlines()[1].startswith(HEADER), f"{lock_path}: not made by the documented command"
        locked = entries(lock)
        wanted = requirement_lines(project / source)
        if source == "requirements-dev.in":
            wanted += requirement_lines(project / "app" / "requirements.in")
        for line in wanted:  # current: every pin of the input, at that version
            requirement = Requirement(line)
            name = requirement.name.lower()
            versions = [pin.split("==")[1] for pin in locked if pin.split("==")[0] == name]
            assert versions, f"{lock_path} lacks {line}: lock again (scripts/lock_requirements.py)"
            assert all(requirement.specifier.contains(v) for v in versions), (line, versions)
        for pin, (_, hashes) in locked.items():  # in step with what the tests install, hashes included
            assert hashes, f"{lock_path}: {pin} has no hash"
            assert pin in tested and tested[pin][1] == hashes, f"{lock_path}: {pin} is not tests/app-requirements.txt's"
        # complete: exactly what the requirements need on the Apps runtime (one missing fails pip's hash mode)
        assert on_the_runtime(lock) == closure(wanted), f"{lock_path} is not what {source} needs: lock again"
    h11 = [pin for pin in tested if pin.startswith("h11==")]
    assert h11 and all(Version(pin.split("==")[1]) >= Version("0.16") for pin in h11), h11  # CVE-2025-43859

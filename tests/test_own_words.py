"""A rendered project speaks of itself only: no file of it, for any framework x driver (and each Lakebase
choice), mentions the template's issues, its benchmark, its own tests or the history of how the template got here.
Each such comment says why in the project's own terms instead."""

import re
from pathlib import Path

import pytest

from tests.support.template import combo_id, render, valid_combinations

# One render per framework x driver pair, and one per Lakebase choice (their README and bundle text differ).
COMBOS = list({(c["framework"], c["driver"]): c for c in valid_combinations()}.values())
COMBOS += [
    {"lakebase": "existing-autoscaling"},
    {"lakebase": "existing-provisioned"},
    {"max_instances": "2"},
]
HISTORY = re.compile(
    r"(?<!cli )\bissue\s*#?\d+|\bscenario\s*\d+|\bbench/|RESULTS\.md|\bbench scenario"
    r"|\bearlier template|\bearlier version of this (?:template|file)\b|\bprevious template|today's main|\bas of commit|\bbefore issue"
    r"|\bthe template's\b|\bthis template\b|\btell us\b|\bour workspace\b|\bonce (?:took|grew)\b",
    re.IGNORECASE,
)


def history_in(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for match in HISTORY.finditer(line):
                found.append(f"{path.relative_to(root)}:{number}: {match[0]!r} in {line.strip()[:140]}")
    return found


def test_the_pattern_finds_what_it_is_for() -> None:
    for text in ("bench/RESULTS.md, issue 17", "found by bench scenario 3", "the earlier template's bootstrap"):
        assert HISTORY.search(text), text
    for text in (
        "the issue is the token",
        "Scenario: a user signs in",
        "from the lakebase-app template",
        "cli issue 4309",
    ):
        assert not HISTORY.search(text), text


@pytest.mark.parametrize(
    "answers", COMBOS, ids=lambda c: combo_id(c) if "framework" in c else "-".join(map(str, c.values()))
)
def test_rendered_project_speaks_of_itself_only(tmp_path: Path, answers: dict) -> None:
    found = history_in(render(tmp_path, **answers))
    assert not found, "the rendered project speaks of the template's history:\n" + "\n".join(found)

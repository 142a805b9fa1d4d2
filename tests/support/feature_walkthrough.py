"""Follow the rendered project's docs/add-a-feature.md literally, in a project.

Its grammar: a paragraph that says "Create `<path>`" is followed by a code block, the whole file; a line
"In `<path>`, after the line `<anchor>`, add the line `<line>`." inserts that line after the one whose text
(indentation aside) is the anchor, with the anchor's indentation. Nothing else in the section acts.
"""

import re
from pathlib import Path

PAGE = "docs/add-a-feature.md"
CREATE = re.compile(r"Create `([^`]+)`[^\n]*(?:\n(?!```)[^\n]+)*\n\n```\w*\n(.*?)^```", re.S | re.M)
INSERT = re.compile(r"In `([^`]+)`, after the line `([^`]+)`, add the line\s+`([^`]+)`\.")


def created_files(project: Path) -> list[str]:
    """The paths the page has you create, relative to the project."""
    return [path for path, _ in CREATE.findall((project / PAGE).read_text())]


def follow(project: Path) -> list[str]:
    """Do what the section says in ``project``; returns the paths it created or changed, in order."""
    steps = (project / PAGE).read_text()
    touched = []
    for path, body in CREATE.findall(steps):
        target = project / path
        assert not target.exists(), f"the walkthrough creates {path}, which the project already has"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
        touched.append(path)
    for path, anchor, line in INSERT.findall(steps):
        target = project / path
        lines = target.read_text().splitlines(keepends=True)
        at = [i for i, text in enumerate(lines) if text.strip() == anchor]
        assert len(at) == 1, f"{path}: the line {anchor!r} is there {len(at)} times, not once"
        indent = lines[at[0]][: len(lines[at[0]]) - len(lines[at[0]].lstrip())]
        lines.insert(at[0] + 1, f"{indent}{line}\n")
        target.write_text("".join(lines))
        touched.append(path)
    assert touched, f"no step found in {PAGE}"
    return touched

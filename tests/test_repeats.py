"""No block of six or more lines is written twice in the template, its hooks, its tests or bench/
(tests/support/repeats.py; the `duplicates` tool that reviews changes here is not on CI's machine)."""

import textwrap
from pathlib import Path

from tests.support.repeats import MIN_LINES, repeats, sources
from tests.support.template import ROOT

CHECKED = [ROOT / "{{cookiecutter.__project_dir}}", ROOT / "hooks", ROOT / "tests", ROOT / "bench"]

BLOCK = """
def load(path):
    text = path.read_text()
    rows = [line.split(",") for line in text.splitlines()]
    header = rows[0]
    body = [dict(zip(header, row)) for row in rows[1:]]
    total = sum(float(row["amount"]) for row in body)
    return body, total
"""


def write(where: Path, name: str, text: str) -> Path:
    where.joinpath(name).write_text(textwrap.dedent(text))
    return where / name


def test_no_block_of_six_lines_is_written_twice() -> None:
    found = repeats(sources(CHECKED))
    assert not found, "the same block stands twice; make one piece serve both:\n" + "\n".join(
        f"{a} ~ {b}" for a, b in found
    )


def test_a_copy_is_found_re_indented_re_commented_and_with_other_names(tmp_path: Path) -> None:
    write(tmp_path, "a.py", BLOCK)
    copy = BLOCK.replace("    ", "        ").replace("header = rows[0]", "header = rows[0]  # the first row names")
    copy = copy.replace("total", "amount_sum").replace("def load(path)", "class Ledger:\n    def read(self, path)")
    write(tmp_path, "b.py", copy)
    [(a, b)] = repeats([tmp_path / "a.py", tmp_path / "b.py"])
    assert (a.path.name, a.first, a.last) == ("a.py", 3, 8), (a, b)  # from `text = ...`: the def lines differ in form
    assert (b.path.name, b.first, b.last) == ("b.py", 4, 9), (a, b)


def test_five_shared_lines_or_two_things_of_one_form_are_not_a_copy(tmp_path: Path) -> None:
    lines = BLOCK.strip().splitlines()
    write(tmp_path, "a.py", "\n".join(lines[: MIN_LINES - 1]) + "\n")
    write(tmp_path, "b.py", BLOCK + "\nprint(load)\n")
    first = "@dataclass\nclass Point:\n" + "".join(f"    {n}: int\n" for n in "abcdefg")
    second = "@dataclass\nclass Size:\n" + "".join(f"    {n}: float\n" for n in "hijklmn")
    write(tmp_path, "c.py", first + "\n\n" + second)
    assert repeats([tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"]) == []

"""Time render + lint of the whole matrix, as a user's machine would do it.

Usage: .venv/bin/python -m bench.render_matrix [--workers N]
Renders all combinations of cookiecutter.json (refused ones included, each must be refused),
then runs ruff check, ruff format --check and yamllint on every rendered project. Prints numbers.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.template import all_combinations, combo_id, refused, render_cli


def render_and_lint(out: Path, combo: dict) -> tuple[str, float, float]:
    start = time.perf_counter()
    args = [f"{k}={'yes' if v is True else 'no' if v is False else v}" for k, v in combo.items()]
    result = render_cli(out, *args)
    rendered = time.perf_counter()
    if refused(combo):
        assert result.returncode != 0, f"{combo} should have been refused"
        return "refused", rendered - start, 0.0
    assert result.returncode == 0, result.stderr
    (project,) = out.iterdir()
    for command in (
        [sys.executable, "-m", "ruff", "check", "--no-cache", "-q", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "-q", "."],
        [sys.executable, "-m", "yamllint", "-s", "databricks.yml", "app/app.yaml"],
    ):
        subprocess.run(command, cwd=project, check=True, capture_output=True)
    return "rendered", rendered - start, time.perf_counter() - rendered


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    workers = parser.parse_args().workers
    combos = all_combinations()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        start = time.perf_counter()
        results = list(pool.map(lambda c: render_and_lint(Path(tmp) / combo_id(c), c), combos))
        wall = time.perf_counter() - start
    rendered = [r for r in results if r[0] == "rendered"]
    print(f"combinations: {len(combos)}  rendered: {len(rendered)}  refused: {len(combos) - len(rendered)}")
    print(f"workers: {workers}  wall time render+lint: {wall:.1f} s  (target < 60 s)")
    print(
        f"mean render: {sum(r[1] for r in results) / len(results):.2f} s  mean lint: {sum(r[2] for r in rendered) / len(rendered):.2f} s"
    )
    print("target held" if wall < 60 else "target MISSED")


if __name__ == "__main__":
    main()

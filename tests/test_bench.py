"""CI runs the load benchmark's short mode: it asserts the invariants, never the speed ratios."""

import subprocess
import sys

import pytest

from bench.scenarios import SHORT
from tests.support.template import ROOT


@pytest.mark.e2e
def test_benchmark_short_mode_holds_its_invariants() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.load", "--short"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "invariants failed: 0" in result.stdout
    for scenario in SHORT:
        assert f"== scenario {scenario}" in result.stdout

"""The scenarios of ``python -m bench.load``, by what they measure: each module's ``run(bench)`` prints its table."""

from __future__ import annotations

import importlib
from collections.abc import Callable

# In the order a full run takes them; SHORT is what CI runs (tests/test_bench.py): the invariants.
NAMES = (
    "pool_vs_connect_per_request",
    "bounded_pool",
    "credential_rotation",
    "simultaneous_start",
    "restart",
    "every_pair",
    "scale_out",
    "rendered_vs_bare_pool",
    "flask_server",
    "startup",
)
SHORT = ("bounded_pool", "credential_rotation", "simultaneous_start", "restart", "scale_out")


def describe(name: str) -> str:
    return (importlib.import_module(f"bench.scenarios.{name}").__doc__ or "").strip().split("\n")[0]


def runner(name: str) -> Callable:
    if name not in NAMES:
        raise SystemExit(f"no scenario {name!r}: choose from {', '.join(NAMES)}")
    return importlib.import_module(f"bench.scenarios.{name}").run

"""Environment hygiene for tests that run the real databricks-sdk."""

from __future__ import annotations

import os

import pytest


def clean_databricks_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every DATABRICKS_* / PG* variable; point the SDK at a config file that does not exist."""
    for k in list(os.environ):
        if k.startswith(("DATABRICKS_", "PG")):
            monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv(
        "DATABRICKS_CONFIG_FILE",
        os.path.join(os.sep, "nonexistent", "lakebase-test", ".databrickscfg"),
    )
    for k in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(k, "127.0.0.1,localhost")

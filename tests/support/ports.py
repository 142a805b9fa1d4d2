"""free_port, for bench/ scripts that import it from here; it lives in tests/harness/ports.py (the harness needs it
and imports nothing from tests/support)."""

from tests.harness.ports import free_port

__all__ = ["free_port"]

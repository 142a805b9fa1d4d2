"""Waiting on what a started app reports (it serves, it exited), not on a fixed patience.

A busy 2-core machine makes a start slow, never wrong: a wait ends when the app answers, and fails at once when
its process exits. HANG_GUARD only ends a process that neither serves nor exits (a hang): it is no estimate of how
long a start takes.
"""

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

# seconds; far beyond any slow start, so that only a hang reaches it (LAKEBASE_TEST_HANG_GUARD to change it)
HANG_GUARD = float(os.environ.get("LAKEBASE_TEST_HANG_GUARD", "600"))


def answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=HANG_GUARD) as response:
            return response.status == 200
    except urllib.error.HTTPError:
        return False
    except OSError:  # nothing listens yet, or the connection was reset while it starts
        return False


def until_serving(url: str, process: subprocess.Popen, log: Callable[[], str], poll: float = 0.2) -> float:
    """Poll `url` until it answers 200 while `process` runs; return the seconds it took.

    Fails with the process's log as soon as the process exits, or if it neither serves nor exits within HANG_GUARD.
    """
    started = time.monotonic()
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the app exited with {process.returncode} before serving {url}:\n{log()[-6000:]}")
        if answers_200(url):
            return time.monotonic() - started
        if time.monotonic() - started > HANG_GUARD:
            raise AssertionError(
                f"{url}: the app neither served nor exited in {HANG_GUARD:.0f} s (a hang):\n{log()[-6000:]}"
            )
        time.sleep(poll)

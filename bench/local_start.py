"""How long `./run-local.sh` takes from the command to the first page, cold (creating .venv) and warm.

    .venv/bin/python -m bench.local_start [--frameworks fastapi streamlit]

Renders a project per framework into a temporary directory, runs its `./run-local.sh` exactly as a user
does (cold: no .venv, pip downloads everything; warm: the second start), polls http://127.0.0.1:<port>/
until it answers 200, prints the seconds, stops it with SIGINT (Ctrl-C) and checks PostgreSQL stopped.
Only 127.0.0.1 is contacted, besides the package index pip uses for the cold start.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.ports import free_port
from tests.support.template import render
from tests.support.waiting import until_serving


def time_to_first_page(project: Path, log: Path) -> float:
    port = free_port()
    with log.open("a") as out:
        run = subprocess.Popen(
            ["bash", "run-local.sh", "--port", str(port)],
            cwd=project,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return until_serving(f"http://127.0.0.1:{port}/", run, lambda: log.read_text(errors="replace"))
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGINT)
            try:
                run.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frameworks", nargs="+", default=["fastapi", "streamlit"])
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="lakebase-local-start-"))
    base.chmod(0o755)  # as root, PostgreSQL runs as 'nobody', who must reach the project's .local-postgres/
    try:
        for framework in args.frameworks:
            driver = "asyncpg" if framework == "fastapi" else "psycopg3"
            project = render(base, framework=framework, driver=driver, project_name=f"Start {framework}")
            log = base / f"{framework}.log"
            cold = time_to_first_page(project, log)
            warm = time_to_first_page(project, log)
            left = list(project.rglob("postmaster.pid")) + list(
                Path(tempfile.gettempdir()).glob(f"{project.name}-*/data/postmaster.pid")
            )
            print(
                f"{framework:10s} cold (creates .venv) {cold:6.1f} s   warm {warm:5.1f} s   postgres left running: {bool(left)}"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

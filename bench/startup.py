"""Start-up time of rendered apps against an up-to-date database: the app.yaml command to its first 200 (/healthz;
Streamlit: /_stcore/health), warm (the app environment exists), per framework.

Usage (from the repository root; `python -m bench.load --scenarios startup` runs it with the rest):
    .venv/bin/python -m bench.startup [--combos fastapi:asyncpg,flask:psycopg3] [--runs 5] [--template DIR]

--template renders from another copy of this repository (for example ``mkdir /tmp/prev && git archive
7c86458 | tar -x -C /tmp/prev``, the last template without migrations) to compare start-up before and after.

Each app runs its app.yaml command with only the Apps runtime's environment (tests.apprunner), against the
harness PostgreSQL (TLS + scram) and the workspace stub. The first start brings the database up to date and
is not counted; the next ``--runs`` starts are, and the median is printed. Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from cookiecutter.main import cookiecutter

from tests.harness.postgres import PostgresServer
from tests.harness.workspace_stub import WorkspaceStub
from tests.support import apprunner
from tests.support.ports import free_port
from tests.support.template import render

# Wall seconds of open_database(), and CPU seconds of the whole process until it returned (interpreter, imports,
# pool, credential, schema/migrations): CPU time hardly depends on how busy the machine is, wall time does.
REPORT = (
    "usage = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print(time.perf_counter() - started, usage.ru_utime + usage.ru_stime, flush=True)"
)
OPEN = {
    False: "started = time.perf_counter()\ndb = open_database()\n{report}\ndb.close()",
    True: "import asyncio\nasync def main():\n    started = time.perf_counter()\n    db = await open_database()\n"
    "{report}\n    await db.close()\nasyncio.run(main())",
}
TIMED = "import resource, time\nfrom database import open_database\n{code}"


def open_seconds(project: Path, env: dict[str, str], is_async: bool) -> tuple[float, float]:
    """``open_database()`` in a fresh process: (its wall seconds, the process's CPU seconds until it returned)."""
    done = subprocess.run(
        [
            str(apprunner.app_python()),
            "-c",
            TIMED.format(code=OPEN[is_async].format(report=textwrap.indent(REPORT, "    " if is_async else ""))),
        ],
        cwd=project / "app",
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    wall, cpu = done.stdout.split()[-2:]
    return float(wall), float(cpu)


SDK_IMPORT = "import time\nstarted = time.process_time()\nimport databricks.sdk\nprint(time.process_time() - started)"


def sdk_import_seconds(project: Path) -> float:
    """CPU seconds of ``import databricks.sdk`` alone in the app's python (its __init__ imports every service
    module): the part of every start that is the SDK's, not the app's."""
    done = subprocess.run(
        [str(apprunner.app_python()), "-c", SDK_IMPORT],
        cwd=project / "app",
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(done.stdout.split()[-1])


HEALTH = {"streamlit": "/_stcore/health"}  # Streamlit has no /healthz: its own health path is its first answer
EVERY_FRAMEWORK = "streamlit:psycopg3,dash:psycopg3,gradio:psycopg3,flask:psycopg3,fastapi:asyncpg"
COLUMNS = ("app", "first start s", "median warm start s", "warm starts s", "open_database() wall s", "CPU s until open",
           "of which import databricks.sdk")  # fmt: skip


def measure(pg: PostgresServer, stub: WorkspaceStub, combos: str, runs: int, where: Path, template: Path | None):
    """Per framework:driver, one row: seconds from the app.yaml command to its first 200 (warm: the app
    environment exists; the first start follows the deployer's migration and is not counted in the median)."""
    apprunner.app_python()  # build the app environment before timing anything
    for combo in combos.split(","):
        framework, driver = combo.split(":")
        out = where / combo.replace(":", "-")
        if template:
            answers = {"framework": framework, "driver": driver}
            project = Path(cookiecutter(str(template), no_input=True, output_dir=str(out), extra_context=answers))
        else:
            project = render(out, framework=framework, driver=driver)
        client = stub.new_client()
        dbname = pg.create_database_for(client.role)
        times = []
        for run in range(runs + 1):
            env = apprunner.runtime_env(project, stub, client, free_port(), where / "home", dbname)
            app = apprunner.start(project, env, where / f"{framework}-{driver}-{run}.log", migrate_first=run == 0)
            try:
                apprunner.wait_ready(app, HEALTH.get(framework, "/healthz"), poll=0.02)
                times.append(app.ready_after)
            finally:
                apprunner.stop(app)
        later = times[1:]
        opens = [open_seconds(project, env, driver == "asyncpg") for _ in range(runs)]
        yield {
            "app": f"{framework}+{driver}",
            "framework": framework,
            "first start s": f"{times[0]:.2f}",
            "median warm start s": f"{statistics.median(later):.2f}",
            "median": statistics.median(later),
            "warm starts s": ", ".join(f"{t:.2f}" for t in later),
            "open_database() wall s": f"{statistics.median(w for w, _ in opens):.3f}",
            "CPU s until open": f"{statistics.median(c for _, c in opens):.3f}",
            "of which import databricks.sdk": f"{statistics.median(sdk_import_seconds(project) for _ in range(3)):.3f}",
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--combos", default=EVERY_FRAMEWORK)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--template", type=Path, help="render from this template checkout instead of this one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, PostgresServer(tls=True) as pg, WorkspaceStub(pg) as stub:
        print("| " + " | ".join(COLUMNS) + " |\n|" + " --- |" * len(COLUMNS))
        for row in measure(pg, stub, args.combos, args.runs, Path(tmp), args.template):
            print("| " + " | ".join(row[c] for c in COLUMNS) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Start-up time of rendered apps against an up-to-date database: process start to the first 200 on /healthz.

Usage:
    .venv/bin/python bench/startup.py [--combos fastapi:asyncpg,flask:psycopg3] [--runs 5] [--template DIR]

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cookiecutter.main import cookiecutter  # noqa: E402

from tests.harness.postgres import PostgresServer  # noqa: E402
from tests.harness.workspace_stub import WorkspaceStub  # noqa: E402
from tests.support import apprunner  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.template import render  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--combos", default="fastapi:asyncpg,flask:psycopg3")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--template", type=Path, help="render from this template checkout instead of this one")
    args = parser.parse_args()
    apprunner.app_python()  # build the app environment before timing anything
    with tempfile.TemporaryDirectory() as tmp, PostgresServer(tls=True) as pg, WorkspaceStub(pg) as stub:
        print(
            "| app | first start s (deployer migrated just before) | median of later starts s | all later starts s "
            "| open_database() wall s | process CPU s until open |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for combo in args.combos.split(","):
            framework, driver = combo.split(":")
            out = Path(tmp) / combo.replace(":", "-")
            if args.template:
                answers = {"framework": framework, "driver": driver}
                project = Path(
                    cookiecutter(str(args.template), no_input=True, output_dir=str(out), extra_context=answers)
                )
            else:
                project = render(out, framework=framework, driver=driver)
            client = stub.new_client()
            dbname = pg.create_database_for(client.role)
            times = []
            for run in range(args.runs + 1):
                port = free_port()
                env = apprunner.runtime_env(project, stub, client, port, Path(tmp) / "home", dbname)
                app = apprunner.start(project, env, Path(tmp) / f"{framework}-{driver}-{run}.log")
                try:
                    apprunner.wait_ready(app, "/healthz", poll=0.02)  # seconds from the start to the first 200
                    times.append(app.ready_after)
                finally:
                    apprunner.stop(app)
            later = times[1:]
            opens = [open_seconds(project, env, driver == "asyncpg") for _ in range(args.runs)]
            print(
                f"| {framework}+{driver} | {times[0]:.2f} | {statistics.median(later):.2f} | "
                f"{', '.join(f'{t:.2f}' for t in later)} | {statistics.median(w for w, _ in opens):.3f} | "
                f"{statistics.median(c for _, c in opens):.3f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

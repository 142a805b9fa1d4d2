"""Benchmark rendered apps under load against a real PostgreSQL (TLS + scram) and a workspace stub.

Usage, from the repository root:
    .venv/bin/python -m bench.load                      # every table (bench/scenarios/), a few minutes
    .venv/bin/python -m bench.load --write-results      # ... and bench/RESULTS.md rewritten with them
    .venv/bin/python -m bench.load --short              # CI: the invariants (tests/test_bench.py)
    .venv/bin/python -m bench.load --scenarios rendered_vs_bare_pool,startup --delay-ms 0,1 --seconds 3
    .venv/bin/python -m bench.load --list

Prints one markdown table per scenario and whether each target / invariant held. Not a test: in --short
mode the exit status is non-zero only when an INVARIANT fails (bounded connections, zero failures
across credential rotation and a restart, three instances bootstrapping), never for a speed ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import scenarios
from bench.core import ROOT, Bench
from bench.observe import machine
from bench.report import write_results


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="CI-sized: " + ", ".join(scenarios.SHORT))
    parser.add_argument("--scenarios", default=None, help="comma-separated names (--list); default: all")
    parser.add_argument("--list", action="store_true", help="print the scenarios and what each measures")
    parser.add_argument("--combos", default=None, help="framework:driver,... (default fastapi:asyncpg,flask:psycopg3)")
    parser.add_argument("--clients", type=int, default=None, help="default 32 (--short: 16)")
    parser.add_argument("--seconds", type=float, default=None, help="per load run; default 5 (--short: 3)")
    parser.add_argument("--rounds", type=int, default=2, help="rendered_vs_bare_pool: rounds per mode")
    parser.add_argument(
        "--delay-ms",
        default="0,1",
        help="rendered_vs_bare_pool: added latency each way, comma-separated (the harness proxy's delay line)",
    )
    parser.add_argument(
        "--compare-ref",
        default="a4a5eca",
        help="rendered_vs_bare_pool: also run the app rendered from this commit of this repository ('' : none)",
    )
    parser.add_argument("--start-runs", type=int, default=2, help="startup: warm starts per framework")
    parser.add_argument("--start-combos", default="streamlit:psycopg3,dash:psycopg3,gradio:psycopg3,"
                        "flask:psycopg3,fastapi:asyncpg", help="startup: one framework:driver per framework")  # fmt: skip
    parser.add_argument("--write-results", action="store_true", help="rewrite bench/RESULTS.md with this run")
    args = parser.parse_args(argv)
    args.clients = args.clients or (16 if args.short else 32)
    args.seconds = args.seconds or (3.0 if args.short else 5.0)
    args.delay_ms = [float(d) for d in args.delay_ms.split(",") if d.strip()]
    args.names = (
        args.scenarios.split(",") if args.scenarios else list(scenarios.SHORT if args.short else scenarios.NAMES)
    )
    return args


def commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":!bench/RESULTS.md"], capture_output=True, text=True).stdout.strip()  # fmt: skip
    return done.stdout.strip() + (" + uncommitted changes" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.list:
        for name in scenarios.NAMES:
            print(f"{name:30s} {scenarios.describe(name)}")
        return 0
    runners = {name: scenarios.runner(name) for name in args.names}

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="lakebase-bench-"))
    work.chmod(0o755)
    bench = Bench(args, work)
    print(machine(), flush=True)
    print(
        f"\nargs: short={args.short} combos={args.combos} clients={args.clients} seconds={args.seconds} "
        f"scenarios={','.join(args.names)}",
        flush=True,
    )
    loads: list[float] = []
    try:
        bench.pg, bench.stub, bench.sampler = bench.new_server()
        print(f"PostgreSQL from {bench.pg.bin_source}, TLS {bench.pg.tls}, port {bench.pg.port}", flush=True)
        for name, run in runners.items():
            print(f"\n== scenario {name}", flush=True)
            bench.scenario = name
            run(bench)
            loads.append(os.getloadavg()[0])
    except KeyboardInterrupt:
        print("interrupted: stopping everything", file=sys.stderr)
        return 130
    finally:
        bench.close()
        if os.environ.get("BENCH_KEEP_WORK"):
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    print("\n## Summary\n")
    for scenario, what, held, invariant in bench.checks:
        kind = "INVARIANT" if invariant else "target"
        print(f"- {scenario}: [{kind}] {what}: {'held' if held else ('FAILED' if invariant else 'missed')}")
    failed = [c for c in bench.checks if c[3] and not c[2]]
    load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"
    print(f"\nload average (1 min) after each scenario: {load}")
    print(
        f"\nwall time: {elapsed:.0f} s; invariants failed: {len(failed)}; targets missed: "
        f"{sum(1 for c in bench.checks if not c[3] and not c[2])}"
    )
    if args.write_results:
        meta = {"commit": commit(), "load": load, "seconds": f"{elapsed:.0f}", "args": " ".join(sys.argv[1:])}
        print(f"rewrote {write_results(bench, meta)}")
    return 1 if (args.short and failed) else 0


if __name__ == "__main__":
    sys.exit(main())

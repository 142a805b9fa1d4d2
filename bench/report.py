"""What the bench prints: one markdown table per scenario, each target and invariant as it is checked, and
bench/RESULTS.md rewritten with the tables of the newest run."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from bench.loadgen import LoadResult
from tests.harness.workspace_stub import KINDS, WorkspaceStub


class Report:
    """The reporting half of bench.core.Bench."""

    scenario: str  # the one running: its tables and checks are filed under it
    tables: list[tuple[str, str]]  # (scenario, markdown)
    checks: list[tuple[str, str, bool, bool]]  # scenario, what, held, invariant

    def check(self, what: str, held: bool, invariant: bool) -> bool:
        """A target (printed) or an invariant (--short exits non-zero when one fails) of the running scenario."""
        self.checks.append((self.scenario, what, held, invariant))
        kind = "INVARIANT" if invariant else "target"
        print(f"  [{kind}] {what}: {'held' if held else 'FAILED' if invariant else 'missed'}", flush=True)
        return held

    def check_load(self, label: str, res: LoadResult, peak: int, bound: int, during: str) -> None:
        """The two invariants of a load run: no more server connections than the pools allow, no request failed."""
        self.check(f"{label} peak connections {peak} <= pool bound {bound}", peak <= bound, True)
        self.check(f"{label} zero failed requests {during} ({res.failed})", res.failed == 0, True)

    LOAD_COLUMNS = ("run", "clients", "s", "req/s", "p50 ms", "p99 ms", "failed", "peak conns", "bound", "cred calls")

    def table(self, title: str, rows: list[dict], note: str = "", cols: tuple[str, ...] = (*LOAD_COLUMNS, "drives")):
        lines = [f"### {title}", ""]
        if note:
            lines += [note, ""]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join(["---"] * len(cols)) + "|")
        for row in rows:
            lines.append("| " + " | ".join(str(row.get(c, "")) for c in cols) + " |")
        text = "\n".join(lines) + "\n"
        self.tables.append((self.scenario, text))
        print("\n" + text, flush=True)

    @staticmethod
    def row(label: str, res: LoadResult, peak: int | str, bound: int | str, creds: int | str, drives: str) -> dict:
        return {
            "run": label,
            "clients": res.clients,
            "s": f"{res.seconds:g}",
            "req/s": f"{res.rps:.0f}",
            "p50 ms": f"{res.pct(0.50):.1f}",
            "p99 ms": f"{res.pct(0.99):.1f}",
            "failed": res.failed
            if not res.errors
            else f"{res.failed} ({', '.join(f'{k}: {v}' for k, v in res.errors.most_common(3))})",
            "peak conns": peak,
            "bound": bound or "none",
            "cred calls": creds,
            "drives": drives,
        }

    @staticmethod
    def cred_calls(stub: WorkspaceStub, client_id: str | None, since: float = 0.0) -> int | str:
        if client_id is None:
            return "-"
        with stub._lock:
            return sum(1 for path, cid, t in stub.calls if path in KINDS and cid == client_id and t >= since)


RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = """# Benchmark results

The newest run of each scenario (older runs are in git history). How the numbers are made:
[docs/benchmark.md](../docs/benchmark.md). Every table, and this page rewritten with them:

```bash
.venv/bin/python -m bench.load --write-results     # defaults: 32 clients, 5 s runs, 2 rounds; prints its wall time
.venv/bin/python -m bench.load --list              # the scenarios; --scenarios a,b runs (and rewrites) only those
```

Targets (printed by the run, never asserted; the invariants are asserted in CI by `--short`):

- rendered vs a bare pool of its driver: reads >= 1.0x its req/s at 0 ms added latency and >= 0.95x at 1 ms each
  way; writes >= 0.95x; p99 <= 1.25x the bare pool's; >= 10x connect-per-request.
- pooled vs connect-per-request: >= 5x; PostgreSQL restarted mid-load: serving again within 5 s.
- start-up, warm (the app environment exists), the command to the first served request: <= 2 s for Flask and FastAPI.

Each section says the commit and the machine's load average (1 minute) it ran at: on a busy machine absolute req/s
and latencies are low and noisy, the ratios of apps loaded at once are what to read. In rendered_vs_bare_pool, the
`@<commit>` rows are the app rendered from that commit of this repository (`--compare-ref`, default a4a5eca: with row-level security, before
the owner role and migrations by the deployer), loaded in the same rounds as today's app and the bare pool.
"""


def write_results(report: Report, meta: dict[str, str]) -> Path:
    """bench/RESULTS.md: the header, then per scenario its newest section (this run's, or the one already there)."""
    from bench.scenarios import NAMES

    old = RESULTS.read_text() if RESULTS.exists() else ""
    sections = {name: text for name, text in re.findall(r"<!-- scenario (\w+) -->\n(.*?)<!-- end -->\n", old, re.S)}
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for name in {s for s, _ in report.tables}:
        checks = [
            f"- [{'INVARIANT' if inv else 'target'}] {what}: {'held' if held else 'FAILED' if inv else 'missed'}"
            for s, what, held, inv in report.checks
            if s == name
        ]
        text = f"## {name}\n\n{stamp}, commit {meta['commit']}, load average {meta['load']}; "
        text += f"`python -m bench.load {meta['args']}` ({meta['seconds']} s in all)\n\n"
        text += "\n".join(t for s, t in report.tables if s == name) + "\n" + "\n".join(checks) + "\n\n"
        sections[name] = text
    body = "".join(f"<!-- scenario {n} -->\n{sections[n]}<!-- end -->\n" for n in NAMES if n in sections)
    # sections other scripts keep here (bench/round_trips.py: <!-- round_trips --> ... <!-- end round_trips -->)
    others = "".join(m.group(0) for m in re.finditer(r"<!-- (\w+) -->\n.*?<!-- end \1 -->\n", old, re.S))
    RESULTS.write_text(HEADER + "\n" + body + ("\n" + others if others else ""))
    return RESULTS
